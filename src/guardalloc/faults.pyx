# cython: language_level=3
"""The fault reporter: knows every live arena, so that a SIGSEGV inside one
can be explained. The handler itself lives in ``_c/handler.c``, its reports in
``_c/report_*.c``.

Default: the first arena created installs the handler (chaining to whatever
SIGSEGV/SIGBUS disposition was in place), unless the environment variable
``GUARDALLOC_REPORTS`` is ``0`` (or ``off``/``no``/``false``) or
:func:`disable_reports` was called first.

Beside the text report (stderr), each fault can be written as one JSON
object (docs/report-schema.json) to a file: :func:`set_report_path`, or
``GUARDALLOC_OPTIONS=log_path=/path/guardalloc.%p.json`` read at import.

``GUARDALLOC_OPTIONS`` belongs to the native library; its one table of
options and its parser (``_c/options.c``) are exposed here:
:func:`option_table`, :func:`parse_options`, :func:`parse_option`,
:func:`options_help`, :func:`expand_log_path`. A bad value in the
environment never breaks an import: the launchers of the native library
refuse it in one line, and the reports of this process's arenas say once,
when the first of them installs the handler, that its ``log_path`` is not
used.
"""

import collections
import os
import sys
import warnings

from libc.errno cimport EEXIST, errno
from libc.stdint cimport uint64_t
from libc.string cimport strerror

from guardalloc._core cimport (
    ga_arena_t, ga_register_arena, ga_registered_arenas, ga_reports_active, ga_reports_disable,
    ga_reports_enable, ga_reports_handler_on_top, ga_unregister_arena,
)

cdef extern from "_c/report_context.h":
    int ga_set_report_path(const char *path_template)
    const char *ga_get_report_path()
    void ga_set_report_test(const char *nodeid, const char *phase)
    const char *ga_get_report_test()
    void ga_set_report_fd(int fd)
    int ga_get_report_fd()

cdef extern from "_c/options.h":
    ctypedef enum ga_opt_type_t:
        GA_OPT_BOOL
        GA_OPT_UINT
        GA_OPT_SIZE
        GA_OPT_POW2
        GA_OPT_CHOICE
        GA_OPT_STRING
    ctypedef struct ga_option_t:
        const char *name
        ga_opt_type_t type
        size_t offset
        const char *default_value
        uint64_t min
        uint64_t max
        const char *const *choices
        const char *help
        unsigned flags
    ctypedef struct ga_options_t:
        pass
    const ga_option_t ga_option_table[]
    void ga_options_defaults(ga_options_t *out)
    int ga_options_parse(const char *text, ga_options_t *out, char *err, size_t errlen)
    int ga_options_set(const char *name, const char *value, ga_options_t *out, char *err,
                       size_t errlen)
    size_t ga_options_help(char *out, size_t size)
    int ga_log_path_expand(const char *template_, const char *pid, char *out, size_t size)
    int GA_LOG_PATH_MAX
    int GA_OPTF_NO_FLAG
    int ga_secure_execution()
    const char *GA_SECURE_IGNORED_LINE

cdef extern from "_c/report_file.h":
    ctypedef enum ga_rf_why_t:
        GA_RF_OK
        GA_RF_TOO_LONG
    ga_rf_why_t ga_report_path_check(const char *path_template, char *expanded, size_t size)
    size_t ga_report_file_message(char *out, size_t size, const char *path, ga_rf_why_t why,
                                  int open_errno)


# Environment variable that opts out of the automatic installation.
REPORTS_ENV = "GUARDALLOC_REPORTS"

# The first arena installs the handler unless this was cleared: by the
# environment variable, or by an explicit enable_reports()/disable_reports().
cdef bint _install_with_first_arena = (
    os.environ.get(REPORTS_ENV, "1").strip().lower() not in ("0", "off", "no", "false"))


# Reports were enabled (by the first arena or enable_reports()) and not
# disabled since: every new arena checks that the handler is still in place.
cdef bint _reports_wanted = False


cdef int register_arena(ga_arena_t *arena) except -1:
    global _install_with_first_arena, _reports_wanted
    if ga_register_arena(arena) != 0:
        if errno == EEXIST:
            raise ValueError("guardalloc: the arena overlaps a registered one")
        raise MemoryError("guardalloc: too many live arenas (262144), or no memory for the registry")
    if _install_with_first_arena or _reports_wanted:
        # After the first arena: reinstall if someone put the previous
        # disposition back (faulthandler.disable() after -X faulthandler).
        _install_with_first_arena = False
        _reports_wanted = True
        _say_env_options_error()
        if ga_reports_enable() != 0:
            ga_unregister_arena(arena)
            raise OSError(errno, f"installing the fault handler failed: {strerror(errno).decode()}")
    return 0


cdef void unregister_arena(ga_arena_t *arena) noexcept:
    ga_unregister_arena(arena)


def registered_arenas() -> int:
    """How many arenas the fault reporter knows about (open arenas)."""
    return ga_registered_arenas()


def enable_reports() -> None:
    """Install the SIGSEGV/SIGBUS handler that reports faults inside arenas.

    The dispositions in place are kept and every fault outside an arena (or
    after a report, the fault itself) is passed on to them, so a host's own
    handler and :mod:`faulthandler` keep working. The calling thread gets an
    alternate signal stack if it has none. Idempotent; also switches reports
    back on after :func:`disable_reports`, and installs the handler again
    when the previous disposition was put back in its place (as
    ``faulthandler.disable()`` does when faulthandler was enabled first);
    creating an arena does the same while reports are enabled.

    Raises:
        OSError: sigaction() failed.
    """
    global _install_with_first_arena, _reports_wanted
    _install_with_first_arena = False
    _reports_wanted = True
    _say_env_options_error()
    if ga_reports_enable() != 0:
        raise OSError(errno, f"installing the fault handler failed: {strerror(errno).decode()}")


def disable_reports() -> None:
    """Stop reporting faults; guard pages still fault, silently.

    Puts the previous dispositions back where guardalloc's handler is still
    the installed one. When another handler was installed after it (and may
    chain to it), the handler stays in that chain and passes every signal on.
    Called before the first arena, it keeps arenas from installing it.
    """
    global _install_with_first_arena, _reports_wanted
    _install_with_first_arena = False
    _reports_wanted = False
    ga_reports_disable()


def reports_enabled() -> bool:
    """Whether faults inside arenas are reported now."""
    return bool(ga_reports_active())


def _handler_on_top() -> bool:
    """Whether guardalloc's handler is the current SIGSEGV disposition (tests)."""
    return bool(ga_reports_handler_on_top())


# -- GUARDALLOC_OPTIONS and the JSON reports ---------------------------------

OPTIONS_ENV = "GUARDALLOC_OPTIONS"

_TYPE_NAMES = {GA_OPT_BOOL: "bool", GA_OPT_UINT: "uint", GA_OPT_SIZE: "size", GA_OPT_POW2: "pow2",
               GA_OPT_CHOICE: "choice", GA_OPT_STRING: "string"}

Option = collections.namedtuple("Option", "name type default min max choices help flag")
Option.__doc__ = """One row of the C table of ``GUARDALLOC_OPTIONS`` (``_c/options.c``).

Attributes:
    name: the key, as written in ``GUARDALLOC_OPTIONS``.
    type: "bool", "uint", "size" (K/M/G/T suffixes), "pow2" (a power of two),
        "choice" or "string".
    default: the default, as it would be written in ``GUARDALLOC_OPTIONS``.
    min, max: bounds of uint, size and pow2; the longest string (max); 0
        and 1 for bool, None for choice.
    choices: the names a choice accepts, else None.
    help: one line.
    flag: whether the launchers (``exec``, ``run --native``) offer it as a
        command-line flag (``help`` is not one: argparse has --help).
"""

cdef object _OPTION_TABLE = None


def option_table() -> tuple:
    """Every ``GUARDALLOC_OPTIONS`` key as an :class:`Option`, in the C
    table's order."""
    global _OPTION_TABLE
    cdef int i = 0, k
    cdef const ga_option_t *o
    if _OPTION_TABLE is None:
        rows = []
        while ga_option_table[i].name != NULL:
            o = &ga_option_table[i]
            choices = None
            if o.type == GA_OPT_CHOICE:
                choices = []
                k = 0
                while o.choices[k] != NULL:
                    choices.append(o.choices[k].decode())
                    k += 1
                choices = tuple(choices)
            bounds = (None, None) if o.type == GA_OPT_CHOICE else (int(o.min), int(o.max))
            rows.append(Option(o.name.decode(), _TYPE_NAMES[o.type], o.default_value.decode(),
                               bounds[0], bounds[1], choices, o.help.decode(),
                               not (o.flags & GA_OPTF_NO_FLAG)))
            i += 1
        _OPTION_TABLE = tuple(rows)
    return _OPTION_TABLE


cdef object _field_value(const ga_option_t *o, ga_options_t *opts):
    """The value of o's field in opts, as Python: bool, int or str."""
    cdef char *field = <char *>opts + o.offset
    if o.type == GA_OPT_BOOL:
        return bool((<int *>field)[0])
    if o.type == GA_OPT_CHOICE:
        return o.choices[(<int *>field)[0]].decode()
    if o.type == GA_OPT_STRING:
        return field.decode("utf-8", "surrogateescape")
    return int((<uint64_t *>field)[0])


cdef bytes _c_text(what, text, where=OPTIONS_ENV):
    """text as C's bytes (``where``: what a NUL message names).

    Raises:
        TypeError: not a str. ValueError: it holds a NUL character.
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise ValueError(f"{where}: embedded NUL character")
    return raw


def parse_options(text=None) -> dict:
    """Parse a ``GUARDALLOC_OPTIONS`` string (``"uaf=1:log_path=/tmp/r.%p.json"``)
    with the C parser the native library uses; return every option's value
    (defaults for those not given) by name: bool, int or str by its type.

    Raises:
        TypeError: text is not a str (or None).
        ValueError: a bad option; the message names it and says what is expected.
    """
    cdef ga_options_t opts
    cdef char err[512]
    cdef int i = 0
    if text is not None and not isinstance(text, str):
        raise TypeError(f"text must be a str or None, not {type(text).__name__}")
    ga_options_defaults(&opts)
    if text:
        if ga_options_parse(_c_text("text", text), &opts, err, sizeof(err)) != 0:
            raise ValueError(err.decode("utf-8", "replace"))
    values = {}
    while ga_option_table[i].name != NULL:
        values[ga_option_table[i].name.decode()] = _field_value(&ga_option_table[i], &opts)
        i += 1
    return values


def parse_option(name, value) -> object:
    """One option's value text (``"4G"``, ``"continue"``; the whole text is
    the value, no quoting), checked by the C parser's rule for it: its
    value as :func:`parse_options` gives it.

    Raises:
        TypeError: name or value is not a str.
        ValueError: an unknown name or a bad value: the C parser's one-line
            message (``GUARDALLOC_OPTIONS: alignment: expected a power of two
            between 1 and 4096, not 24``).
    """
    cdef ga_options_t opts
    cdef char err[512]
    cdef int i = 0
    raw_name = _c_text("name", name)
    raw_value = _c_text("value", value)
    ga_options_defaults(&opts)
    if ga_options_set(raw_name, raw_value, &opts, err, sizeof(err)) != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    while ga_option_table[i].name != NULL:
        if ga_option_table[i].name.decode() == name:
            return _field_value(&ga_option_table[i], &opts)
        i += 1
    raise AssertionError("ga_options_set accepted a name the table lacks")   # not reached


def options_help() -> str:
    """The text ``help=1`` makes the native library print: every option, its
    default and its help, one per line."""
    cdef size_t n = ga_options_help(NULL, 0)
    cdef bytearray out = bytearray(n + 1)
    ga_options_help(out, n + 1)
    return out[:n].decode("utf-8", "replace")


def expand_log_path(template, pid) -> str:
    """A ``log_path`` template as the process ``pid`` writes it: ``%p``
    becomes the pid, ``%%`` a percent sign (the C handler's expansion). pid
    may also be text, put in as it is (``"*"`` for a glob pattern).

    Raises:
        TypeError: template is not a str, or pid neither an int nor a str.
        ValueError: pid is negative or holds a NUL, or the result is longer
            than 4095 bytes.
    """
    cdef char out[4096]
    if isinstance(pid, int) and not isinstance(pid, bool):
        if pid < 0:
            raise ValueError(f"pid must be 0 or more, not {pid}")
        pid = str(pid)
    raw_pid = _c_text("pid", pid, "pid")
    raw = _c_text("template", template, "template")
    if ga_log_path_expand(raw, raw_pid, out, sizeof(out)) != 0:
        raise ValueError(f"the expanded log_path is longer than {sizeof(out) - 1} bytes")
    return out.decode("utf-8", "surrogateescape")


def set_report_path(path) -> None:
    """Write every fault report from now on also as one JSON object per line
    (docs/report-schema.json) appended to ``path``; ``%p`` in it becomes the
    pid of the faulting process (so forked children write files of their own),
    ``%%`` a percent sign. None (or "") stops JSON reports.

    No report follows a symbolic link or goes into a file that another user
    owns or may read (report files are created with mode 0600): when the
    file ``path`` names for this process is such a file now, a
    RuntimeWarning says so, and reports are not written there.

    Raises:
        TypeError: path is not a str, bytes, os.PathLike or None.
        ValueError: path holds a NUL byte or is longer than 1023 bytes.
    """
    cdef bytes raw
    cdef char expanded[4096]
    cdef char message[4352]
    cdef ga_rf_why_t why
    cdef size_t n
    if path is None:
        ga_set_report_path(NULL)
        return
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes, os.PathLike or None, not {type(path).__name__}")
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("path must not contain NUL bytes")
    if ga_set_report_path(raw) != 0:
        raise ValueError(f"path is longer than {GA_LOG_PATH_MAX} bytes")
    why = ga_report_path_check(raw, expanded, sizeof(expanded))
    if why != GA_RF_OK:
        n = ga_report_file_message(message, sizeof(message),
                                   <const char *>raw if why == GA_RF_TOO_LONG else expanded, why, 0)
        warnings.warn(message[:n].decode("utf-8", "surrogateescape"), RuntimeWarning, stacklevel=2)


def get_report_path():
    """The JSON report path template set now, or None."""
    cdef const char *p = ga_get_report_path()
    return None if p == NULL else os.fsdecode(<bytes>p)


def set_report_test(nodeid, phase=None) -> None:
    """Name the test running now in every report (text and JSON), with its
    phase ("setup", "call", "teardown", "collect"); None: no test. The
    pytest plugin calls it. Node ids longer than 1023 bytes are cut.

    Raises:
        TypeError: nodeid or phase is not a str (or None).
        ValueError: phase is longer than 31 bytes.
    """
    if nodeid is None:
        ga_set_report_test(NULL, NULL)
        return
    if not isinstance(nodeid, str) or (phase is not None and not isinstance(phase, str)):
        raise TypeError("nodeid and phase must be str (or None)")
    raw = nodeid.encode("utf-8", "backslashreplace").replace(b"\0", b"?")
    raw_phase = None if phase is None else phase.encode("utf-8", "backslashreplace")
    if raw_phase is not None and (len(raw_phase) > 31 or b"\0" in raw_phase):
        raise ValueError(f"phase must be at most 31 bytes without NUL, not {phase!r}")
    cdef const char *phase_text = NULL
    if raw_phase is not None:
        phase_text = raw_phase
    ga_set_report_test(raw, phase_text)


def get_report_test():
    """The test named in reports now, or None."""
    cdef const char *p = ga_get_report_test()
    return None if p == NULL else (<bytes>p).decode("utf-8", "replace")


def set_report_fd(int fd) -> None:
    """Write the text report to this file descriptor (default 2, stderr; -1:
    nowhere). The pytest plugin points it at a copy of the terminal's stderr,
    which test output capturing does not swallow.

    Raises:
        ValueError: fd is below -1.
    """
    if fd < -1:
        raise ValueError(f"fd must be a file descriptor or -1, not {fd}")
    ga_set_report_fd(fd)


def get_report_fd() -> int:
    """The file descriptor text reports go to (-1: none)."""
    return ga_get_report_fd()


# GUARDALLOC_OPTIONS at import: this module uses its log_path; none in
# secure-execution mode, like the native library (options.h). A bad value
# must not break the import (the pytest plugin imports guardalloc in every
# session of the environment); it is said once, in one line, when this
# process's first arena installs the handler (or enable_reports() does): then
# the log_path the variable may have meant is not used.
_env_options_error = None
if ga_secure_execution() and os.environ.pop(OPTIONS_ENV, None) is not None:
    sys.stderr.write((<bytes>GA_SECURE_IGNORED_LINE).decode())
else:
    try:
        _env_log_path = parse_options(os.environ.get(OPTIONS_ENV))["log_path"]
    except ValueError as exc:
        _env_options_error = str(exc)
    else:
        if _env_log_path:
            set_report_path(_env_log_path)   # fits: the parser bounds log_path


def _say_env_options_error() -> None:
    """Say once, in one line on stderr, that GUARDALLOC_OPTIONS was refused at import."""
    global _env_options_error
    if _env_options_error is not None:
        message, _env_options_error = _env_options_error, None
        try:
            os.write(2, f"guardalloc: {message}; its log_path is not used\n".encode(
                "utf-8", "replace"))
        except OSError:
            pass

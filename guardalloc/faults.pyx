# cython: language_level=3
"""The fault reporter: knows every live arena, so that a SIGSEGV inside one
can be explained. The handler itself lives in ``_c/faults.c``.

Default: the first arena created installs the handler (chaining to whatever
SIGSEGV/SIGBUS disposition was in place), unless the environment variable
``GUARDALLOC_REPORTS`` is ``0`` (or ``off``/``no``/``false``) or
:func:`disable_reports` was called first.
"""

import os

from libc.errno cimport errno
from libc.string cimport strerror

from guardalloc._core cimport (
    ga_arena_t, ga_register_arena, ga_registered_arenas, ga_reports_active, ga_reports_disable,
    ga_reports_enable, ga_reports_handler_on_top, ga_unregister_arena,
)


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
        raise MemoryError("guardalloc: too many live arenas (262144); close some")
    if _install_with_first_arena or _reports_wanted:
        # After the first arena: reinstall if someone put the previous
        # disposition back (faulthandler.disable() after -X faulthandler).
        _install_with_first_arena = False
        _reports_wanted = True
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

"""Native heap guarding: the preloadable malloc library and its launchers.

``libguardalloc_malloc`` (built from ``guardalloc/_c/malloc.c`` and
``heap.c`` over the C core) replaces ``malloc`` and its family through
``LD_PRELOAD`` and puts the sampled blocks in guarded slots, so C
extensions, the libraries under them and programs that are not Python are
guarded too. It reads its options from ``GUARDALLOC_OPTIONS``
(``sample_rate=1:uaf=1:...``, the ``ASAN_OPTIONS`` convention).

    guardalloc exec [--sample-rate N] [--uaf] [...] -- PROGRAM [ARGS...]
    python -m guardalloc run --native [RATE] script.py [ARGS...]

Those two commands live in guardalloc.cli (``exec``, ``run``); their flags
are made from the library's table of options (``cli/native_flags.py``).
"""

from __future__ import annotations

import ctypes
import glob
import operator
import os
import pwd
import re
import shutil
import stat
import struct
from typing import Any, Mapping, Optional

from guardalloc import faults
from guardalloc.options import check_bool
from guardalloc.stats import NativeStats

__all__ = ["library_path", "options_string", "environment", "is_active", "stats",
           "python_alignment_error", "python_alignment_refusal", "PYTHON_MIN_ALIGNMENT", "unguardable", "DEFAULT_SAMPLE_RATE", "EXEC_SAMPLE_RATE", "OPTIONS_ENV"]

OPTIONS_ENV = faults.OPTIONS_ENV
# The library's default, read from its table (_c/options.c): what a bare
# LD_PRELOAD and `run --native` without RATE get, meant for long-running services.
DEFAULT_SAMPLE_RATE = int(faults.parse_options()["sample_rate"])
# `guardalloc exec` is a debugging command: it guards every allocation unless
# --sample-rate (or sample_rate in GUARDALLOC_OPTIONS) says otherwise.
EXEC_SAMPLE_RATE = 1


def library_path() -> str:
    """The absolute path of the preloadable library inside the package.

    Raises:
        FileNotFoundError: the package was installed without it (built by
            ``pip install .``; ``python setup.py build_ext --inplace``).
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the package, above hooks/
    found = sorted(glob.glob(os.path.join(here, "libguardalloc_malloc*.so")))
    if not found:
        raise FileNotFoundError(f"libguardalloc_malloc*.so is not in {here}: reinstall guardalloc "
                                "(pip install .) to build it")
    return found[0]


def _option_text(option: faults.Option, value: Any) -> str:
    """A Python value of ``option`` as ``GUARDALLOC_OPTIONS`` writes it.

    Raises:
        TypeError: a value of the wrong type for the option's type (named).
    """
    name = option.name
    if option.type == "bool":
        return "1" if check_bool(name, value) else "0"
    if option.type in ("uint", "size", "pow2"):
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not bool")
        try:
            return str(operator.index(value))
        except TypeError:
            raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _quoted(name: str, text: str) -> str:
    """A string value quoted, so that the parser reads it back whole
    (separators included).

    Raises:
        ValueError: it holds both quote characters (the parser has no escape).
    """
    for quote in "'\"":
        if quote not in text:
            return f"{quote}{text}{quote}"
    raise ValueError(f"{OPTIONS_ENV}: {name}: holds both ' and \", which cannot be quoted")


def options_string(**options: Any) -> str:
    """A ``GUARDALLOC_OPTIONS`` value for the options given, one keyword per
    key of the library's table (:func:`guardalloc.faults.option_table`;
    None: the library's default). Booleans are True/False, numbers ints
    (``max_bytes`` in bytes), the rest str. Each value is checked by the
    library's own parser, with its message.

    Raises:
        TypeError: an unknown option, or a value of the wrong type (named).
        ValueError: a value the library refuses (its one-line message).
    """
    rows = {option.name: option for option in faults.option_table()}
    unknown = sorted(set(options) - set(rows))
    if unknown:
        raise TypeError(f"options_string() got unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"the options are {', '.join(rows)}")
    parts = []
    for name, option in rows.items():   # the table's order
        value = options.get(name)
        if value is None:
            continue
        text = _option_text(option, value)
        faults.parse_option(name, text)
        parts.append(f"{name}={_quoted(name, text) if option.type == 'string' else text}")
    return ":".join(parts)


def environment(base: Optional[Mapping[str, str]] = None, **options) -> dict:
    """A copy of ``base`` (default ``os.environ``) that preloads the library
    with these options (see :func:`options_string`); the library goes first
    in ``LD_PRELOAD``, what was there stays after it. A ``GUARDALLOC_OPTIONS``
    already in ``base`` is kept, these options after it (the library reads
    them in order: these win), so that ``log_path`` or ``native_stacks`` set
    in the environment reach the program.

    Raises:
        TypeError: a bad option. ValueError: a bad option, or a bad
            ``GUARDALLOC_OPTIONS`` in ``base`` (the library's one-line
            message). FileNotFoundError: no library.
    """
    env = dict(os.environ if base is None else base)
    library = library_path()
    preload = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p != library]
    env["LD_PRELOAD"] = " ".join([library, *preload])
    text = options_string(**options)
    given = env.get(OPTIONS_ENV, "").strip()
    if text:
        env[OPTIONS_ENV] = f"{given}:{text}" if given else text
    faults.parse_options(env.get(OPTIONS_ENV))   # the library would refuse it at start
    return env


def _loaded() -> Optional[ctypes.CDLL]:
    """The library when this process has it preloaded, else None."""
    try:
        library = library_path()
    except FileNotFoundError:
        return None
    with open("/proc/self/maps") as maps:
        if not any(line.rstrip().endswith(library) for line in maps):
            return None
    return ctypes.CDLL(library)


def is_active() -> bool:
    """True when this process runs with the library preloaded and guarding."""
    lib = _loaded()
    return bool(lib is not None and lib.guardalloc_native_active())


def stats() -> Optional[NativeStats]:
    """The native heap's counters as a :class:`guardalloc.stats.NativeStats`
    (allocations, frees, live, refused, arenas, mapped_bytes: attributes,
    and keys as in a dict), or None when the library is not preloaded."""
    lib = _loaded()
    if lib is None:
        return None
    out = (ctypes.c_uint64 * len(NativeStats.__match_args__))()
    lib.guardalloc_native_stats(out)
    return NativeStats(*out)


# -- what the library cannot guard -------------------------------------------

# The smallest alignment of guarded blocks that CPython runs with, measured:
# at 1 it dies ("error reading frozen getpath.py" under the malloc library,
# "co_code is malformed" under the PyMem hooks' raw or obj domain); 2, 4, 8
# and 16 run the stdlib's test_json, test_re, test_ast and test_bytes.
PYTHON_MIN_ALIGNMENT = 2


def python_alignment_refusal(alignment: int) -> Optional[str]:
    """The one sentence refusing ``alignment`` of guarded blocks for a
    Python interpreter (the malloc library's, the PyMem hooks'), or None
    when CPython runs with it (0: the library's alignment=auto, by size,
    runs it: every object is larger than the sizes aligned below 2)."""
    if alignment == 0 or alignment >= PYTHON_MIN_ALIGNMENT:
        return None
    return (f"alignment={alignment} cannot run a Python interpreter: every guarded block would start at "
            "any byte, and CPython needs its objects and code aligned (it dies with \"error reading "
            f"frozen getpath.py\" or \"co_code is malformed\"); use alignment={PYTHON_MIN_ALIGNMENT} or "
            "more, or leave alignment alone")


def python_alignment_error(options: str) -> Optional[str]:
    """The one sentence refusing ``GUARDALLOC_OPTIONS`` ``options`` for a
    Python interpreter, or None when a Python can run under them. (A bad
    option string gives None: the library itself reports it.)"""
    from guardalloc import faults
    try:
        values = faults.parse_options(options)
    except ValueError:
        return None
    return python_alignment_refusal(values["alignment"]) if values["sample_rate"] else None


def _elf_interpreter(path: str) -> Optional[bool]:
    """Whether the ELF file at path names a program interpreter (PT_INTERP:
    the dynamic loader, which is what reads LD_PRELOAD); None when path is not
    an ELF file (or cannot be read)."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            order = "<" if ident[5] == 1 else ">"
            if ident[4] == 2:
                phoff, = struct.unpack_from(order + "Q", ident, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
            else:
                phoff, = struct.unpack_from(order + "I", ident, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    if phentsize < 4 or len(table) < phentsize * phnum:
        return None
    pt_interp = 3
    return any(struct.unpack_from(order + "I", table, i * phentsize)[0] == pt_interp for i in range(phnum))


def _shebang(path: str, env: Mapping[str, str]) -> Optional[str]:
    """The interpreter a ``#!`` script runs under (through ``env NAME``: NAME
    found on PATH), or None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env":
        names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(names[0], path=env.get("PATH")) if names else None
    return words[0]


def _resolve(name: str, env: Mapping[str, str]) -> Optional[str]:
    """The file execvpe would run for name, or None."""
    if "/" in name:
        return name if os.path.exists(name) else None
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _secure_execution(path: str) -> Optional[str]:
    """Why the loader would run path in secure-execution mode (and ignore
    LD_PRELOAD) for this user, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None

    def owner(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"uid {uid}"
    if st.st_mode & stat.S_ISUID and st.st_uid != os.geteuid():
        return f"is setuid {owner(st.st_uid)} and runs here as {owner(os.geteuid())}"
    if st.st_mode & stat.S_ISGID and st.st_mode & stat.S_IXGRP and st.st_gid != os.getegid():
        return f"is setgid (group id {st.st_gid}, yours is {os.getegid()})"
    try:
        if os.getxattr(path, "security.capability"):
            return "has file capabilities (security.capability)"
    except OSError:
        pass
    return None


def unguardable(program: str, env: Mapping[str, str]) -> Optional[str]:
    """The one line saying why ``exec`` cannot guard ``program`` (a name or
    path, looked up on env's PATH), or None: a statically linked program (no
    dynamic loader, so nothing reads LD_PRELOAD), a setuid/setgid program or
    one with file capabilities not run by its owner (the loader ignores
    LD_PRELOAD in secure-execution mode), or a Python interpreter with
    options it cannot run under."""
    path = _resolve(program, env)
    if path is None:
        return None     # execvpe says why
    runs = path
    interpreter = _shebang(path, env)
    if interpreter is not None:
        runs = interpreter
    secure = _secure_execution(runs)
    if secure is not None:
        return (f"{runs} {secure}: the dynamic loader ignores LD_PRELOAD for such a program "
                "(secure execution), so nothing would be guarded")
    if _elf_interpreter(runs) is False:
        return (f"{runs} is statically linked (an ELF with no program interpreter): no dynamic loader "
                "runs, so LD_PRELOAD is never read and nothing would be guarded")
    if re.fullmatch(r"python[0-9.]*[dmu]?", os.path.basename(os.path.realpath(runs))):
        return python_alignment_error(env.get(OPTIONS_ENV, ""))
    return None

"""Native heap guarding: the preloadable malloc library and its launchers.

``libguardalloc_malloc`` (built from ``guardalloc/_c/malloc.c`` and
``heap.c`` over the C core) replaces ``malloc`` and its family through
``LD_PRELOAD`` and puts the sampled blocks in guarded slots, so C
extensions, the libraries under them and programs that are not Python are
guarded too. It reads its options from ``GUARDALLOC_OPTIONS``
(``sample_rate=1:uaf=1:...``, the ``ASAN_OPTIONS`` convention).

    guardalloc exec [--sample-rate N] [--uaf] [...] -- PROGRAM [ARGS...]
    python -m guardalloc run --native [RATE] script.py [ARGS...]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import pwd
import re
import shutil
import stat
import struct
import sys
from typing import Mapping, Optional

from guardalloc.options import ALIGNS, ON_FAULT, check_alignment, check_bool, check_choice, check_int
from guardalloc.stats import NativeStats

__all__ = ["library_path", "options_string", "environment", "is_active", "stats",
           "python_alignment_error", "unguardable", "DEFAULT_SAMPLE_RATE", "EXEC_SAMPLE_RATE", "OPTIONS_ENV"]

OPTIONS_ENV = "GUARDALLOC_OPTIONS"
# The C table's default (guardalloc/_c/options.c): what a bare LD_PRELOAD
# and `run --native` without RATE get, meant for long-running services.
DEFAULT_SAMPLE_RATE = 5000
# `guardalloc exec` is a debugging command: it guards every allocation unless
# --sample-rate (or sample_rate in GUARDALLOC_OPTIONS) says otherwise.
EXEC_SAMPLE_RATE = 1
_MAX_BYTES_LIMIT = 1 << 44
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


def options_string(*, sample_rate: Optional[int] = None, max_bytes: Optional[int] = None,
                   alignment: Optional[int] = None, uaf: Optional[bool] = None,
                   quarantine: Optional[int] = None, on_fault: Optional[str] = None,
                   random: Optional[bool] = None, align: Optional[str] = None,
                   native_stacks: Optional[bool] = None, log_path: Optional[str] = None) -> str:
    """A ``GUARDALLOC_OPTIONS`` value for the options given (None: the
    library's default). ``max_bytes`` is in bytes.

    Raises:
        TypeError, ValueError: an option has the wrong type or range (named).
    """
    parts = []
    if sample_rate is not None:
        parts.append(f"sample_rate={check_int('sample_rate', sample_rate, 0, (1 << 32) - 1)}")
    if max_bytes is not None:
        parts.append(f"max_bytes={check_int('max_bytes', max_bytes, 0, _MAX_BYTES_LIMIT)}")
    if alignment is not None:
        parts.append(f"alignment={check_alignment('alignment', alignment)}")
    if uaf is not None:
        parts.append(f"uaf={int(check_bool('uaf', uaf))}")
    if quarantine is not None:
        parts.append(f"quarantine={check_int('quarantine', quarantine, 0, (1 << 32) - 1)}")
    if on_fault is not None:
        parts.append(f"on_fault={check_choice('on_fault', on_fault, ON_FAULT)}")
    if random is not None:
        parts.append(f"random={int(check_bool('random', random))}")
    if align is not None:
        parts.append(f"align={check_choice('align', align, ALIGNS)}")
    if native_stacks is not None:
        parts.append(f"native_stacks={int(check_bool('native_stacks', native_stacks))}")
    if log_path is not None:
        if not isinstance(log_path, str):
            raise TypeError(f"log_path must be a str, not {type(log_path).__name__}")
        if "'" in log_path or "\0" in log_path:
            raise ValueError("log_path must not hold a quote or NUL character")
        parts.append(f"log_path='{log_path}'")
    return ":".join(parts)


def environment(base: Optional[Mapping[str, str]] = None, **options) -> dict:
    """A copy of ``base`` (default ``os.environ``) that preloads the library
    with these options (see :func:`options_string`); the library goes first
    in ``LD_PRELOAD``, what was there stays after it. A ``GUARDALLOC_OPTIONS``
    already in ``base`` is kept, these options after it (the library reads
    them in order: these win), so that ``log_path`` or ``native_stacks`` set
    in the environment reach the program.

    Raises:
        TypeError, ValueError: a bad option. FileNotFoundError: no library.
    """
    env = dict(os.environ if base is None else base)
    library = library_path()
    preload = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p != library]
    env["LD_PRELOAD"] = " ".join([library, *preload])
    text = options_string(**options)
    given = env.get(OPTIONS_ENV, "").strip()
    if text:
        env[OPTIONS_ENV] = f"{given}:{text}" if given else text
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


# -- command line -----------------------------------------------------------

def _count(text: str) -> int:
    """A count of 0 or more, for argparse (the launcher's RATE parser)."""
    from guardalloc.cli.run import _rate
    return _rate(text)


def _size(text: str) -> int:
    """A byte count with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"k": 10, "m": 20, "g": 30, "t": 40}
    shift = units.get(text[-1:].lower(), 0)
    try:
        value = int(text[:-1] if shift else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size (N, NK, NM, NG): {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value << shift


def add_guard_arguments(parser: argparse.ArgumentParser, *, native_only: bool = False) -> None:
    """The native library's guard modes as options (exec; run --native)."""
    note = " (with --native)" if native_only else ""
    parser.add_argument("--uaf", action="store_true", default=None,
                        help="guard freed blocks: catch use-after-free" + note)
    parser.add_argument("--quarantine", type=_count, metavar="N",
                        help="with --uaf: freed slots kept guarded before reuse" + note)
    parser.add_argument("--alignment", type=_count, metavar="N",
                        help="block alignment: 1 = byte-exact (default: by size, 1, 2, 4, 8, then 16)" + note)
    parser.add_argument("--align", choices=ALIGNS,
                        help="where a block sits in its slot (default right)" + note)
    parser.add_argument("--on-fault", choices=ON_FAULT,
                        help="abort (default) or continue: report once and go on" + note)
    parser.add_argument("--max-bytes", type=_size, metavar="SIZE",
                        help="guarded bytes at most, e.g. 4G (default 1G)" + note)
    parser.add_argument("--random", action="store_true", default=None,
                        help="sample at random instead of every N-th" + note)
    parser.add_argument("--no-native-stacks", dest="native_stacks", action="store_false", default=None,
                        help="do not record each block's native allocation and free stacks "
                             "(faster; reports then show none)" + note)
    parser.add_argument("--log-path", metavar="PATH",
                        help="also write each fault as one JSON line to PATH "
                             "(%%p: the process id; docs/report-schema.json)" + note)


def guard_options(args: argparse.Namespace, sample_rate: Optional[int]) -> dict:
    """The keyword options of :func:`environment` from parsed arguments."""
    return dict(sample_rate=sample_rate, uaf=args.uaf, quarantine=args.quarantine,
                alignment=args.alignment, align=args.align, on_fault=args.on_fault,
                max_bytes=args.max_bytes, random=args.random, native_stacks=args.native_stacks,
                log_path=args.log_path)


# -- what the library cannot guard -------------------------------------------

def python_alignment_error(options: str) -> Optional[str]:
    """The one sentence refusing ``GUARDALLOC_OPTIONS`` ``options`` for a
    Python interpreter, or None when a Python can run under them. (A bad
    option string gives None: the library itself reports it.)"""
    from guardalloc import faults
    try:
        values = faults.parse_options(options)
    except ValueError:
        return None
    if values["sample_rate"] and values["alignment"] == 1:
        return ("alignment=1 cannot run a Python interpreter: every guarded block would start at any "
                "byte, and CPython needs its objects aligned (it dies at start with \"error reading "
                "frozen getpath.py\"); use alignment=2 or more, or leave alignment alone")
    return None


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


# -- command line: exec ------------------------------------------------------

def _sample_rate_given(env: Mapping[str, str]) -> bool:
    return any(part.strip().startswith("sample_rate=") for part in env.get(OPTIONS_ENV, "").split(":"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample-rate", type=_count, metavar="N",
                        help=f"guard one allocation in N (1: all; 0: none; default {EXEC_SAMPLE_RATE}: every "
                             f"allocation; a long-running service may prefer e.g. {DEFAULT_SAMPLE_RATE})")
    add_guard_arguments(parser)
    parser.add_argument("--no-symbolize", dest="symbolize", action="store_false",
                        help="print reports' frames raw (module+offset); python -m guardalloc "
                             "symbolize turns them into functions and lines later")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    parser.usage = ("guardalloc exec [--sample-rate N] [--uaf [--quarantine N]] [--alignment N] "
                    "[--align left|right|random] [--on-fault abort|continue] [--max-bytes SIZE] "
                    "[--random] [--no-native-stacks] [--log-path PATH] [--no-symbolize] -- PROGRAM [ARGS...]")
    parser.epilog = ("Runs the program as a child and writes its reports symbolized (function, file:line, "
                     "inlined frames) with llvm-symbolizer or addr2line; dies as the program died "
                     "(its exit status, or the signal that killed it).")


def run(args: argparse.Namespace) -> int:
    program = list(args.program)
    if program[:1] == ["--"]:
        program = program[1:]
    if not program:
        print("guardalloc exec: no program given (guardalloc exec [options] -- PROGRAM [ARGS...])",
              file=sys.stderr)
        return 2
    rate = args.sample_rate
    if rate is None and not _sample_rate_given(os.environ):
        rate = EXEC_SAMPLE_RATE
    try:
        env = environment(**guard_options(args, rate))
    except (TypeError, ValueError, FileNotFoundError) as exc:
        print(f"guardalloc exec: {exc}", file=sys.stderr)
        return 2
    problem = unguardable(program[0], env)
    if problem is not None:
        print(f"guardalloc exec: {problem}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    from guardalloc.symbolize.child import run_symbolized
    try:
        return run_symbolized(program, env, symbolize=args.symbolize)
    except OSError as exc:
        print(f"guardalloc exec: cannot run {program[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127

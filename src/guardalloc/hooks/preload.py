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
from typing import Any, Mapping, Optional

from guardalloc import faults
from guardalloc.options import check_bool
from guardalloc.stats import NativeStats

__all__ = ["library_path", "options_string", "environment", "is_active", "stats",
           "DEFAULT_SAMPLE_RATE", "OPTIONS_ENV"]

OPTIONS_ENV = faults.OPTIONS_ENV
# The library's default, read from its table (_c/options.c).
DEFAULT_SAMPLE_RATE = int(faults.parse_options()["sample_rate"])


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

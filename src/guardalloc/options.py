"""Guard options: their defaults and their validation, in one place.

Every front end (Arena, Pool, SharedArena, the numpy handler, the PyMem hooks
and the command line) takes the same options with the same meaning, and
checks them here, so a bad value gets the same exception and message
wherever it is passed.
"""

from __future__ import annotations

import dataclasses
import mmap
import operator
import os
import resource
import typing
from typing import Any, Optional

__all__ = ["GuardOptions", "POOL_OPTIONS", "check_alignment", "check_int", "check_choice", "check_bool",
           "check_option_names", "default_max_bytes"]

PAGE_SIZE = mmap.PAGESIZE

BACKENDS = ("auto", "madvise", "mprotect", "none")
ALIGNS = ("right", "left", "random")
ON_FAULT = ("abort", "continue")
# Guard pages per guard: kept in a C int; an arena's guards in all are
# bounded by MAX_GUARD_BYTES (arena.pyx).
MAX_GUARD_PAGES = (1 << 31) - 1


def check_int(name: str, value: Any, low: int, high: Optional[int] = None,
              accepted: Optional[str] = None) -> int:
    """``value`` as an int in [low, high] (``accepted``: how the message
    describes the range, when the numbers alone would not say it).

    Raises:
        TypeError: not an integer (bool, float and str are refused).
        ValueError: out of range; the message names the parameter and the range.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if number < low or (high is not None and number > high):
        if accepted is None:
            accepted = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise ValueError(f"{name} must be {accepted}, not {number}")
    return number


def check_alignment(name: str, value: Any) -> int:
    """``value`` if it is a power of two from 1 (byte-exact) to the page size.

    Raises:
        TypeError: not an integer.
        ValueError: not such a power of two.
    """
    power_of_two = f"a power of two from 1 to {PAGE_SIZE}"
    alignment = check_int(name, value, 1, PAGE_SIZE, power_of_two)
    if alignment & (alignment - 1):
        raise ValueError(f"{name} must be {power_of_two}, not {alignment}")
    return alignment


def check_choice(name: str, value: Any, choices: tuple) -> str:
    """``value`` if it is one of the string ``choices``.

    Raises:
        TypeError: not a str.
        ValueError: not one of the choices.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, choices))}; "
                        f"not {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be {', '.join(map(repr, choices[:-1]))} or {choices[-1]!r}, "
                         f"not {value!r}")
    return value


@typing.overload
def check_bool(name: str, value: Any, none_ok: typing.Literal[False] = False) -> bool: ...
@typing.overload
def check_bool(name: str, value: Any, none_ok: bool) -> Optional[bool]: ...
def check_bool(name: str, value: Any, none_ok: bool = False) -> Optional[bool]:
    """``value`` if it is True or False (or None when ``none_ok``).

    Raises:
        TypeError: anything else (1, "yes", ...).
    """
    if value is None and none_ok:
        return None
    if not isinstance(value, bool):
        allowed = "True, False or None" if none_ok else "True or False"
        raise TypeError(f"{name} must be {allowed}, not {value!r}")
    return value


def check_option_names(options: dict, accepted: tuple, where: str) -> None:
    """Refuse keyword arguments that are not among ``accepted``, naming
    them and the accepted ones (``where``: the call, for the message).

    Raises:
        TypeError: an unknown option.
    """
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{where} got unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"the options are {', '.join(accepted)}")


@dataclasses.dataclass(frozen=True)
class GuardOptions:
    """The options every guarded allocator shares, validated.

    Attributes:
        guard_pages: guard pages before the first slot, between every two
            slots and after the last (1 or more).
        backend: "madvise" (MADV_GUARD_INSTALL, no VMA per guard),
            "mprotect" (PROT_NONE, two VMAs per guard), "none" (no guards, a
            baseline) or "auto" (madvise when the kernel has it, otherwise
            mprotect with a RuntimeWarning).
        align: "right" (a buffer ends at the guard after it: catches
            overflows), "left" (starts right after the guard before it:
            underflows) or "random" (either, per allocation, as GWP-ASan does).
        alignment: buffer alignment, a power of two from 1 (byte-exact) to
            the page size. Slack bytes between a buffer's end and the guard
            are filled with a pattern and checked on free.
        uaf: guard freed slots' data pages (use-after-free faults).
        quarantine: how many freed slots wait (FIFO) before reuse with
            ``uaf``; None: as many as the arena holds.
        tracebacks: record allocation and free tracebacks for fault reports;
            None follows :func:`guardalloc.enable_tracebacks`.
        on_fault: "abort" (report and die) or "continue" (report once, lift
            the guard that was hit, retire the slot, go on).

    Raises:
        TypeError, ValueError: a value of the wrong type or out of range
            (the message names the option).
    """

    guard_pages: int = 1
    backend: str = "auto"
    align: str = "right"
    alignment: int = 16
    uaf: bool = False
    quarantine: Optional[int] = None
    tracebacks: Optional[bool] = None
    on_fault: str = "abort"

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "guard_pages", check_int("guard_pages", self.guard_pages, 1, MAX_GUARD_PAGES))
        setter(self, "backend", check_choice("backend", self.backend, BACKENDS))
        setter(self, "align", check_choice("align", self.align, ALIGNS))
        setter(self, "alignment", check_alignment("alignment", self.alignment))
        setter(self, "uaf", check_bool("uaf", self.uaf))
        if self.quarantine is not None:
            setter(self, "quarantine", check_int("quarantine", self.quarantine, 0))
        setter(self, "tracebacks", check_bool("tracebacks", self.tracebacks, none_ok=True))
        setter(self, "on_fault", check_choice("on_fault", self.on_fault, ON_FAULT))
        if self.uaf and self.backend == "none":
            raise ValueError("uaf=True needs guards: use backend 'auto', 'madvise' or 'mprotect'")

    def replace(self, **changes: Any) -> "GuardOptions":
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_kwargs(self) -> dict:
        """The options as keyword arguments of Arena and Pool."""
        return dataclasses.asdict(self)


#: The keyword arguments of :class:`guardalloc.Pool`: the guard options,
#: then the pool's own limits and growth mode.
POOL_OPTIONS = tuple(field.name for field in dataclasses.fields(GuardOptions)) + (
    "max_bytes", "max_arenas", "grow", "hugepages", "keep_bytes", "native_stacks")


# ---------------------------------------------------------------------------
# The default max_bytes of a pool: Pool(), guardalloc.alloc()'s default pool,
# the numpy handler and the PyMem hooks. max_bytes counts slot address space,
# and a slot costs memory only for the pages its block touches, as malloc's
# memory does; so the default is what the address space allows: a quarter of
# what RLIMIT_AS leaves (the pool reserves about max_bytes * (1 + guard_pages)
# up front; the program needs the rest), at most ADDRESS_SPACE_DEFAULT.
# Under strict overcommit (vm.overcommit_memory=2) the kernel commits every
# read-write arena in full, so there the default stays a share of RAM.
ADDRESS_SPACE_DEFAULT = 256 << 30
RAM_SHARE = 4
ADDRESS_SPACE_SHARE = 4
MIN_DEFAULT_MAX_BYTES = 64 << 20
MAX_DEFAULT_MAX_BYTES = 1 << 40
# RAM when sysconf cannot say.
_ASSUMED_RAM = 4 << 30
_OVERCOMMIT_PATH = "/proc/sys/vm/overcommit_memory"


def strict_overcommit() -> bool:
    """Whether the kernel commits writable private mappings in full
    (vm.overcommit_memory=2); False when it cannot be read."""
    try:
        with open(_OVERCOMMIT_PATH) as f:
            return f.read().strip() == "2"
    except OSError:
        return False


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return _ASSUMED_RAM


def address_space_left() -> Optional[int]:
    """Bytes the process may still map under RLIMIT_AS (soft limit minus
    VmSize), or None when it is unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    mapped = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    mapped = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - mapped)


def fitting_max_bytes(space: int, guard_pages: int, max_arenas: Optional[int] = None,
                      stack_bytes: int = 0) -> int:
    """The largest max_bytes (whole pages, 0 if none) whose pool reservation
    fits in space bytes (max_arenas None: the pool's default for that size).
    The inverse of the reservation guardalloc.pool makes: max_bytes *
    (1 + guard_pages) plus a guard per arena; with native stacks
    (stack_bytes of table per one-page slot), the tables and a page of
    rounding per arena, and a page of rounding overall."""
    per_arena = guard_pages * PAGE_SIZE + (PAGE_SIZE if stack_bytes else 0)
    per_page = PAGE_SIZE * (1 + guard_pages) + stack_bytes
    if stack_bytes:
        space -= PAGE_SIZE
    if max_arenas is None:
        per_page += per_arena   # one arena per page at most
    else:
        space -= max_arenas * per_arena
    return max(0, space // per_page * PAGE_SIZE)


def default_max_bytes(guard_pages: int = 1) -> int:
    """The ``max_bytes`` a pool gets when none is given (:class:`guardalloc.Pool`,
    the default pool, the numpy handler, :func:`guardalloc.pymem.install`):
    256 GiB of slots, which cost memory only where blocks touch them; under
    strict overcommit (``vm.overcommit_memory=2``, where every arena is
    committed) a quarter of RAM instead, kept between 64 MiB and 1 TiB. In
    both cases at most what lets the pool's reservation (with
    ``guard_pages``) take a quarter of the address space ``RLIMIT_AS``
    leaves the process, down to one page. Whole pages.

    Raises:
        TypeError, ValueError: guard_pages is not an integer of 1 or more.
    """
    guard_pages = check_int("guard_pages", guard_pages, 1, MAX_GUARD_PAGES)
    if strict_overcommit():
        size = max(MIN_DEFAULT_MAX_BYTES, min(MAX_DEFAULT_MAX_BYTES, _physical_memory() // RAM_SHARE))
    else:
        size = ADDRESS_SPACE_DEFAULT
    left = address_space_left()
    if left is not None:
        size = min(size, fitting_max_bytes(left // ADDRESS_SPACE_SHARE, guard_pages))
    return max(PAGE_SIZE, size // PAGE_SIZE * PAGE_SIZE)

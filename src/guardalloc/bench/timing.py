"""Measuring guardalloc fairly on a noisy machine: the shared benchmark toolkit.

Used by ``python -m guardalloc bench`` (:mod:`guardalloc.bench.guard_costs`), by the
pytest-benchmark suite under ``bench/`` and by the CI performance check
(``bench/check_perf.py``). It lives in the package, not under ``bench/``, so
that an installed guardalloc can run its own comparison.

Principles:

- Absolute times mean little on a shared 2-core machine; both sides of every
  comparison are measured in the same run, interleaved (A B A B ...), and
  compared by their medians (:func:`interleaved`).
- On a loaded machine a wall-clock sample also counts the time the process
  waited for a CPU; :data:`cpu_clock` (this thread's CPU time, user + system)
  does not, so figures that involve no other process are timed with it.
- Deterministic figures (VMAs, guard system calls) are checked exactly.
  :func:`vmas_in_range` counts the VMAs that overlap an arena's own address
  range, which is exact whatever else the process maps meanwhile (glibc
  serves large ``malloc`` requests, such as an arena's slot table, with a
  separate ``mmap`` of its own).
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import resource
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping

from guardalloc.arena import Arena
from guardalloc.introspect.maps import vma_count, vmas_in_range

PAGE_SIZE = mmap.PAGESIZE
# The madvise advice values (the standard library's mmap module has no names
# for them; the canonical declarations are in _kernel.pxd).
MADV_GUARD_INSTALL = 102

# Arena creation "sides": label -> Arena keyword arguments. "python" is the
# pure-Python arena below, built on mmap.madvise().
CREATE_SIDES: dict[str, dict] = {
    "madvise-batched": {"backend": "madvise", "batch": True},
    "madvise-per-guard": {"backend": "madvise", "batch": False},
    "mprotect": {"backend": "mprotect"},
    "none": {"backend": "none"},
}


def make_arena(side: str, slots: int, slot_size: int = 4096, **options):
    """Build one arena for a creation side of :data:`CREATE_SIDES` (or
    ``"python"``), silencing the ``auto`` fallback warning."""
    if side == "python":
        return PyArena(slot_size, slots)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Arena(slot_size, slots, **CREATE_SIDES[side], **options)


#: Sides with every guard in place once :func:`build_guarded` returns.
GUARDED_SIDES = ["madvise-batched", "madvise-per-guard", "mprotect", "python"]
#: A madvise arena as built, ready for its first allocation: past 1,024
#: slots its guards are laid later, a chunk at a time, as allocations reach them.
LAZY_SIDE = "madvise-lazy"


def build_guarded(side: str, slots: int):
    """An arena of ``slots`` 4 KiB slots for a side of :data:`CREATE_SIDES`.

    Guarded sides return it with every guard installed: an :class:`Arena` is
    opened whole by allocating (and freeing) its last slot, which lays the
    guards a lazily guarded arena defers. :data:`LAZY_SIDE` returns the
    madvise arena as built, and "none" the unguarded one as built.
    """
    if side == LAZY_SIDE:
        return make_arena("madvise-batched", slots)
    arena = make_arena(side, slots)
    # The pure-Python arena guards every slot when built; "none" has nothing
    # to lay, so it stays the baseline of an arena as built (lazy's too).
    if side not in ("python", "none"):
        try:
            arena.alloc(1, slot=slots - 1).free()
        except BaseException:
            arena.close()
            raise
    return arena


@dataclass
class CreateCounts:
    """Deterministic figures of one arena creation."""

    side: str
    slots: int
    vmas_added: int        # change of the process's VMA count
    vmas_in_arena: int     # VMAs overlapping the arena's address range
    guard_syscalls: int    # system calls spent installing guards
    seconds: float


def measure_create(side: str, slots: int, slot_size: int = 4096) -> CreateCounts:
    """Create and close one arena; return its counts and creation time."""
    gc.collect()
    before = vma_count()
    start = time.perf_counter()
    arena = make_arena(side, slots, slot_size)
    seconds = time.perf_counter() - start
    try:
        added = vma_count() - before
        in_arena = vmas_in_range(arena.address, arena.address + arena.size)
        syscalls = arena.stats()["guard_syscalls"]
    finally:
        arena.close()
    return CreateCounts(side, slots, added, in_arena, syscalls, seconds)


# ---------------------------------------------------------------------------
# Interleaved A/B measuring

#: CPU time of the calling thread (user + system): unlike wall-clock time,
#: it does not grow while other processes hold the CPUs.
cpu_clock: Callable[[], float] = time.thread_time


def cpu_clock_with_children() -> float:
    """:data:`cpu_clock` plus the CPU time of every child process waited for
    so far: the CPU cost of a ``fork()`` + child exit + wait, without the
    time the child waited for a CPU to run on."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + children.ru_utime + children.ru_stime

@dataclass
class Comparison:
    """Per-side samples (seconds per operation) of an interleaved run."""

    samples: dict[Hashable, list[float]] = field(default_factory=dict)

    def median(self, side: Hashable) -> float:
        return statistics.median(self.samples[side])

    def ratio(self, numerator: Hashable, denominator: Hashable) -> float:
        """median(numerator) / median(denominator)."""
        return self.median(numerator) / self.median(denominator)


def interleaved(sides: Mapping[Any, Callable], rounds: int, inner: int = 1,
                setup: Mapping[Any, Callable[[], object]] | None = None,
                teardown: Mapping[Any, Callable[[Any], object]] | None = None,
                clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time each side ``rounds`` times, alternating sides (A B A B ...).

    Each sample runs ``sides[name]()`` ``inner`` times and records seconds
    per call, so slow drift of the machine hits every side alike. Untimed
    hooks, for operations that build or destroy something:

    - ``setup[name]()`` runs before each sample and its result is passed to
      ``sides[name]`` (e.g. build an arena, time closing it);
    - ``teardown[name](result)`` runs after each sample with the side's last
      return value (e.g. time building an arena, close it untimed).

    ``clock`` is wall-clock time by default; :data:`cpu_clock` leaves out the
    time spent waiting for a CPU (not for what runs in child processes).

    Raises:
        ValueError: ``rounds`` or ``inner`` below 1, or no sides.
    """
    if rounds < 1 or inner < 1 or not sides:
        raise ValueError("interleaved() needs at least one side, one round and one call")
    result = Comparison({name: [] for name in sides})
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in sides.items():
                if setup is not None:
                    state = setup[name]()
                    start = clock()
                    for _ in range(inner):
                        returned = fn(state)
                else:
                    start = clock()
                    for _ in range(inner):
                        returned = fn()
                elapsed = clock() - start
                if teardown is not None:
                    teardown[name](returned)
                result.samples[name].append(elapsed / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


def slowed(fn: Callable, factor: float, clock: Callable[[], float] = cpu_clock) -> Callable:
    """``fn`` made ``factor`` times slower: after each call, a busy loop runs
    for ``factor - 1`` times as long as the call took on ``clock``.

    A stand-in for a regression in the code under test, to check that a
    performance check notices one (``bench/check_perf.py --slow-down``).

    Raises:
        ValueError: ``factor`` below 1.
    """
    if not factor >= 1:
        raise ValueError(f"factor must be at least 1, not {factor!r}")

    def slow(*args):
        start = clock()
        returned = fn(*args)
        end = clock() + (clock() - start) * (factor - 1)
        while clock() < end:
            pass
        return returned
    return slow


# ---------------------------------------------------------------------------
# The operations being compared

def fork_and_wait() -> None:
    """fork(); the child exits at once; the parent waits for it."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def alloc_free_loop(arena: Arena, nbytes: int = 64) -> Callable[[], None]:
    """One ``arena.alloc(nbytes)`` + ``buf.free()`` per call."""
    alloc = arena.alloc

    def cycle() -> None:
        alloc(nbytes).free()
    return cycle


def bytearray_loop(nbytes: int = 64) -> Callable[[], None]:
    """One ``bytearray(nbytes)`` creation + deletion per call."""
    def cycle() -> None:
        buf = bytearray(nbytes)
        del buf
    return cycle


def numpy_empty_loop(nbytes: int = 64) -> Callable[[], None] | None:
    """One ``numpy.empty(nbytes, uint8)`` + deletion per call (None without numpy)."""
    try:
        import numpy
    except ImportError:
        return None
    empty, uint8 = numpy.empty, numpy.uint8

    def cycle() -> None:
        buf = empty(nbytes, uint8)
        del buf
    return cycle


def cymem_loop(nbytes: int = 64) -> Callable[[], None] | None:
    """One ``cymem.Address(1, nbytes)`` (calloc) + deletion (free) per call:
    cymem's Python-level allocation (None without cymem)."""
    try:
        from cymem.cymem import Address  # type: ignore[import-not-found]  # optional, untyped
    except ImportError:
        return None

    def cycle() -> None:
        buf = Address(1, nbytes)
        del buf
    return cycle


# ---------------------------------------------------------------------------
# A pure-Python arena, to show what the Cython core buys

class PyArena:
    """The same layout as :class:`guardalloc.Arena` (madvise backend), in pure
    Python on the standard library: ``mmap.mmap`` for the mapping and one
    ``mmap.madvise(MADV_GUARD_INSTALL, ...)`` per guard.

    For benchmarks of guard installation only: it builds and unmaps, nothing
    else.
    """

    backend = "python"

    def __init__(self, slot_size: int, slots: int, guard_pages: int = 1) -> None:
        self.slot_size = -(-slot_size // PAGE_SIZE) * PAGE_SIZE
        self.guard_size = guard_pages * PAGE_SIZE
        self.stride = self.slot_size + self.guard_size
        self.slots = slots
        self.size = self.guard_size + slots * self.stride
        self._map = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.guard_syscalls = 0
        madvise, guard, stride = self._map.madvise, self.guard_size, self.stride
        for offset in range(0, self.size, stride):
            madvise(MADV_GUARD_INSTALL, offset, guard)
        self.guard_syscalls = slots + 1
        # The address, for vmas_in_range(); the ctypes export ends at once.
        probe = ctypes.c_char.from_buffer(self._map)
        self.address = ctypes.addressof(probe)
        del probe

    def stats(self) -> dict:
        return {"slots": self.slots, "guard_syscalls": self.guard_syscalls, "backend": "python"}

    def close(self) -> None:
        self._map.close()

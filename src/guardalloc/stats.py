"""What every ``stats()`` returns: one frozen dataclass per kind.

Each is also a read-only mapping with the same keys as the plain dicts that
``stats()`` used to return, so both spellings work and agree::

    s = arena.stats()
    s.live == s["live"]          # attribute or key
    dict(s)                      # the old dict, key for key
    "live" in s, list(s.keys())

Nested counts (``PoolStats.classes``, ``PymemStats.raw``/``mem``/``obj``)
stay plain dicts, built afresh by each call. A stats object is not a dict:
``json.dumps`` wants ``dict(s)`` (or ``default=dict``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Optional

__all__ = ["ArenaStats", "PoolStats", "HandlerStats", "PymemStats", "NativeStats"]


class _Stats(Mapping[str, Any]):
    """The mapping face of a stats dataclass: its fields are the keys, in
    order, except the ``_OPTIONAL`` ones that are None (keys the old dict
    left out). Equality is the mapping's, so a stats object equals the dict
    it replaces; like a dict, it is not hashable."""

    __slots__ = ()
    # The dataclass's field names in order (what dataclasses sets for match).
    __match_args__: ClassVar[tuple[str, ...]] = ()
    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        if key in self.__match_args__:
            value = getattr(self, key)
            if value is not None or key not in self._OPTIONAL:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        if not self._OPTIONAL:
            return iter(self.__match_args__)
        return (name for name in self.__match_args__
                if name not in self._OPTIONAL or getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


# eq=False: keep the mapping's equality (a stats object equals its dict).
@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ArenaStats(_Stats):
    """:meth:`guardalloc.Arena.stats`.

    Attributes:
        slots, live, free, quarantined, retired: slots in all and in each
            state.
        slot_size: bytes per slot; guard_pages: pages per guard.
        backend: "madvise", "mprotect" or "none".
        batched: the guards went in through process_madvise (many per call).
        guard_syscalls: system calls spent installing the arena's guards.
        uaf_syscalls: guarding freed slots and unguarding reused ones.
        allocations: buffers handed out since the arena was made.
        faults_continued: faults survived with ``on_fault="continue"``.
        size: bytes of guards and slots; uaf: freed slots are guarded;
        quarantine: freed slots that wait before reuse (0 without uaf).
    """

    slots: int
    live: int
    free: int
    quarantined: int
    retired: int
    slot_size: int
    guard_pages: int
    backend: str
    batched: bool
    guard_syscalls: int
    uaf_syscalls: int
    allocations: int
    faults_continued: int
    size: int
    uaf: bool
    quarantine: int


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class PoolStats(_Stats):
    """:meth:`guardalloc.Pool.stats` (and the numpy handler's
    :meth:`~guardalloc.numpy.Handler.pool_stats`).

    Attributes:
        arenas: arenas made; live: live blocks; live_bytes: their requested
            bytes; allocations, frees: since the pool was made.
        corruptions: slack damage found by C-level frees.
        refused: C-level requests answered with NULL (a limit was reached,
            or, with ``grow="pending"``, the size class was waiting for its
            next arena: counted in refused_growing too).
        mapped_bytes: slot bytes of all arenas; address_space: bytes of the
            reservation in use; reserved: bytes reserved.
        max_bytes, max_arenas: the pool's limits.
        kept_bytes: pages of freed large blocks kept resident (keep_bytes).
        classes: slot size -> {"arenas", "slots", "exhausted"} for every
            size class that has an arena.
        refused_growing: of the refused requests, those whose size class
            was waiting for its next arena (``grow="pending"``).
    """

    arenas: int
    live: int
    live_bytes: int
    allocations: int
    frees: int
    corruptions: int
    refused: int
    mapped_bytes: int
    address_space: int
    reserved: int
    max_bytes: int
    max_arenas: int
    kept_bytes: int
    classes: dict[int, dict[str, Any]]
    refused_growing: int = 0


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class HandlerStats(_Stats):
    """:meth:`guardalloc.numpy.Handler.stats`: counts since the handler was
    made.

    Attributes:
        malloc, calloc, realloc, free: numpy's calls.
        fallback: served by numpy's allocator; failed: NULL returned.
        bad_free: free or realloc of a pointer that is no live block.
        corrupt: damaged slack found on free or realloc.
        oversize: requests larger than the pool's largest block (served
            unguarded by numpy's allocator); largest_oversize: bytes of the
            largest of those; oversize_live: those still allocated.
    """

    malloc: int
    calloc: int
    realloc: int
    free: int
    fallback: int
    failed: int
    bad_free: int
    corrupt: int
    oversize: int
    largest_oversize: int
    oversize_live: int


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class PymemStats(_Stats):
    """:func:`guardalloc.pymem.stats`.

    Attributes:
        state: :func:`guardalloc.pymem.state`; sample_rate, random: the
            sampling.
        raw, mem, obj: per domain, {"hooked", "sampling", "sampled"}
            (sampled: requests the pool served).
        live, refused, arenas: the pool's live blocks, refused requests and
            arenas; refused_growing: of the refused requests, those made
            while their size class waited for its next arena (the hooks
            never grow the pool inside an allocation). None, and absent
            from the mapping, while there is no open pool.
    """

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"live", "refused", "arenas", "refused_growing"})

    state: str
    sample_rate: int
    random: bool
    raw: dict[str, Any]
    mem: dict[str, Any]
    obj: dict[str, Any]
    live: Optional[int] = None
    refused: Optional[int] = None
    arenas: Optional[int] = None
    refused_growing: Optional[int] = None


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class NativeStats(_Stats):
    """:func:`guardalloc.native.stats`: the preloaded malloc library's
    counters.

    Attributes:
        allocations, frees, live, refused, arenas, mapped_bytes.
    """

    allocations: int
    frees: int
    live: int
    refused: int
    arenas: int
    mapped_bytes: int

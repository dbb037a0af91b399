"""Finding the guard pages of a 1,000,000-slot arena: the PAGEMAP_SCAN ioctl
against reading every page's /proc/self/pagemap entry (bit 58), side by side.

    python -m pytest bench/bench_maps.py

The arena maps 2,000,001 pages, 1,000,001 of them guards (one between every
two slots) in a single VMA: both sides must return exactly 1,000,001 runs.
A second pair scans 100,000 slots whose data pages are all resident.
Deterministic counts (runs, pages scanned, system calls, VMAs) go to
``benchmark.extra_info``; the "pagemap" side is the baseline.
"""

from __future__ import annotations

import ctypes

import pytest

import guardalloc
from guardalloc.maps import guard_pages, readable_ranges, scan_method, vmas

SLOTS = 1_000_000
# Slots of the arena whose every data page is touched (400 MB resident).
POPULATED_SLOTS = 100_000
SIDES = ["scan", "pagemap"]


def _vmas_in(start: int, end: int) -> int:
    return sum(1 for vma in vmas() if vma.start < end and vma.end > start)


@pytest.fixture(scope="module")
def million_slot_arena():
    arena = guardalloc.Arena(4096, SLOTS, backend="madvise")
    arena.alloc(1, slot=SLOTS - 1).free()   # every guard in place (lazy guards wait for use)
    yield arena
    arena.close()


def _skip_unsupported(side: str) -> None:
    if side == "scan" and scan_method() != "scan":
        pytest.skip("this kernel's PAGEMAP_SCAN does not report guard pages (PAGE_IS_GUARD)")


@pytest.mark.slow
@pytest.mark.benchmark(group="maps: guard_pages of 1,000,000 slots")
@pytest.mark.parametrize("side", SIDES)
def test_guard_pages(benchmark, million_slot_arena, side):
    _skip_unsupported(side)
    arena = million_slot_arena
    runs = benchmark(guard_pages, arena.address, arena.address + arena.size, method=side)
    vmas_in_arena = _vmas_in(arena.address, arena.address + arena.size)
    assert len(runs) == SLOTS + 1 and runs.pages == SLOTS + 1
    assert vmas_in_arena == 1
    benchmark.extra_info.update({
        "side": side,
        "baseline": side == "pagemap",
        "slots": SLOTS,
        "vmas_in_arena": vmas_in_arena,
        "pages_scanned": arena.size // 4096,
        "guard_runs": len(runs),
        "guard_pages": runs.pages,
        "scan_syscalls": runs.syscalls,
    })


@pytest.fixture(scope="module")
def populated_arena():
    arena = guardalloc.Arena(4096, POPULATED_SLOTS, backend="madvise")
    # Open every slot first: past the first 1,024, an arena's untouched
    # slots wait as PROT_NONE until an allocation reaches them (lazy guards).
    arena.alloc(1, slot=POPULATED_SLOTS - 1).free()
    for slot in range(POPULATED_SLOTS):
        ctypes.memset(arena.slot_address(slot), 1, 1)
    yield arena
    arena.close()


@pytest.mark.benchmark(group="maps: guard_pages of 100,000 populated slots")
@pytest.mark.parametrize("side", SIDES)
def test_guard_pages_populated(benchmark, populated_arena, side):
    # Every data page is resident: pagemap must produce an entry for each,
    # PAGEMAP_SCAN only the guard runs.
    _skip_unsupported(side)
    arena = populated_arena
    runs = benchmark(guard_pages, arena.address, arena.address + arena.size, method=side)
    assert len(runs) == POPULATED_SLOTS + 1
    benchmark.extra_info.update({
        "side": side,
        "baseline": side == "pagemap",
        "slots": POPULATED_SLOTS,
        "pages_scanned": arena.size // 4096,
        "guard_runs": len(runs),
        "scan_syscalls": runs.syscalls,
    })


@pytest.mark.slow
@pytest.mark.benchmark(group="maps: readable_ranges with 1,000,000 slots")
@pytest.mark.parametrize("side", SIDES)
def test_readable_ranges(benchmark, million_slot_arena, side):
    _skip_unsupported(side)
    arena = million_slot_arena
    ranges = benchmark(readable_ranges, method=side)
    inside = ranges.within(arena.address, arena.address + arena.size)
    assert len(inside) == SLOTS   # every slot between two guards
    benchmark.extra_info.update({
        "side": side,
        "baseline": side == "pagemap",
        "slots": SLOTS,
        "readable_ranges": len(ranges),
        "readable_ranges_in_arena": len(inside),
    })

"""Use-after-free guards at 10,000 live slots: MADV_GUARD_INSTALL against
mprotect(PROT_NONE), side by side.

One alloc + free cycle of a 64-byte buffer while 10,000 other buffers stay
live. With ``uaf=True`` the free guards the slot's data pages (one system
call) and freed slots leave the quarantine in batches: the madvise backend
lifts a batch's guards with one process_madvise() (up to 1,024 slots, the
older half of the ring when the arena has no other free slot), the
mprotect backend with one mprotect() per slot.
The madvise arena stays one VMA; the mprotect arena is split at every guard
and at every boundary between a guarded (freed) and a readable (live) slot.

``quarantine=0``: one spare slot, so the slot just freed is the next one
handed out (the same page toggles: two calls per cycle on either backend).
``quarantine=1000``: 1,001 spare slots; the ring's older half (~500 slots)
is released at a time, so a cycle costs one guard plus ~1/500 of a release.

    python -m pytest bench/bench_uaf.py --benchmark-columns=median,ops
"""

from __future__ import annotations

import warnings

import pytest

import guardalloc
from guardalloc import Arena

LIVE = 10_000
# Fixed counts, no calibration: the same work for every side.
ROUNDS, ITERATIONS, WARMUP_ROUNDS = 300, 100, 5
SIDES = {
    # side: Arena keyword arguments
    "madvise-uaf": {"backend": "madvise", "uaf": True},
    "mprotect-uaf": {"backend": "mprotect", "uaf": True},
    "madvise-no-uaf": {"backend": "madvise", "uaf": False},
}


def vmas_in_range(start: int, end: int) -> int:
    """VMAs of this process overlapping [start, end)."""
    count = 0
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            low, high = (int(x, 16) for x in line.split(b" ", 1)[0].split(b"-"))
            count += low < end and high > start
    return count


def steady_cycle(arena, quarantine):
    """LIVE live buffers in arena and the alloc(64) + free cycle, run until
    the steady state (the quarantine full, every spare slot freed and
    guarded once). Returns (live, cycle, done): done[0] counts the cycles
    run after this call."""
    live = [arena.alloc(64) for _ in range(LIVE)]
    done = [0]

    def cycle():
        arena.alloc(64).free()
        done[0] += 1

    for _ in range(2 * (quarantine + 1)):
        cycle()
    done[0] = 0
    return live, cycle, done


@pytest.mark.parametrize("quarantine", [0, 1_000])
@pytest.mark.parametrize("side", list(SIDES))
def test_uaf_cycle(benchmark, side, quarantine):
    """alloc(64) + free with 10,000 buffers live in the same arena."""
    benchmark.group = f"uaf: {LIVE:,} live slots, quarantine {quarantine:,}"
    options = dict(SIDES[side])
    if options["backend"] == "madvise" and not guardalloc.support().anonymous:
        pytest.skip("kernel without MADV_GUARD_INSTALL")
    if options["uaf"]:
        options["quarantine"] = quarantine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = Arena(4096, LIVE + quarantine + 1, **options)
    try:
        live, cycle, done = steady_cycle(arena, quarantine)
        before = arena.stats()["uaf_syscalls"]
        benchmark.pedantic(cycle, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=WARMUP_ROUNDS)
        stats = arena.stats()
        cycles = done[0]
        in_arena = vmas_in_range(arena.address, arena.address + arena.size)
        benchmark.extra_info.update(
            side=side, baseline=side == "mprotect-uaf", slots=arena.slots, live=LIVE,
            quarantine=quarantine, vmas_in_arena=in_arena,
            vmas_process=guardalloc.vma_count(),
            uaf_syscalls_per_cycle=(stats["uaf_syscalls"] - before) / cycles,
        )
        assert stats["live"] == LIVE
        if options["backend"] == "madvise":
            # One VMA once every slot was used; before that the never-used
            # tail is PROT_NONE (lazy guards): two.
            used_all = cycles > 0 and arena.stats()["guard_syscalls"] == 2 + 2 * -(-arena.slots // 1024)
            if arena.stats()["batched"]:
                assert in_arena == (1 if used_all else 2), (in_arena, arena.stats())
            else:
                assert in_arena in (1, 2), in_arena
        else:
            # Every guard and every live slot is a VMA of its own.
            assert in_arena >= 2 * LIVE
        spent = stats["uaf_syscalls"] - before
        if not options["uaf"]:
            assert spent == 0
        elif quarantine == 0:
            assert spent == 2 * cycles      # one guard on free, one unguard per slot released
        elif options["backend"] == "mprotect":
            # One mprotect per slot released; a release (~500 slots) may
            # straddle the measured window.
            assert abs(spent - 2 * cycles) <= 501, (spent, cycles)
        else:
            # One guard per free, one process_madvise per release of the
            # ring's older half: 500 or 501 slots (the phase decides which).
            assert cycles + cycles // 501 <= spent <= cycles + -(-cycles // 500) + 1, (spent, cycles)
        for buf in live:
            buf.free()
    finally:
        arena.close()


def test_uaf_cycle_against_kernel_floor(benchmark):
    """The madvise uaf cycle (quarantine 1,000) beside the kernel's own cost
    of the same calls from C (bench/kernel/guard_floor.c's ``uafcycle``: one
    MADV_GUARD_INSTALL per free, 1/1,024 of a batched MADV_GUARD_REMOVE),
    measured right after it: ``ratio_to_floor`` in extra_info."""
    import shutil
    import statistics
    import sys
    from pathlib import Path

    benchmark.group = f"uaf: {LIVE:,} live slots, against the kernel floor"
    if not guardalloc.support().anonymous:
        pytest.skip("kernel without MADV_GUARD_INSTALL")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler for the kernel floor")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "kernel"))
    from guard_floor import run_columns

    arena = Arena(4096, LIVE + 1_000 + 1, backend="madvise", uaf=True, quarantine=1_000)
    try:
        live, cycle, done = steady_cycle(arena, 1_000)
        before = arena.stats()["uaf_syscalls"]
        benchmark.pedantic(cycle, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=WARMUP_ROUNDS)
        cycles = done[0]
        spent = arena.stats()["uaf_syscalls"] - before
        floor_ns = statistics.median(run_columns("guard_floor.c", ["1000", "3"])["uafcycle"])
        median_ns = benchmark.stats.stats.median * 1e9 if benchmark.stats else None
        benchmark.extra_info.update(
            side="madvise-uaf", slots=arena.slots, live=LIVE, quarantine=1_000,
            uaf_syscalls_per_cycle=spent / cycles, floor_uafcycle_ns=floor_ns,
            ratio_to_floor=None if median_ns is None else median_ns / floor_ns)
        # One guard per free plus one batched release per ~500 (as above).
        assert cycles + cycles // 501 <= spent <= cycles + -(-cycles // 500) + 1, (spent, cycles)
        for buf in live:
            buf.free()
    finally:
        arena.close()

"""Use-after-free guards at 10,000 live slots: MADV_GUARD_INSTALL against
mprotect(PROT_NONE), side by side.

One alloc + free cycle of a 64-byte buffer while 10,000 other buffers stay
live. With ``uaf=True`` the free guards the slot's data pages and the reuse
of a freed slot unguards them: two system calls per cycle on either backend.
The madvise arena stays one VMA; the mprotect arena is split at every guard
and at every boundary between a guarded (freed) and a readable (live) slot.

``quarantine=0``: the slot just freed is the next one handed out (the same
page toggles). ``quarantine=1000``: a freed slot waits behind 999 others, so
each cycle guards one slot and unguards another (the FIFO the feature is
for).

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
        live = [arena.alloc(64) for _ in range(LIVE)]

        done = [0]

        def cycle():
            arena.alloc(64).free()
            done[0] += 1

        # Reach the steady state: the quarantine full, every spare slot
        # freed (and guarded) once.
        for _ in range(2 * (quarantine + 1)):
            cycle()
        before = arena.stats()["uaf_syscalls"]
        done[0] = 0
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
            assert in_arena == 1
        else:
            # Every guard and every live slot is a VMA of its own.
            assert in_arena >= 2 * LIVE
        # One guard on free, one unguard on reuse.
        assert stats["uaf_syscalls"] - before == (2 * cycles if options["uaf"] else 0)
        for buf in live:
            buf.free()
    finally:
        arena.close()

"""Leaks: a million alloc/free cycles, thousands of arenas made and dropped.

The soak runs in a fresh child interpreter so that its RSS is not the
pytest process's. It is kept to a few seconds so that CI runs it every
time (marked ``slow``: the default run leaves it out, ``pytest -m slow`` runs it).
"""

from __future__ import annotations

import gc

import pytest

import guardalloc
from guardalloc.faults import registered_arenas

from conftest import run_child


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok"), result.stdout
    return result


@pytest.mark.slow
def test_million_cycles_rss_and_tracemalloc_flat():
    result = _ok(run_child("""
import gc, os, tracemalloc, guardalloc
from conftest import PAGE   # this directory is on the child's path
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

arena = guardalloc.Arena(4096, 256)
uaf = guardalloc.Arena(4096, 256, uaf=True, quarantine=64)

def cycles(n):
    alloc, alloc_raw, free = arena.alloc, arena.alloc_raw, arena.free
    for i in range(n // 5):
        b = alloc(100)                   # explicit free
        b.free()
        with alloc(4000) as b:           # context manager
            pass
        alloc(10)                        # dropped: freed by garbage collection
        free(alloc_raw(1))               # raw address
        try:
            b.free()                     # an error path: DoubleFreeError
        except guardalloc.DoubleFreeError:
            pass
        arena.free(alloc(3000))
    for i in range(n // 50):
        uaf.alloc(4096, zero=False).free()   # two guard syscalls each

cycles(100_000)                          # warm up: freelists, caches
gc.collect()
tracemalloc.start()
rss_before = rss()
traced_before = tracemalloc.get_traced_memory()[0]
cycles(1_000_000)
gc.collect()
traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
rss_growth = rss() - rss_before
tracemalloc.stop()
stats = arena.stats()
print("allocations", stats["allocations"], "rss_growth", rss_growth, "traced_growth", traced_growth)
assert stats["allocations"] == 1_100_000, stats
assert stats["live"] == 0 and uaf.stats()["live"] == 0
assert traced_growth < 16 * 1024, traced_growth
assert rss_growth < 1024 * 1024, rss_growth
print("ok")
""", timeout=300))
    assert "allocations" in result.stdout


def test_closed_and_collected_arenas_return_their_address_space():
    """vma_count, the fault reporter's registry and open fds all go back to
    where they started."""
    import os
    guardalloc.Arena(4096, 1).close()      # the process's cached pidfd is opened once
    gc.collect()
    vmas = guardalloc.vma_count()
    registered = registered_arenas()
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(300):
        arena = guardalloc.Arena(4096, 1000, uaf=i % 2 == 0)
        kept = [arena.alloc(100) for _ in range(10)]
        kept[0].free()
        if i % 3 == 0:
            arena.close()                    # closed with live buffers
        del arena                            # the buffers keep it alive...
        del kept                             # ...until they go
    for i in range(100):
        arena = guardalloc.Arena(4096, 100, backend="mprotect")
        arena.alloc(10)
    for i in range(100):
        with guardalloc.Arena(4096, 16, file="memfd") as arena:
            arena.alloc(10).free()
    del arena
    gc.collect()
    assert guardalloc.vma_count() == vmas
    assert registered_arenas() == registered
    assert len(os.listdir("/proc/self/fd")) == fds


def test_buffer_keeps_its_arena_alive():
    gc.collect()
    vmas = guardalloc.vma_count()
    arena = guardalloc.Arena(4096, 8)
    buf = arena.alloc(100)
    address = arena.address
    del arena
    gc.collect()
    assert buf.arena.address == address         # still mapped
    memoryview(buf)[:3] = b"abc"
    assert bytes(buf)[:3] == b"abc"
    del buf
    gc.collect()
    assert guardalloc.vma_count() == vmas


def test_collected_buffers_free_their_slots():
    arena = guardalloc.Arena(4096, 1000, uaf=True, quarantine=10)
    again = None
    try:
        bufs = [arena.alloc(64) for _ in range(1000)]
        with pytest.raises(MemoryError, match="full"):
            arena.alloc(1)
        del bufs
        stats = arena.stats()
        assert stats["live"] == 0 and stats["quarantined"] == 10
        # In reference cycles too: the cycle collector frees them.
        for _ in range(100):
            holder = [arena.alloc(8)]
            holder.append(holder)
        del holder
        gc.collect()
        assert arena.stats()["live"] == 0
        # Every slot can be handed out again.
        again = [arena.alloc(64) for _ in range(1000)]
        assert len({b.slot for b in again}) == 1000
    finally:
        del again
        arena.close()

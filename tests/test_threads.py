"""Threads: many threads allocating and freeing in one arena lose nothing.

The Arena's C core runs under the GIL and never releases it between reading
and updating the bookkeeping, so concurrent Python threads see each alloc and
free as atomic. These tests hammer one arena from 8 threads with a tiny
switch interval (a thread switch every few bytecodes) and then check that no
slot was lost or handed out twice and that every buffer kept its owner's tag.
"""

from __future__ import annotations

import ctypes
import random
import sys
import threading

import guardalloc
from guardalloc import pool as pool_module
from guardalloc.pool import Pool

from conftest import run_child
from helpers import pool_stress

THREADS = 8


def _hammer(arena, operations: int, seed: int, raw: bool, sizes=None):
    """Run ``operations`` random allocs/frees; return the buffers still held.

    Each buffer gets an 8-byte tag (thread, serial) written on allocation and
    checked on free: a slot handed to two threads at once shows up as a
    foreign tag.
    """
    rng = random.Random(seed)
    held = []      # (buffer or address, address, tag)
    serial = 0
    limit = arena.slots // THREADS
    for _ in range(operations):
        if held and (len(held) >= limit or rng.random() < 0.5):
            obj, address, tag = held.pop(rng.randrange(len(held)))
            assert ctypes.string_at(address, 8) == tag
            arena.free(obj)
        else:
            nbytes = rng.choice(sizes) if sizes else rng.randrange(8, 4097)
            if raw:
                address = obj = arena.alloc_raw(nbytes, zero=False)
            else:
                obj = arena.alloc(nbytes, zero=False)
                address = obj.address
            serial += 1
            tag = (seed << 40 | serial).to_bytes(8, "little")
            ctypes.memmove(address, tag, 8)
            held.append((obj, address, tag))
    return held


def _run_threads(arena, operations: int, raw_threads: int = THREADS // 2, sizes=None):
    results = [None] * THREADS
    errors = []
    barrier = threading.Barrier(THREADS)

    def worker(index):
        try:
            barrier.wait()
            results[index] = _hammer(arena, operations, index + 1, raw=index < raw_threads, sizes=sizes)
        except BaseException as exc:    # reported by the main thread
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
    if errors:
        raise errors[0]
    return results


def _check_consistent(arena, results):
    held = [entry for result in results for entry in result]
    slots = [arena.slot_of(address) for _, address, _ in held]
    assert len(set(slots)) == len(slots), "a slot is held by two buffers"
    for _, address, tag in held:
        assert ctypes.string_at(address, 8) == tag
    stats = arena.stats()
    assert stats["live"] == len(held)
    assert stats["live"] + stats["free"] + stats["quarantined"] + stats["retired"] == stats["slots"]
    assert stats["retired"] == 0
    for obj, _, _ in held:
        arena.free(obj)
    stats = arena.stats()
    assert stats["live"] == 0
    assert stats["free"] + stats["quarantined"] == stats["slots"]
    return stats


def test_eight_threads_share_one_arena():
    """8 threads x 100,000 mixed allocs and frees (Buffers and raw addresses)."""
    arena = guardalloc.Arena(4096, 512)
    try:
        results = _run_threads(arena, 100_000)
        stats = _check_consistent(arena, results)
        # Every allocation is counted once: allocs = frees = the ops that were not frees.
        assert stats["allocations"] > THREADS * 100_000 // 3
    finally:
        arena.close()


def test_threads_with_uaf_quarantine_and_tracebacks():
    """The quarantine ring and traceback tables under threads (fewer ops: syscalls)."""
    arena = guardalloc.Arena(4096, 256, uaf=True, quarantine=32, tracebacks=True)
    try:
        results = _run_threads(arena, 5_000)
        stats = _check_consistent(arena, results)
        # At least the limit waits; released a batch (256 - 32 slots) at a time.
        assert 32 <= stats["quarantined"] < 32 + 224
    finally:
        arena.close()


def test_threads_closing_arena_while_others_allocate():
    """Closing an arena under other threads' feet gives ValueError, not a crash."""
    arena = guardalloc.Arena(4096, 64)
    outcomes = []
    started = threading.Barrier(5)

    def worker():
        started.wait()
        try:
            while True:
                arena.free(arena.alloc(64))
        except ValueError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    arena.close()
    for t in threads:
        t.join()
    assert len(outcomes) == 4
    assert all("closed" in text for text in outcomes)


def test_free_threaded_build_without_gil_is_refused():
    """On a free-threaded CPython run with the GIL forced off (PYTHON_GIL=0),
    Arena refuses to start rather than race: its bookkeeping relies on the GIL."""
    result = run_child(
        """
        import sys, guardalloc
        sys._is_gil_enabled = lambda: False     # what a 3.13t build with PYTHON_GIL=0 reports
        try:
            guardalloc.Arena(4096, 4)
        except RuntimeError as exc:
            print("refused:", exc)
        sys._is_gil_enabled = lambda: True
        guardalloc.Arena(4096, 4).close()
        print("with the GIL: ok")
        """)
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "GIL" in result.stdout
    assert "with the GIL: ok" in result.stdout


# ---------------------------------------------------------------------------
# Pool: its own mutex, with or without the GIL



# Several size classes: exact pages, doubling classes, a dedicated arena.
POOL_SIZES = (8, 100, 4000, 4097, 9000, 40_000, 300_000, 1 << 20)


class _PoolAsArena:
    """Gives _hammer the arena interface it uses, over a Pool."""

    def __init__(self, pool):
        self.pool = pool
        self.slots = 8 * 64
        self.alloc = pool.alloc
        self.alloc_raw = pool.alloc_raw
        self.free = pool.free


def test_eight_threads_share_one_pool():
    """8 threads x 100,000 mixed allocs and frees on one Pool (several size
    classes, Buffers and raw addresses)."""
    with Pool() as pool:
        results = _run_threads(_PoolAsArena(pool), 100_000, sizes=POOL_SIZES)
        held = [entry for result in results for entry in result]
        spans = sorted((address, address + pool.block_size(address)) for _, address, _ in held)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
        for _, address, tag in held:
            assert ctypes.string_at(address, 8) == tag
        stats = pool.stats()
        assert stats["live"] == len(held)
        assert stats["allocations"] - stats["frees"] == len(held)
        for obj, _, _ in held:
            pool.free(obj)
        stats = pool.stats()
        assert stats["live"] == 0 and stats["live_bytes"] == 0 and stats["corruptions"] == 0
        assert stats["allocations"] == stats["frees"]


def test_python_and_c_callers_share_one_pool():
    """Python threads (under the GIL) and C callers (without it, as the
    allocator hooks are) on one pool at the same time."""
    with Pool() as pool:
        c_results = []
        c_threads = [threading.Thread(target=lambda s=s: c_results.append(
            pool_stress(pool, 100_000, s, 20_000))) for s in range(4)]
        for t in c_threads:
            t.start()
        results = _run_threads(_PoolAsArena(pool), 20_000, sizes=POOL_SIZES)
        for t in c_threads:
            t.join()
        assert c_results == [0] * 4
        held = [entry for result in results for entry in result]
        assert pool.stats()["live"] == len(held)
        for obj, _, _ in held:
            pool.free(obj)
        stats = pool.stats()
        assert stats["live"] == 0 and stats["allocations"] == stats["frees"]

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

import pytest

import guardalloc

from conftest import run_child

THREADS = 8


def _hammer(arena, operations: int, seed: int, raw: bool):
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
            nbytes = rng.randrange(8, 4097)
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


def _run_threads(arena, operations: int, raw_threads: int = THREADS // 2):
    results = [None] * THREADS
    errors = []
    barrier = threading.Barrier(THREADS)

    def worker(index):
        try:
            barrier.wait()
            results[index] = _hammer(arena, operations, index + 1, raw=index < raw_threads)
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
        assert stats["quarantined"] == 32
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

"""The size-classed pool: any size, thread safety, VMA bound, error paths."""

from __future__ import annotations

import gc
import os
import random
import signal
import threading

import pytest

import guardalloc
from guardalloc import pool as pool_module
from guardalloc.pool import Pool
from helpers import pool_stress

from conftest import PAGE
MiB = 1 << 20

SIZES = [1, 2, 15, 16, 17, 100, 4095, 4096, 4097, 8191, 32768, 32769, 100_000,
         MiB - 1, MiB, MiB + 1, 5 * MiB + 3, 64 * MiB]


def round_up(n, multiple):
    return (n + multiple - 1) // multiple * multiple


@pytest.fixture
def pool():
    with Pool() as p:
        yield p


def test_every_size_from_one_byte_to_64_mib(pool):
    bufs = []
    for n in SIZES * 2:
        buf = pool.alloc(n)
        view = memoryview(buf)
        assert len(buf) == n and view.nbytes == n
        assert view[0] == 0 and view[-1] == 0          # fresh memory is zero
        view[0] = 0xA5
        view[-1] = 0x5A
        view.release()
        # Right-aligned: the padded end touches the next page, the guard.
        assert (buf.address + round_up(n, 16)) % PAGE == 0
        assert pool.owns(buf.address)
        assert pool.block_size(buf.address) == n
        bufs.append(buf)
    addresses = [b.address for b in bufs]
    assert len(set(addresses)) == len(addresses)
    for buf in bufs:
        data = bytes(buf)
        assert data[0] == (0x5A if len(buf) == 1 else 0xA5) and data[-1] == 0x5A
    stats = pool.stats()
    assert stats["live"] == len(bufs)
    assert stats["live_bytes"] == 2 * sum(SIZES)
    for buf in bufs:
        buf.free()
    assert pool.stats()["live"] == 0


def test_size_classes_waste_at_most_a_quarter():
    previous = 0
    for n in list(range(1, 40 * PAGE, 997)) + [MiB, 64 * MiB, 3 << 30]:
        slot = Pool.slot_size_for(n)
        assert slot % PAGE == 0 and slot >= n
        if n > 8 * PAGE:
            assert slot <= n * 1.25 + PAGE
        assert slot >= previous
        previous = slot
    assert Pool.slot_size_for(1) == PAGE
    assert Pool.slot_size_for(8 * PAGE + 1) == 10 * PAGE


def test_module_level_alloc_uses_the_default_pool():
    buf = guardalloc.alloc(1000)
    assert isinstance(buf, guardalloc.Buffer)
    assert guardalloc.default_pool() is guardalloc.default_pool()
    assert guardalloc.default_pool().owns(buf.address)
    with buf:
        memoryview(buf)[:3] = b"abc"
        assert bytes(buf)[:3] == b"abc"
    assert buf.freed


def test_garbage_collected_buffers_return_to_the_pool(pool):
    bufs = [pool.alloc(n) for n in (10, 5000, 2 * MiB)]
    assert pool.stats()["live"] == 3
    del bufs
    gc.collect()
    assert pool.stats()["live"] == 0


def test_slots_are_reused_and_large_arenas_kept(pool):
    first = pool.alloc(3 * MiB)
    memoryview(first)[:] = b"\x77" * len(first)
    address = first.address
    first.free()
    arenas = pool.stats()["arenas"]
    again = pool.alloc(3 * MiB)
    # The dedicated arena of the class is reused, and its pages were given
    # back (MADV_DONTNEED): the block reads as zero.
    assert again.address == address
    assert pool.stats()["arenas"] == arenas
    assert memoryview(again)[0] == 0 and memoryview(again)[-1] == 0
    again.free()


def test_raw_blocks_and_realloc(pool):
    address = pool.alloc_raw(100)
    import ctypes
    ctypes.memmove(address, b"0123456789" * 10, 100)
    bigger = pool.realloc_raw(address, 9000)
    assert pool.block_size(bigger) == 9000
    assert pool.block_size(address) == 0
    assert ctypes.string_at(bigger, 100) == b"0123456789" * 10
    smaller = pool.realloc_raw(bigger, 5)
    assert ctypes.string_at(smaller, 5) == b"01234"
    pool.free(smaller)
    fresh = pool.realloc_raw(0, 64)
    assert pool.block_size(fresh) == 64
    pool.free(fresh)
    with pytest.raises(guardalloc.InvalidFreeError):
        pool.realloc_raw(smaller, 10)
    buf = pool.alloc(10)
    with pytest.raises(guardalloc.InvalidFreeError, match="Buffer"):
        pool.realloc_raw(buf.address, 20)
    assert pool.stats()["live"] == 1     # nothing leaked
    buf.free()


def vmas_within(low: int, high: int) -> int:
    """VMAs of this process that overlap [low, high): the kernel merges the
    pool's PROT_NONE reservation with a PROT_NONE neighbour (another pool's,
    freed earlier in the run), and that one VMA is still the pool's."""
    count = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            count += start < high and low < end
    return count


def test_vma_count_grows_with_arenas_not_buffers():
    rng = random.Random(4)
    with Pool() as p:
        assert vmas_within(p.address, p.address + p.reserved) == 1    # the reservation
        before = guardalloc.vma_count()
        bufs = [p.alloc(rng.choice((rng.randint(1, 4096), rng.randint(4097, 40_000))))
                for _ in range(100_000)]
        stats = p.stats()
        pool_vmas = vmas_within(p.address, p.address + p.reserved)
        grown = guardalloc.vma_count() - before
        assert stats["live"] == 100_000
        # Neighbouring arenas in the reservation merge: the pool's VMAs are
        # the arenas' run plus the rest of the reservation, whatever the
        # number of buffers (and at most one per arena); an arena of more
        # than 1,024 slots that is not fully used yet adds two (its
        # PROT_NONE tail and its bookkeeping: lazy guards), at most one such
        # arena per class (a class grows only when its arenas are full).
        lazy = sum(1 for c in stats["classes"].values() if c["slots"] > 2 * 1024)
        assert pool_vmas <= min(stats["arenas"] + 1, 4) + 2 * lazy, (pool_vmas, stats["arenas"], lazy)
        assert stats["arenas"] < 200
        # The whole process: the pool's few plus whatever the interpreter
        # mapped for 100,000 Buffer objects (pymalloc arenas, mostly merged).
        assert grown < 100, grown
        del bufs


def test_python_threads_share_a_pool(pool):
    errors = []

    def work(seed):
        rng = random.Random(seed)
        live = []
        try:
            for _ in range(3000):
                if live and rng.random() < 0.5:
                    buf, tag = live.pop(rng.randrange(len(live)))
                    view = memoryview(buf)
                    assert view[0] == tag and view[-1] == tag
                    view.release()
                    buf.free()
                else:
                    buf = pool.alloc(rng.choice((1, 17, 4000, 5000, 40_000, 300_000, 2 * MiB)))
                    tag = rng.randrange(256)
                    view = memoryview(buf)
                    view[0] = view[-1] = tag
                    view.release()
                    live.append((buf, tag))
            for buf, _ in live:
                buf.free()
        except BaseException as exc:   # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pool.stats()["live"] == 0


def test_c_interface_from_eight_threads_without_the_gil(pool):
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(
        pool_stress(pool, 40_000, s, 300_000))) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0] * 8
    stats = pool.stats()
    assert stats["live"] == 0
    assert stats["allocations"] >= 8 * 40_000 // 2


def test_grow_never_serves_only_prepared_classes():
    with Pool(grow="never") as p:
        assert pool_stress(p, 200, 1, 100) == 0
        assert p.stats()["arenas"] == 0 and p.stats()["refused"] > 0
        p.prepare(100)
        refused = p.stats()["refused"]
        assert pool_stress(p, 200, 1, 100) == 0
        assert p.stats()["refused"] == refused
        assert p.stats()["allocations"] > 0
        # Python callers still grow.
        assert len(p.alloc(50_000)) == 50_000


def test_grow_pending_adds_arenas_at_the_next_safe_point():
    with Pool(grow="pending") as p:
        assert pool_stress(p, 50, 1, 100) == 0
        assert p.stats()["refused"] > 0
        for _ in range(100_000):    # the eval loop runs pending calls
            if p.stats()["arenas"]:
                break
        assert p.stats()["arenas"] >= 1
        refused = p.stats()["refused"]
        assert pool_stress(p, 50, 2, 100) == 0
        assert p.stats()["refused"] == refused


def test_limits_raise_memory_error():
    with Pool(max_bytes=2 * MiB) as p:
        big = p.alloc(MiB)
        with pytest.raises(MemoryError, match="max_bytes"):
            p.alloc(2 * MiB)
        big.free()
        # The C interface answers NULL instead.
        assert pool_stress(p, 100, 3, 3 * MiB) == 0
        assert p.stats()["refused"] > 0
    with Pool(max_arenas=1) as p:
        p.alloc(10)
        with pytest.raises(MemoryError, match="max_arenas"):
            p.alloc(MiB)


@pytest.mark.parametrize("nbytes, error", [
    (0, ValueError), (-1, ValueError), (4 << 30, ValueError), (1.5, TypeError), ("8", TypeError),
])
def test_bad_sizes(pool, nbytes, error):
    with pytest.raises(error):
        pool.alloc(nbytes)
    with pytest.raises(error):
        pool.alloc_raw(nbytes)


@pytest.mark.parametrize("options, error", [
    ({"guard_pages": -1}, ValueError), ({"backend": "x"}, ValueError), ({"align": "up"}, ValueError),
    ({"alignment": 3}, ValueError), ({"on_fault": "ignore"}, ValueError),
    ({"quarantine": -1}, ValueError), ({"uaf": True, "backend": "none"}, ValueError),
    ({"tracebacks": 1}, TypeError), ({"grow": "later"}, ValueError),
    ({"max_bytes": 10}, ValueError), ({"max_arenas": 0}, ValueError),
])
def test_bad_options(options, error):
    with pytest.raises(error):
        Pool(**options)


def test_free_errors(pool):
    buf = pool.alloc(100)
    with pytest.raises(guardalloc.InvalidFreeError, match="Buffer"):
        pool.free(buf.address)
    buf.free()
    with pytest.raises(guardalloc.DoubleFreeError):
        pool.free(buf)
    address = pool.alloc_raw(100)
    pool.free(address)
    with pytest.raises(guardalloc.DoubleFreeError):
        pool.free(address)
    with pytest.raises(guardalloc.InvalidFreeError):
        pool.free(address + 1)
    with pytest.raises(guardalloc.ForeignBufferError):
        pool.free(12345)
    with guardalloc.Arena(4096, 2) as arena:
        with pytest.raises(guardalloc.ForeignBufferError):
            pool.free(arena.alloc(10))
    with Pool() as other:
        with pytest.raises(guardalloc.ForeignBufferError):
            pool.free(other.alloc(10))
    with pytest.raises(TypeError):
        pool.free("buffer")


def test_slack_corruption_is_reported_on_free(pool):
    import ctypes
    address = pool.alloc_raw(100)       # 12 slack bytes up to 112
    ctypes.memset(address + 100, 0, 3)
    with pytest.raises(guardalloc.CorruptionError) as info:
        pool.free(address)
    assert info.value.offset == 100 and info.value.damaged == 3
    assert pool.block_size(address) == 0     # freed all the same


def test_pooled_arenas_refuse_direct_use(pool):
    buf = pool.alloc(10)
    with pytest.raises(ValueError, match="Pool"):
        buf.arena.close()
    with pytest.raises(ValueError, match="Pool"):
        buf.arena.alloc(10)
    buf.arena.free(buf)               # goes through the pool
    assert pool.stats()["live"] == 0


def test_close(pool):
    buf = pool.alloc(10)
    address = buf.address
    view = memoryview(buf)
    with pytest.raises(BufferError):
        pool.close()
    view.release()
    pool.close()
    pool.close()
    assert pool.closed and not pool.owns(address)
    with pytest.raises(ValueError):
        memoryview(buf)
    with pytest.raises(ValueError):
        pool.alloc(10)
    with pytest.raises(ValueError):
        pool.stats()
    del buf           # a buffer of a closed pool is just dropped
    assert pool_stress(pool, 10, 1) == 0   # C callers get NULL


def test_fork_child_can_use_the_pool(pool):
    keep = pool.alloc(100)
    memoryview(keep)[:2] = b"ok"
    pid = os.fork()
    if pid == 0:   # pragma: no cover - child
        try:
            ok = bytes(memoryview(keep)[:2]) == b"ok" and pool_stress(pool, 2000, 9) == 0
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("nbytes", [1, 100, 4096, 5000, 300_000, 3 * MiB, 64 * MiB])
def test_overflow_faults(child, nbytes):
    proc = child(f"""
        import ctypes, guardalloc
        buf = guardalloc.Pool(alignment=1).alloc({nbytes})
        ctypes.memset(buf.address, 1, {nbytes})
        print("inside ok", flush=True)
        ctypes.memset(buf.address + {nbytes}, 1, 1)
        print("not reached", flush=True)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "inside ok\n"


def test_underflow_faults_with_left_alignment(child):
    proc = child("""
        import ctypes, guardalloc
        buf = guardalloc.Pool(align="left").alloc(64 << 20)
        ctypes.memset(buf.address, 1, 64 << 20)
        print("inside ok", flush=True)
        ctypes.memset(buf.address - 1, 1, 1)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "inside ok\n"


def test_use_after_free_faults_with_uaf(child):
    proc = child("""
        import ctypes, guardalloc
        pool = guardalloc.Pool(uaf=True)
        address = pool.alloc_raw(5000)
        ctypes.memset(address, 1, 5000)
        pool.free(address)
        print("freed", flush=True)
        ctypes.memset(address, 1, 1)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "freed\n"


def test_buffers_keep_their_pool_alive_and_dropped_pools_are_unmapped():
    import weakref
    before = guardalloc.vma_count()
    pool = Pool()
    pool_ref = weakref.ref(pool)
    buf = pool.alloc(5000)
    memoryview(buf)[:2] = b"hi"
    del pool
    gc.collect()
    assert pool_ref() is not None       # the buffer keeps it
    assert bytes(buf)[:2] == b"hi"
    del buf
    gc.collect()
    assert pool_ref() is None
    assert guardalloc.vma_count() <= before


@pytest.mark.parametrize("backend", ["mprotect", "none"])
def test_other_backends(backend):
    with Pool(backend=backend) as p:
        assert p.backend == backend
        bufs = [p.alloc(n) for n in (1, 5000, 300_000, 3 * MiB)]
        for buf in bufs:
            memoryview(buf)[-1] = 1
            buf.free()
        assert p.stats()["live"] == 0


def test_uaf_pool_recycles_quarantined_slots():
    with Pool(uaf=True, quarantine=2) as p:
        for _ in range(300):
            buf = p.alloc(5000)
            memoryview(buf)[0] = 1
            buf.free()
        assert p.stats()["arenas"] == 1 and p.stats()["live"] == 0


def test_pending_growth_outlived_by_nothing():
    pool = Pool(grow="pending")
    assert pool_stress(pool, 20, 1, 100) == 0     # queues a pending call
    assert pool.stats()["refused"] > 0
    del pool
    gc.collect()
    total = 0
    for i in range(100_000):     # the queued call runs and finds the pool gone
        total += i
    assert total == sum(range(100_000))


# -- large blocks: kept pages and huge pages ------------------------------------

LARGE = 8 << 20


def test_freed_large_block_keeps_its_pages_within_the_budget():
    with Pool(keep_bytes=LARGE) as p:
        buf = p.alloc(LARGE, zero=False)
        memoryview(buf)[:] = b"\x5a" * LARGE
        address = buf.address
        buf.free()
        assert p.stats()["kept_bytes"] >= LARGE      # the whole slot stays resident
        again = p.alloc(LARGE)                        # the same arena, zeroed for the caller
        assert again.address == address
        assert p.stats()["kept_bytes"] == 0
        assert bytes(memoryview(again)[::4096]) == bytes(LARGE // 4096)
        other = p.alloc(LARGE)                        # a second dedicated arena
        again.free()
        other.free()                                  # over the budget: given back
        assert p.stats()["kept_bytes"] <= LARGE + (1 << 21)


@pytest.mark.parametrize("options", [{"keep_bytes": 0}, {"uaf": True}])
def test_large_blocks_give_their_pages_back_without_a_budget(options):
    with Pool(**options) as p:
        p.alloc(LARGE).free()
        assert p.stats()["kept_bytes"] == 0


def test_hugepages_put_the_end_of_a_large_block_on_a_2_mib_boundary():
    with Pool(hugepages=True) as p:
        for nbytes in (LARGE, 3 << 20, 5 * 4096 * 300):
            buf = p.alloc(nbytes)
            assert (buf.address + nbytes) % (2 << 20) == 0, hex(buf.address + nbytes)
            buf.free()


@pytest.mark.parametrize("kwargs, error", [
    ({"hugepages": "yes"}, TypeError), ({"hugepages": 1}, TypeError),
    ({"keep_bytes": -1}, ValueError), ({"keep_bytes": 1.5}, TypeError),
])
def test_large_block_options_are_checked(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        Pool(**kwargs)

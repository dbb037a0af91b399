"""guardalloc.numpy: the NEP 49 handler, its scoping, and the bugs it catches."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import signal
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")

import guardalloc  # noqa: E402
import guardalloc.numpy as gnp  # noqa: E402
from guardalloc.hooks import _numpy_handler  # noqa: E402
from guardalloc.introspect.probe import PAGE_SIZE, support  # noqa: E402

get_handler_name = gnp.get_handler_name


def handler_name_here() -> str:
    """Name of the handler the current context would allocate with."""
    return get_handler_name()


@pytest.fixture
def unraisable(monkeypatch):
    """Collect what goes to sys.unraisablehook (bad frees, damaged slack)."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


# ---------------------------------------------------------------------------
# The handler itself


def test_handler_struct_matches_numpys_layout():
    h = gnp.handler()
    address = ctypes.pythonapi.PyCapsule_GetPointer
    address.restype = ctypes.c_void_p
    address.argtypes = [ctypes.py_object, ctypes.c_char_p]
    struct = address(h.capsule, b"mem_handler")
    assert ctypes.string_at(struct, 11) == b"guardalloc\0"
    assert ctypes.c_uint8.from_address(struct + 127).value == 1      # version
    # numpy reads the same fields back.
    with gnp.guarded():
        a = np.empty(3)
    assert get_handler_name(a) == "guardalloc"
    version = (np._core.multiarray if hasattr(np, "_core") else np.core.multiarray).get_handler_version
    assert version(a) == 1


def test_same_options_same_handler_for_life():
    assert gnp.handler() is gnp.handler(alignment=16) is gnp.handler(fallback=False, alignment=16)
    assert gnp.handler(alignment=1) is not gnp.handler()
    assert gnp.guarded().handler is gnp.handler()
    assert gnp.handler().alignment == 16 and gnp.handler(alignment=1).alignment == 1
    assert gnp.handler().name == gnp.HANDLER_NAME == "guardalloc"


@pytest.mark.parametrize("alignment, error", [
    (0, ValueError), (2, ValueError), (4, ValueError), (8, ValueError), (24, ValueError), (-16, ValueError),
    (16.0, TypeError), (True, TypeError), ("16", TypeError)])
def test_bad_alignment_is_refused(alignment, error):
    with pytest.raises(error, match="alignment"):
        gnp.guarded(alignment=alignment)


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match="native_stacks"):
        gnp.guarded(native_stacks="yes")
    with pytest.raises(TypeError, match="tracebacks"):
        gnp.guarded(tracebacks="yes")
    with pytest.raises(TypeError, match="fallback"):
        gnp.guarded(fallback="yes")
    with pytest.raises(TypeError, match="hashable"):
        gnp.guarded(guard_pages=[1])
    with pytest.raises(TypeError):
        gnp.guarded(no_such_option=1)


def test_set_handler_refuses_other_capsules():
    with pytest.raises(TypeError, match="mem_handler"):
        _numpy_handler.set_handler(object())
    with pytest.raises(TypeError, match="capsule"):
        _numpy_handler.load_numpy_api(object())


def test_handler_cannot_be_made_directly_and_hides_its_pool():
    with pytest.raises(TypeError):
        gnp.Handler()
    h = gnp.handler()
    assert not hasattr(h, "pool")          # closing it would unmap live arrays
    with gnp.guarded():
        a = np.ones(10)
    assert h.pool_stats()["live"] >= 1 and a.sum() == 10
    with pytest.raises(TypeError, match="numpy_capsule"):
        _numpy_handler.make_handler(guardalloc.Pool(max_bytes=1 << 20), object(), {})


# ---------------------------------------------------------------------------
# guarded(): scope, survival, alignment


def test_arrays_made_inside_are_guardalloc_and_outlive_the_block():
    assert handler_name_here() == "default_allocator"
    with gnp.guarded() as h:
        assert handler_name_here() == "guardalloc"
        arrays = [np.arange(n, dtype=np.float64) for n in (1, 100, 8192, 1 << 20)]
    assert handler_name_here() == "default_allocator"
    outside = np.arange(10.0)
    assert get_handler_name(outside) == "default_allocator"
    assert not gnp.is_guarded(outside)
    before = h.stats()["free"]
    for a in arrays:
        assert get_handler_name(a) == "guardalloc"
        assert gnp.is_guarded(a) and gnp.is_guarded(a[1:])
        a += 1                                  # written after the block
        assert a[-1] == a.size and a.sum() == a.size * (a.size + 1) / 2
    del arrays, a
    assert h.stats()["free"] == before + 4     # each freed through its handler


def test_guarded_nests_and_restores():
    with gnp.guarded():
        with gnp.guarded(alignment=1) as exact:
            b = np.empty(5, np.uint8)
        a = np.empty(5, np.uint8)
    assert handler_name_here() == "default_allocator"
    assert get_handler_name(a) == get_handler_name(b) == "guardalloc"
    assert exact.owns(b.ctypes.data) and not exact.owns(a.ctypes.data)


def test_guarded_is_a_decorator():
    @gnp.guarded()
    def make():
        return np.ones(4)

    assert get_handler_name(make()) == "guardalloc"
    assert handler_name_here() == "default_allocator"


@pytest.mark.parametrize("nbytes", [1, 8, 15, 16, 17, 100, 4095, 4096, 4097, 65536, 3 << 20])
def test_data_is_16_byte_aligned_and_ends_at_the_guard(nbytes):
    with gnp.guarded():
        a = np.empty(nbytes, np.uint8)
    address = a.ctypes.data
    assert address % 16 == 0
    padded = -(-nbytes // 16) * 16
    assert (address + padded) % PAGE_SIZE == 0     # padded end touches the guard


@pytest.mark.parametrize("dtype", ["u1", "i2", "f4", "f8", "c16", "U3", "V12"])
def test_byte_exact_mode_ends_at_the_guard(dtype):
    with gnp.guarded(alignment=1):
        a = np.zeros(7, dtype)
    assert (a.ctypes.data + a.nbytes) % PAGE_SIZE == 0
    itemsize = a.dtype.itemsize
    assert a.ctypes.data % (itemsize & -itemsize) == 0   # item-aligned all the same
    assert a.tobytes() == bytes(a.nbytes)


def test_zeros_are_zero_even_in_a_reused_slot():
    h = gnp.handler()
    with gnp.guarded():
        for _ in range(50):
            dirty = np.empty(3000, np.uint8)
            dirty.fill(0xFF)
            address = dirty.ctypes.data
            del dirty
            clean = np.zeros(3000, np.uint8)
            assert not clean.any()
            if clean.ctypes.data == address:
                break
            del clean
    assert h.stats()["calloc"] > 0


def test_growing_arrays_go_through_realloc():
    h = gnp.handler()
    before = h.stats()["realloc"]
    with gnp.guarded():
        a = np.arange(1000, dtype=np.int64)
        a.resize(200_000, refcheck=False)          # in place: PyDataMem_UserRENEW
        grown = np.fromiter((i * i for i in range(50_000)), dtype=np.int64)
        shrunk = np.arange(100_000, dtype=np.int64)
        shrunk.resize(10, refcheck=False)
    assert h.stats()["realloc"] >= before + 3
    assert np.array_equal(a[:1000], np.arange(1000)) and not a[1000:].any()
    assert gnp.is_guarded(a) and gnp.is_guarded(grown) and gnp.is_guarded(shrunk)
    assert grown[-1] == 49_999 ** 2 and grown.sum() == sum(i * i for i in range(50_000))
    assert list(shrunk) == list(range(10))
    # The resized block still ends at the guard (16-byte padding included).
    assert (a.ctypes.data + a.nbytes) % PAGE_SIZE == 0
    # np.resize returns a new array (a fresh allocation), guarded as well.
    with gnp.guarded():
        r = np.resize(np.arange(3), 10)
    assert list(r) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0] and gnp.is_guarded(r)


_OPS = st.lists(
    st.tuples(st.sampled_from(["new", "zeros", "resize", "drop"]),
              st.integers(0, 7), st.integers(0, 300_000)),
    min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, exact=st.booleans())
def test_random_array_lifetimes_keep_their_contents(ops, exact):
    """Arrays made, resized (realloc) and dropped in any order keep their
    contents, stay guarded, and every free finds an intact block."""
    h = gnp.handler(alignment=1 if exact else 16)
    before = h.stats()
    arrays: dict[int, tuple] = {}
    with gnp.guarded(alignment=1 if exact else 16):
        for op, key, n in ops:
            if op in ("new", "zeros") or key not in arrays:
                a = np.zeros(n, np.uint8) if op == "zeros" else np.empty(n, np.uint8)
                a[:] = key + 1
                arrays[key] = (a, n)
            elif op == "resize":
                a, old = arrays[key]
                a.resize(n, refcheck=False)
                keep = min(old, n)
                assert (a[:keep] == key + 1).all() and not a[keep:].any()
                a[:] = key + 1
                arrays[key] = (a, n)
            else:
                del arrays[key]
            for k, (a, size) in arrays.items():
                assert a.size == size and gnp.is_guarded(a)
                assert size == 0 or (a[0] == k + 1 and a[-1] == k + 1)
                if size:
                    end = a.ctypes.data + size
                    assert end % PAGE_SIZE == 0 if exact else (-(-end // 16) * 16) % PAGE_SIZE == 0
    arrays.clear()
    after = h.stats()
    assert after["bad_free"] == before["bad_free"] and after["corrupt"] == before["corrupt"]
    assert after["failed"] == before["failed"]


def test_empty_and_object_arrays():
    with gnp.guarded():
        empty = np.empty(0)
        objects = np.empty(4, dtype=object)      # calloc: NULL pointers
        objects[:] = ["a", 1, None, (2,)]
        strings = np.array(["guard"] * 1000)
    assert empty.size == 0 and get_handler_name(empty) == "guardalloc"
    assert list(objects) == ["a", 1, None, (2,)]
    assert (strings == "guard").all()


# ---------------------------------------------------------------------------
# Context: threads and asyncio tasks outside the block


def test_threads_outside_the_block_use_numpys_allocator():
    inside = threading.Event()
    done = threading.Event()
    seen = {}

    def other_thread():
        inside.wait(10)
        seen["thread"] = get_handler_name(np.ones(100))
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with gnp.guarded():
        inside.set()
        done.wait(10)
        seen["main"] = get_handler_name(np.ones(100))
    t.join()
    assert seen == {"thread": "default_allocator", "main": "guardalloc"}


def test_a_thread_started_inside_the_block_does_not_inherit_it():
    with gnp.guarded():
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            name = pool.submit(lambda: get_handler_name(np.ones(3))).result()
    assert name == "default_allocator"


def test_asyncio_tasks_outside_the_block_use_numpys_allocator():
    async def guarded_task(entered, release):
        with gnp.guarded():
            entered.set()
            await release.wait()              # other tasks run meanwhile
            return get_handler_name(np.ones(10))

    async def plain_task(entered, release):
        await entered.wait()
        name = get_handler_name(np.ones(10))
        release.set()
        return name

    async def main():
        entered, release = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(guarded_task(entered, release), plain_task(entered, release))

    assert asyncio.run(main()) == ["guardalloc", "default_allocator"]


def test_one_guarded_object_entered_by_many_threads():
    scope = gnp.guarded()
    barrier = threading.Barrier(4)
    errors = []

    def worker(i):
        try:
            for _ in range(50):
                with scope:
                    barrier.wait(10) if _ == 0 else None
                    a = np.full(1000 + i, i, dtype=np.int32)
                    assert get_handler_name(a) == "guardalloc"
                assert get_handler_name() == "default_allocator"
                assert (a == i).all()
        except Exception as exc:          # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_exit_in_another_context_than_the_enter_is_an_error():
    scope = gnp.guarded()
    scope.__enter__()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            error = pool.submit(lambda: pytest.raises(RuntimeError, scope.__exit__, None, None, None)).result()
        assert "another context" in str(error.value)
        assert handler_name_here() == "guardalloc"          # still inside here
    finally:
        scope.__exit__(None, None, None)
    assert handler_name_here() == "default_allocator"


def test_threads_allocating_and_freeing_concurrently():
    h = gnp.handler()
    before = h.stats()

    def work(seed):
        rng = np.random.default_rng(seed)
        with gnp.guarded():
            for _ in range(200):
                n = int(rng.integers(1, 20_000))
                a = np.full(n, seed, dtype=np.int64)
                a.resize(n + 100, refcheck=False)
                assert (a[:n] == seed).all()
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(8)))
    after = h.stats()
    assert after["bad_free"] == before["bad_free"] and after["corrupt"] == before["corrupt"]
    assert after["malloc"] - before["malloc"] >= 8 * 200


# ---------------------------------------------------------------------------
# install() / uninstall()


@pytest.fixture
def installing():
    yield
    gnp.uninstall()


def test_install_covers_threads_started_later(installing):
    early_started = threading.Event()
    release = threading.Event()
    early = {}

    def early_thread():
        early_started.set()
        release.wait(10)
        early["name"] = get_handler_name(np.ones(3))

    t_early = threading.Thread(target=early_thread)
    t_early.start()
    early_started.wait(10)

    h = gnp.install()
    assert gnp.installed() is h
    assert handler_name_here() == "guardalloc"
    names = []
    t = threading.Thread(target=lambda: names.append(get_handler_name(np.ones(3))))
    t.start()
    t.join()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        names += pool.map(lambda _: get_handler_name(np.ones(3)), range(4))

    async def in_task():
        loop = asyncio.get_running_loop()
        in_executor = await loop.run_in_executor(None, lambda: get_handler_name(np.ones(3)))
        return get_handler_name(np.ones(3)), in_executor

    names += asyncio.run(in_task())
    release.set()
    t_early.join()
    assert names == ["guardalloc"] * 7
    assert early["name"] == "default_allocator"      # was running already

    assert gnp.uninstall() is True
    assert gnp.installed() is None and gnp.uninstall() is False
    assert handler_name_here() == "default_allocator"
    after = []
    t = threading.Thread(target=lambda: after.append(get_handler_name(np.ones(3))))
    t.start()
    t.join()
    assert after == ["default_allocator"]


def test_install_keeps_an_existing_thread_profile_hook(installing):
    events = []

    def user_hook(frame, event, arg):
        events.append(event)

    threading.setprofile(user_hook)
    try:
        gnp.install(alignment=1)
        names = []
        t = threading.Thread(target=lambda: names.append(get_handler_name(np.ones(3))))
        t.start()
        t.join()
        assert names == ["guardalloc"]
        assert "call" in events                     # the user's hook saw the thread
        gnp.uninstall()
        assert threading.getprofile() is user_hook
    finally:
        threading.setprofile(None)


def test_install_twice_switches_options(installing):
    first = gnp.install()
    second = gnp.install(alignment=1)
    assert gnp.installed() is second is not first
    with gnp.guarded():                              # guarded() still wins inside
        assert get_handler_name(np.ones(1)) == "guardalloc"
    a = np.empty(3, np.uint8)
    assert second.owns(a.ctypes.data) and (a.ctypes.data + 3) % PAGE_SIZE == 0
    gnp.uninstall()
    assert handler_name_here() == "default_allocator"


# ---------------------------------------------------------------------------
# Bad frees and slack damage (reported through sys.unraisablehook)


def _handler_functions(h):
    """numpy's view of the handler: the struct's allocator, through ctypes."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    struct = get(h.capsule, b"mem_handler")
    ptrs = (ctypes.c_void_p * 5).from_address(struct + 128)
    ctx = ptrs[0]
    malloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(ptrs[1])
    calloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)(ptrs[2])
    realloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(ptrs[3])
    free = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(ptrs[4])
    return ctx, malloc, calloc, realloc, free


def test_handler_functions_called_the_way_numpy_calls_them(unraisable):
    h = gnp.handler()
    ctx, malloc, calloc, realloc, free = _handler_functions(h)
    p = malloc(ctx, 100)
    assert p and p % 16 == 0 and h.block_size(p) == 100
    ctypes.memset(p, 0x5A, 100)
    q = realloc(ctx, p, 5000)
    assert q and ctypes.string_at(q, 100) == b"\x5a" * 100 and h.block_size(q) == 5000
    free(ctx, q, 5000)
    z = calloc(ctx, 10, 8)
    assert ctypes.string_at(z, 80) == bytes(80)
    free(ctx, z, 80)
    assert calloc(ctx, 1 << 62, 1 << 62) is None          # overflow: NULL, no crash
    free(ctx, None, 0)                                     # free(NULL) is a no-op
    assert unraisable == []


@pytest.mark.parametrize("alignment", [16, 1])
def test_double_free_and_foreign_free_are_reported_not_fatal(unraisable, alignment):
    h = gnp.handler(alignment=alignment)
    ctx, malloc, _, realloc, free = _handler_functions(h)
    before = h.stats()["bad_free"]
    p = malloc(ctx, 64)
    free(ctx, p, 64)
    free(ctx, p, 64)                                        # double free
    outside = ctypes.create_string_buffer(64)
    free(ctx, ctypes.addressof(outside), 64)                # not from the pool
    assert realloc(ctx, ctypes.addressof(outside), 128) is None
    assert [type(u.exc_value) for u in unraisable] == [
        guardalloc.InvalidFreeError, guardalloc.ForeignBufferError, guardalloc.ForeignBufferError]
    assert unraisable[0].exc_value.address == p
    assert "not a live block" in str(unraisable[0].exc_value)
    assert h.stats()["bad_free"] == before + 3


def test_overflow_into_the_16_byte_slack_is_caught_on_free(unraisable):
    h = gnp.handler()
    with gnp.guarded():
        a = np.zeros(5, np.uint8)                 # 11 slack bytes before the guard
    past_the_end = np.lib.stride_tricks.as_strided(a, shape=(8,))
    past_the_end[5:8] = 7                          # no fault: lands in the slack
    address = a.ctypes.data
    del a, past_the_end
    assert len(unraisable) == 1
    exc = unraisable[0].exc_value
    assert isinstance(exc, guardalloc.CorruptionError)
    assert (exc.address, exc.nbytes, exc.offset, exc.damaged) == (address, 5, 5, 3)
    assert unraisable[0].object is h            # "Exception ignored in: <handler>"
    assert h.stats()["corrupt"] >= 1


def test_overflow_into_the_slack_is_caught_on_realloc(unraisable):
    with gnp.guarded():
        a = np.zeros(3, np.uint8)
    np.lib.stride_tricks.as_strided(a, shape=(4,))[3] = 1
    a.resize(100, refcheck=False)
    assert [type(u.exc_value) for u in unraisable] == [guardalloc.CorruptionError]


def test_slack_damage_is_printed_by_the_default_hook(child):
    proc = child("""
        import numpy as np, guardalloc.numpy as gnp
        with gnp.guarded():
            a = np.zeros(100, np.uint8)           # 12 slack bytes
        np.lib.stride_tricks.as_strided(a, shape=(104,))[100:] = 1
        del a
        print("alive", flush=True)
    """)
    assert proc.returncode == 0 and proc.stdout == "alive\n"
    assert "Exception ignored in: <guardalloc.numpy handler 'guardalloc'" in proc.stderr
    assert "CorruptionError: heap corruption in numpy array data" in proc.stderr
    assert "4 slack byte(s)" in proc.stderr
    assert proc.stderr.count("heap corruption") == 1      # reported once, not by the pool too


# ---------------------------------------------------------------------------
# Limits: the pool refuses, numpy raises or the default allocator serves


def test_pool_limit_without_fallback_raises_memoryerror():
    with gnp.guarded(max_bytes=1 << 20) as h:
        small = np.ones(100)
        with pytest.raises(MemoryError):
            np.empty(8 << 20, np.uint8)
    assert gnp.is_guarded(small) and h.stats()["failed"] >= 1


def test_pool_limit_with_fallback_uses_numpys_allocator(unraisable):
    with gnp.guarded(max_bytes=1 << 20, fallback=True) as h:
        assert h.fallback
        small = np.ones(100)
        big = np.ones(1 << 20)                     # 8 MiB: over the limit
        grown = np.ones(10)
        grown.resize(1 << 20, refcheck=False)      # realloc out of the pool
    assert gnp.is_guarded(small)
    assert not gnp.is_guarded(big) and get_handler_name(big) == "guardalloc"
    assert not gnp.is_guarded(grown) and grown[:10].sum() == 10
    big.resize(2 << 20, refcheck=False)            # realloc of a fallback block
    assert big[:1 << 20].sum() == 1 << 20
    stats = h.stats()
    del small, big, grown                          # fallback blocks freed by numpy's free
    assert stats["fallback"] >= 2 and h.stats()["bad_free"] == 0
    assert unraisable == []


# ---------------------------------------------------------------------------
# The bug class: as_strided with a wrong shape reads past the end

OVER_READ = """
import sys
import numpy as np
from numpy.lib.stride_tricks import as_strided
import guardalloc.numpy as gnp

mode = sys.argv[1]
if mode == "plain":
    a = np.arange(1000, dtype=np.float64)
    keep = np.arange(1000, dtype=np.float64)      # something after it in the heap
else:
    # No native stacks: the report's hint for a block without any is checked.
    options = {"native_stacks": False, **({"alignment": 1} if mode == "exact" else {})}
    with gnp.guarded(**options):
        a = np.arange(1000, dtype=np.float64)
    end = a.ctypes.data + a.nbytes
    from conftest import is_guard_page
    print("END", end, gnp.handler(**options).owns(end),
          int(is_guard_page(end)), flush=True)
view = as_strided(a, shape=(1100,))              # 100 elements too many
print("SUM", view.sum(), "TAIL", view[1000:1004].tolist(), flush=True)
print("survived", flush=True)
"""


def test_as_strided_over_read_is_silent_with_numpys_allocator(child):
    proc = child(OVER_READ, "plain")
    assert proc.returncode == 0, proc.stderr
    assert "survived" in proc.stdout                 # garbage, and nobody noticed


@pytest.mark.parametrize("mode", ["guarded", "exact"])
def test_as_strided_over_read_faults_inside_guarded(child, mode):
    proc = child(OVER_READ, mode)
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stdout, proc.stderr)
    assert "SUM" not in proc.stdout and "survived" not in proc.stdout
    _, end, owned, guard_bit = proc.stdout.split()
    end = int(end)
    # 8000 bytes is a multiple of 16: the data ends exactly at the guard page,
    # the first byte the read cannot have is that guard page's first byte,
    # and it lies in the handler's pool.
    assert end % PAGE_SIZE == 0 and owned == "True"
    if support().pagemap_guard_bit:
        assert guard_bit == "1"
    assert f"heap-buffer-overflow READ at {end:#x}" in proc.stderr
    assert "0 bytes past the end of a 8000-byte buffer" in proc.stderr
    # The hint names what works for a numpy block, not Arena(tracebacks=True).
    assert "allocated at: (not recorded: C callers of a Pool -- the numpy handler" in proc.stderr


def test_one_byte_overflow_faults_in_byte_exact_mode(child):
    proc = child("""
        import numpy as np, guardalloc.numpy as gnp
        with gnp.guarded(alignment=1):
            a = np.zeros(5, np.uint8)
        b = np.lib.stride_tricks.as_strided(a, shape=(6,))
        b[:5] = 1
        print("inside ok", flush=True)
        b[5] = 1
        print("not reached", flush=True)
    """)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout == "inside ok\n"


def test_use_after_free_faults_with_uaf(child):
    proc = child("""
        import ctypes, numpy as np, guardalloc.numpy as gnp
        with gnp.guarded(uaf=True):
            a = np.ones(1000)
        address = a.ctypes.data
        print(ctypes.c_double.from_address(address).value, flush=True)
        del a                                          # the slot's pages are guarded now
        print(ctypes.c_double.from_address(address).value, flush=True)
    """)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout == "1.0\n"


# ---------------------------------------------------------------------------
# numpy stays optional


def test_guardalloc_imports_without_numpy(child):
    proc = child("""
        import sys
        sys.modules["numpy"] = None                   # as if not installed
        import guardalloc
        print("imported", guardalloc.__version__)
        try:
            import guardalloc.numpy
        except ImportError as exc:
            print("ImportError:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout
    assert "pip install 'guardalloc[numpy]'" in proc.stdout

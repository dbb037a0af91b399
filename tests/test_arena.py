"""The arena core: layout, guards, VMA cost, allocation and every error path."""

from __future__ import annotations

import ctypes
import gc
import sys
import signal
import warnings

import pytest

import guardalloc
from guardalloc import Arena
from guardalloc.maps import vmas_in_range

from conftest import PAGE, guard_flags
HAVE_GUARDS = guardalloc.support().anonymous
needs_guards = pytest.mark.skipif(not HAVE_GUARDS, reason="kernel without MADV_GUARD_INSTALL")

BACKENDS = ["madvise", "mprotect", "none"] if HAVE_GUARDS else ["mprotect", "none"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# -- layout -------------------------------------------------------------------

@needs_guards
@pytest.mark.parametrize("guard_pages", [1, 2])
def test_guard_pages_sit_between_every_slot(guard_pages):
    with Arena(2 * PAGE, 50, guard_pages=guard_pages, backend="madvise") as arena:
        flags = guard_flags(arena.address, arena.size // PAGE)
        expected = ([True] * guard_pages + [False] * 2) * 50 + [True] * guard_pages
        assert flags == expected
        assert arena.size == (50 * (2 + guard_pages) + guard_pages) * PAGE


def test_mprotect_guards_are_vmas_not_pagemap_markers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = Arena(PAGE, 10, backend="mprotect")
    with arena:
        assert not any(guard_flags(arena.address, arena.size // PAGE))
        assert vmas_in_range(arena.address, arena.address + arena.size) == 21


def test_slot_size_rounds_up_to_pages():
    with Arena(1, 3, backend="none") as arena:
        assert arena.slot_size == PAGE
        assert arena.stride == PAGE + arena.guard_size
    with Arena(PAGE + 1, 3, backend="none") as arena:
        assert arena.slot_size == 2 * PAGE


def test_slots_do_not_overlap(backend):
    with Arena(PAGE, 64, backend=backend) as arena:
        bufs = [arena.alloc(PAGE) for _ in range(64)]
        spans = sorted((b.address, b.address + len(b)) for b in bufs)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end + arena.guard_size <= start
        assert sorted(b.slot for b in bufs) == list(range(64))
        for b in bufs:
            assert arena.slot_of(b.address) == b.slot
            assert arena.slot_address(b.slot) <= b.address
            b.free()


@pytest.mark.parametrize("nbytes", [1, 15, 16, 17, 100, 4000, PAGE])
@pytest.mark.parametrize("alignment", [1, 8, 16, 64])
def test_right_aligned_buffer_ends_at_the_guard(nbytes, alignment):
    with Arena(PAGE, 4, alignment=alignment) as arena:
        buf = arena.alloc(nbytes)
        slot_end = arena.slot_address(buf.slot) + arena.slot_size
        padded = -(-nbytes // alignment) * alignment
        assert buf.address % alignment == 0
        assert buf.address + padded == slot_end
        assert slot_end - (buf.address + nbytes) < alignment
        if alignment == 1:
            assert buf.address + nbytes == slot_end


@pytest.mark.parametrize("nbytes", [1, 100, PAGE])
def test_left_aligned_buffer_starts_after_the_guard(nbytes):
    with Arena(PAGE, 4, align="left") as arena:
        buf = arena.alloc(nbytes)
        assert buf.address == arena.slot_address(buf.slot)
        assert arena.slot_address(buf.slot) - arena.guard_size >= arena.address


# -- VMA cost -----------------------------------------------------------------

@needs_guards
@pytest.mark.parametrize("batch", [True, False])
def test_madvise_arena_is_one_vma_whatever_the_slot_count(batch):
    # More than GA_OPEN_CHUNK (1,024) slots: guards are laid lazily. Built,
    # the arena is its first guard plus a PROT_NONE tail (two VMAs over the
    # slots, two system calls); opened whole it is one VMA again.
    with Arena(PAGE, 10_000, backend="madvise", batch=batch) as arena:
        assert vmas_in_range(arena.address, arena.address + arena.size) == 2
        assert arena.stats()["guard_syscalls"] == 2
        arena.alloc(1, slot=9_999).free()   # opens every chunk up to it
        assert vmas_in_range(arena.address, arena.address + arena.size) == 1
        stats = arena.stats()
        if batch and guardalloc.support().process_madvise:
            assert stats["batched"] is True
            assert stats["guard_syscalls"] == 2 + 1 + -(-10_000 // 1024)   # 1024 guards per call
        else:
            assert stats["guard_syscalls"] == 2 + 1 + 10_000


@needs_guards
def test_small_arenas_are_guarded_whole_when_built():
    with Arena(PAGE, 1024, backend="madvise") as arena:
        assert vmas_in_range(arena.address, arena.address + arena.size) == 1
        if guardalloc.support().process_madvise:
            assert arena.stats()["guard_syscalls"] == 2   # 1,025 guards
        assert guard_flags(arena.slot_address(1023) - PAGE, 3) == [True, False, True]


@needs_guards
def test_lazy_guards_open_a_chunk_at_a_time():
    with Arena(PAGE, 5_000, backend="madvise") as arena:
        bufs = [arena.alloc(8) for _ in range(1025)]   # the second chunk opens
        assert vmas_in_range(arena.address, arena.address + arena.size) == 2
        if guardalloc.support().process_madvise:
            assert arena.stats()["guard_syscalls"] == 2 + 2 * 2
        # Guards after slots 0 .. 2047; slot 2048 onwards is PROT_NONE.
        assert guard_flags(arena.slot_address(2047) - PAGE, 3) == [True, False, True]
        assert guard_flags(arena.slot_address(0) - PAGE, 1) == [True]
        for buf in bufs:
            buf.free()


@needs_guards
def test_a_million_guarded_slots_are_one_vma():
    with Arena(PAGE, 1_000_000, backend="madvise") as arena:
        arena.alloc(1, slot=999_999).free()
        assert vmas_in_range(arena.address, arena.address + arena.size) == 1
        if guardalloc.support().process_madvise:
            assert arena.stats()["guard_syscalls"] == 2 + 1 + -(-1_000_000 // 1024)
        last = arena.slot_address(999_999)
        assert guard_flags(last - PAGE, 3) == [True, False, True]


def test_traceback_tables_live_in_the_mapping_too():
    before = guardalloc.vma_count()
    with Arena(PAGE, 100_000, tracebacks=True) as arena:
        bufs = [arena.alloc(10) for _ in range(3)]
        for buf in bufs:
            buf.free()
        # 2 x 800 KB of traceback tables would be glibc mmaps of their own;
        # the arena itself is three VMAs while partly open (lazy guards).
        assert guardalloc.vma_count() - before <= 3


def test_vma_count_delta_of_madvise_and_mprotect_arenas():
    gc.collect()
    before = guardalloc.vma_count()
    kind = "madvise" if HAVE_GUARDS else "none"
    arena = Arena(PAGE, 10_000, backend=kind)
    madvise_added = guardalloc.vma_count() - before
    arena.close()
    # The arena, bookkeeping included (0 if it merged), plus its PROT_NONE
    # tail and the first guard's VMA while it is not fully opened.
    assert madvise_added <= 3
    before = guardalloc.vma_count()
    arena = Arena(PAGE, 10_000, backend="mprotect")
    mprotect_added = guardalloc.vma_count() - before
    assert arena.stats()["guard_syscalls"] == 10_001
    arena.close()
    assert 2 * 10_000 <= mprotect_added <= 2 * 10_000 + 3
    assert guardalloc.vma_count() <= before + 1


def test_mprotect_past_max_map_count_fails_cleanly():
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    if limit > 1_000_000:
        pytest.skip("vm.max_map_count is raised on this machine")
    before = guardalloc.vma_count()
    with pytest.raises(MemoryError, match=rf"vm\.max_map_count \({limit}\)"):
        Arena(PAGE, limit // 2 + 10, backend="mprotect")
    assert guardalloc.vma_count() <= before + 1   # nothing left mapped


# -- faults (in children) -------------------------------------------------------

OVERFLOW = """
import ctypes, sys, guardalloc
arena = guardalloc.Arena(4096, 8, alignment=1, backend=sys.argv[1], align=sys.argv[2])
buf = arena.alloc(100)
ctypes.memset(buf.address, 0x41, 100)
print("inside ok", flush=True)
offset = int(sys.argv[3])
ctypes.memset(buf.address + offset, 0x41, 1)
print("survived", flush=True)
"""


@pytest.mark.parametrize("backend", ["madvise", "mprotect"] if HAVE_GUARDS else ["mprotect"])
def test_one_byte_past_a_byte_exact_buffer_faults(child, backend):
    result = child(OVERFLOW, backend, "right", "100")
    assert result.stdout == "inside ok\n"
    assert result.returncode == -signal.SIGSEGV


@pytest.mark.parametrize("backend", ["madvise", "mprotect"] if HAVE_GUARDS else ["mprotect"])
def test_one_byte_before_a_left_aligned_buffer_faults(child, backend):
    result = child(OVERFLOW, backend, "left", "-1")
    assert result.stdout == "inside ok\n"
    assert result.returncode == -signal.SIGSEGV


def test_writes_inside_the_buffer_do_not_fault(child):
    result = child(OVERFLOW, "auto", "right", "99")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "inside ok\nsurvived\n"


def test_no_guard_backend_does_not_fault(child):
    result = child(OVERFLOW, "none", "right", "100")
    assert result.returncode == 0, result.stderr


# -- allocation -----------------------------------------------------------------

def test_alloc_returns_zeroed_buffers_even_on_reuse(backend):
    with Arena(PAGE, 1, backend=backend) as arena:
        buf = arena.alloc(64)
        memoryview(buf)[:] = b"\xff" * 64
        buf.free()
        again = arena.alloc(64)
        assert bytes(again) == bytes(64)
        memoryview(again)[:] = b"\xff" * 64
        again.free()
        raw = arena.alloc(64, zero=False)
        assert bytes(raw) == b"\xff" * 64


def test_alloc_size_limits():
    with Arena(PAGE, 2) as arena:
        for bad in (0, -1, PAGE + 1):
            with pytest.raises(ValueError, match="nbytes must be between 1 and the slot size"):
                arena.alloc(bad)
        with pytest.raises(TypeError):
            arena.alloc(1.5)
        assert len(arena.alloc(PAGE)) == PAGE


def test_full_arena_raises_memory_error():
    with Arena(PAGE, 2) as arena:
        kept = [arena.alloc(1), arena.alloc(1)]
        with pytest.raises(MemoryError, match="arena is full"):
            arena.alloc(1)
        kept.pop().free()
        assert arena.alloc(1).slot in (0, 1)


def test_claiming_a_slot_by_number():
    with Arena(PAGE, 4) as arena:
        buf = arena.alloc(10, slot=2)
        assert buf.slot == 2
        with pytest.raises(ValueError, match="slot 2 is not free"):
            arena.alloc(10, slot=2)
        with pytest.raises(ValueError, match="slot must be between 0 and 3"):
            arena.alloc(10, slot=4)
        others = [arena.alloc(1) for _ in range(3)]
        assert {b.slot for b in others} == {0, 1, 3}
        buf.free()
        assert arena.alloc(1).slot == 2


def test_gc_of_a_buffer_returns_its_slot():
    with Arena(PAGE, 1) as arena:
        arena.alloc(10)   # dropped at once
        buf = arena.alloc(10)
        assert arena.stats()["live"] == 1
        del buf
        gc.collect()
        assert arena.stats()["live"] == 0


def test_with_blocks_free_and_close():
    with Arena(PAGE, 2) as arena:
        with arena.alloc(10) as buf:
            assert arena.stats()["live"] == 1
        assert buf.freed and arena.stats()["live"] == 0
    assert arena.closed


def test_stats_and_properties(backend):
    with Arena(3000, 7, guard_pages=2, backend=backend) as arena:
        a, b = arena.alloc(1), arena.alloc(2)
        b.free()
        stats = arena.stats()
        assert {k: stats[k] for k in ("slots", "live", "free", "slot_size", "guard_pages", "backend")} == {
            "slots": 7, "live": 1, "free": 6, "slot_size": PAGE, "guard_pages": 2, "backend": backend}
        expected_syscalls = {"madvise": 1 if guardalloc.support().process_madvise else 8,
                             "mprotect": 8, "none": 0}[backend]
        assert stats["guard_syscalls"] == expected_syscalls
        assert stats["allocations"] == 2
        assert (arena.slots, arena.slot_size, arena.backend) == (7, PAGE, backend)
        assert arena.size == (7 * 3 + 2) * PAGE
        assert arena.address % PAGE == 0
        assert arena.owns(a.address) and not arena.owns(arena.address + arena.size)
        assert repr(arena).startswith("<guardalloc.Arena at 0x")
        for name in ("address", "size", "slot_size", "slots", "backend"):
            with pytest.raises(AttributeError):
                setattr(arena, name, 1)


def test_auto_picks_madvise_when_supported():
    with Arena(PAGE, 1) as arena:
        assert arena.backend == guardalloc.support().auto_backend


# -- frees that cannot be honoured ------------------------------------------------

def test_double_free_of_a_buffer():
    with Arena(PAGE, 2) as arena:
        buf = arena.alloc(10)
        buf.free()
        with pytest.raises(guardalloc.DoubleFreeError, match="double free") as info:
            arena.free(buf)
        assert info.value.slot == buf.slot
        with pytest.raises(guardalloc.DoubleFreeError):
            buf.free()


def test_buffer_from_another_arena():
    with Arena(PAGE, 2) as one, Arena(PAGE, 2) as other:
        buf = one.alloc(10)
        with pytest.raises(guardalloc.ForeignBufferError, match="another arena"):
            other.free(buf)
        assert isinstance(guardalloc.ForeignBufferError("x"), guardalloc.GuardError)
        with pytest.raises(guardalloc.ForeignBufferError, match="not in this arena"):
            other.free(one.alloc_raw(10))
        buf.free()


def test_raw_addresses_double_and_invalid_free():
    with Arena(PAGE, 2, alignment=1) as arena:
        address = arena.alloc_raw(10)
        with pytest.raises(guardalloc.InvalidFreeError, match="not the start of a live buffer") as info:
            arena.free(address + 1)
        assert (info.value.address, info.value.slot) == (address + 1, 0)
        arena.free(address)
        with pytest.raises(guardalloc.DoubleFreeError) as info:
            arena.free(address)
        assert (info.value.address, info.value.slot) == (address, 0)
        with pytest.raises(guardalloc.InvalidFreeError, match="outside every slot"):
            arena.free(arena.address)       # the first guard page
        with pytest.raises(TypeError, match="takes a guardalloc.Buffer or an address"):
            arena.free("0x1000")


def test_freeing_a_buffer_object_by_address_is_refused():
    with Arena(PAGE, 1) as arena:
        buf = arena.alloc(10)
        with pytest.raises(guardalloc.InvalidFreeError, match="free the Buffer"):
            arena.free(buf.address)
        buf.free()


def test_slack_corruption_is_reported_on_free():
    with Arena(PAGE, 2, alignment=16) as arena:
        buf = arena.alloc(10)                       # 6 bytes of slack before the guard
        ctypes.memset(buf.address + 12, 0, 2)       # 2..3 bytes past the end
        with pytest.raises(guardalloc.CorruptionError, match="2 slack byte") as info:
            buf.free()
        error = info.value
        assert (error.offset, error.damaged, error.nbytes, error.slot) == (12, 2, 10, buf.slot)
        assert buf.freed and arena.stats()["live"] == 0


def test_corruption_of_a_garbage_collected_buffer_reaches_the_unraisable_hook(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with Arena(PAGE, 1, alignment=16) as arena:
        buf = arena.alloc(10)
        ctypes.memset(buf.address + 10, 0, 1)       # first slack byte
        del buf
        gc.collect()
        assert arena.stats()["live"] == 0           # freed all the same
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, guardalloc.CorruptionError)
    assert seen[0].exc_value.offset == 10
    assert seen[0].object is arena


# -- exports, close, use after close ------------------------------------------------

def test_exported_buffer_cannot_be_freed_or_its_arena_closed():
    arena = Arena(PAGE, 2)
    buf = arena.alloc(10)
    view = memoryview(buf)
    with pytest.raises(BufferError, match="memoryview"):
        buf.free()
    with pytest.raises(BufferError, match="memoryview"):
        arena.close()
    view.release()
    buf.free()
    arena.close()


def test_numpy_export_blocks_free():
    np = pytest.importorskip("numpy")
    with Arena(PAGE, 1) as arena:
        buf = arena.alloc(16)
        array = np.frombuffer(buf, dtype=np.uint8)
        with pytest.raises(BufferError):
            buf.free()
        del array
        gc.collect()
        buf.free()


def test_use_after_close_raises_value_error():
    arena = Arena(PAGE, 2)
    buf = arena.alloc(10)
    arena.close()
    arena.close()                                   # idempotent
    assert arena.closed and buf.arena is arena
    for action in (lambda: arena.alloc(1), lambda: arena.alloc_raw(1), lambda: arena.free(buf),
                   lambda: arena.free(0x1000), arena.stats, lambda: arena.address,
                   lambda: memoryview(buf), lambda: bytes(buf), lambda: buf.address,
                   buf.free, lambda: arena.slot_address(0), arena.__enter__):
        with pytest.raises(ValueError, match="closed"):
            action()
    assert "closed" in repr(arena)
    buf = None       # collecting a buffer of a closed arena is harmless
    gc.collect()


def test_buffer_cannot_be_made_directly():
    with pytest.raises(TypeError, match="use Arena.alloc"):
        guardalloc.Buffer()


def test_buffers_are_not_picklable():
    import pickle
    with Arena(PAGE, 1) as arena, arena.alloc(4) as buf:
        with pytest.raises(TypeError):
            pickle.dumps(buf)
        with pytest.raises(TypeError):
            pickle.dumps(arena)


# -- argument validation ------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"slot_size": 0}, "slot_size must be at least 1"),
    ({"slot_size": 2 ** 33}, "slot_size must be at most"),
    ({"slots": 0}, "slots must be between 1"),
    ({"guard_pages": -1}, "guard_pages must be between 1 and"),
    ({"guard_pages": 0}, "guard_pages must be between 1 and"),
    ({"backend": "magic"}, "backend must be"),
    ({"align": "middle"}, "align must be"),
    ({"alignment": 3}, "alignment must be a power of two"),
    ({"alignment": 2 * PAGE}, "alignment must be a power of two"),
    ({"on_fault": "ignore"}, "on_fault must be"),
    ({"uaf": True, "quarantine": 9}, "quarantine must be between 0 and slots"),
    ({"uaf": True, "backend": "none"}, "uaf=True needs guards"),
    ({"slot_size": 2 ** 32 - PAGE, "slots": 2 ** 32 - 1}, "needs .* bytes of address space"),
    ({"slots": 10, "guard_pages": 2 ** 30}, "guards of 1073741824 page"),
])
def test_bad_arguments(kwargs, message):
    args = {"slot_size": PAGE, "slots": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        Arena(args.pop("slot_size"), args.pop("slots"), **args)


def test_huge_arena_reports_memory_error(child):
    # 4 GiB of arena under a 1 GiB address-space limit cannot be mapped.
    result = child("""
        import resource, guardalloc
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        try:
            guardalloc.Arena(1 << 20, 4096)
        except MemoryError as exc:
            print("MemoryError:", exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "MemoryError: cannot map" in result.stdout

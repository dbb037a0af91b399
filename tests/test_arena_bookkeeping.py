"""Where an arena keeps its slot table: inside its own mapping (anonymous
arenas), so that creating one adds a single VMA however many slots it has."""

from __future__ import annotations

import pytest

import guardalloc
from guardalloc.maps import max_map_count, vmas_in_range


@pytest.mark.parametrize("uaf", [False, True])
def test_large_anonymous_arena_adds_one_vma(uaf):
    before = guardalloc.vma_count()
    with guardalloc.Arena(4096, 200_000, backend="madvise", uaf=uaf) as arena:
        # Lazy guards: first guard + PROT_NONE tail + bookkeeping.
        assert guardalloc.vma_count() - before <= 3
        assert vmas_in_range(arena.address, arena.address + arena.size) == 2
        bufs = [arena.alloc(64) for _ in range(1_000)]
        assert [b.slot for b in bufs] == list(range(1_000))
        for b in bufs:
            b.free()
        assert arena.stats()["live"] == 0
        start, end = arena.address, arena.address + arena.size
    # Whole-process counts also move with Python's own allocator (an
    # obmalloc arena for the Buffers above), so check the range itself.
    assert vmas_in_range(start, end) == 0


def test_uaf_quarantine_ring_in_the_mapping_wraps_around():
    """More frees than slots: the ring, carved after the free stack, wraps,
    and slots come back in FIFO order."""
    with guardalloc.Arena(4096, 50, uaf=True) as arena:
        order = []
        for i in range(400):
            buf = arena.alloc(16)
            assert bytes(buf) == bytes(16)   # reused slots come back zeroed
            memoryview(buf)[:1] = bytes([i % 255 + 1])
            order.append(buf.slot)
            buf.free()
        assert order == list(range(50)) * 8
        stats = arena.stats()
        assert stats["live"] == 0 and stats["quarantined"] == 50


def test_bookkeeping_is_outside_the_arena_range():
    """The slot table sits after the last guard: not inside any slot, and
    owns()/slot_of() know nothing of it."""
    with guardalloc.Arena(4096, 10, backend="madvise") as arena:
        end = arena.address + arena.size
        assert not arena.owns(end)
        assert arena.slot_of(end) is None
        assert arena.slot_of(end - 1) is None   # the trailing guard


def test_file_backed_arena_keeps_bookkeeping_out_of_the_file(tmp_path):
    path = tmp_path / "arena.bin"
    with guardalloc.Arena(4096, 8, file=str(path)) as arena:
        size = arena.size
        buf = arena.alloc(4096)
        memoryview(buf)[:] = b"x" * 4096
        buf.free()
    assert path.stat().st_size == size


def test_failed_mprotect_arena_unmaps_its_bookkeeping_too():
    limit = max_map_count()
    slots = limit // 2 + 1000
    before = guardalloc.vma_count()
    with pytest.raises(MemoryError, match="vm.max_map_count"):
        guardalloc.Arena(4096, slots, backend="mprotect")
    assert guardalloc.vma_count() <= before

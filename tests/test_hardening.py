"""Use-after-free guards, the FIFO quarantine, slack corruption checks and
the frees that cannot be honoured, with uaf=True."""

from __future__ import annotations

import ctypes
import gc
import sys
import warnings
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import guardalloc
from guardalloc import Arena

from conftest import PAGE, guard_flags
HAVE_GUARDS = guardalloc.support().anonymous
HAVE_PAGEMAP_BIT = guardalloc.support().pagemap_guard_bit
UAF_BACKENDS = ["madvise", "mprotect"] if HAVE_GUARDS else ["mprotect"]
needs_guards = pytest.mark.skipif(not HAVE_GUARDS, reason="kernel without MADV_GUARD_INSTALL")


@pytest.fixture(params=UAF_BACKENDS)
def backend(request):
    return request.param


def make_arena(*args, **kwargs) -> Arena:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # mprotect fallback
        return Arena(*args, **kwargs)


def data_guarded(arena: Arena, slot: int) -> bool:
    """Whether every data page of a slot is a guard page."""
    return all(guard_flags(arena.slot_address(slot), arena.slot_size // PAGE))


def rss_bytes() -> int:
    """Resident set size from /proc/self/smaps_rollup (statm when missing)."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# -- the quarantine ---------------------------------------------------------------

def test_quarantine_releases_slots_first_in_first_out(backend):
    with make_arena(PAGE, 8, uaf=True, quarantine=3, backend=backend) as arena:
        bufs = [arena.alloc(16) for _ in range(8)]
        for slot in (5, 2, 7, 0):
            bufs[slot].free()
        stats = arena.stats()
        # Slots leave the quarantine a batch at a time (min(1024, slots -
        # quarantine) = 5 here), so all four still wait.
        assert (stats["quarantined"], stats["free"]) == (4, 0)
        # No fresh slot left: the quarantine's older half is released (5, 2),
        # then half of the rest (7), then 0: oldest first.
        again = [arena.alloc(16) for _ in range(4)]
        assert [b.slot for b in again] == [5, 2, 7, 0]
        assert all(bytes(b) == bytes(16) for b in again)          # zero-filled on reuse
        with pytest.raises(MemoryError, match="arena is full"):
            arena.alloc(16)


def test_default_quarantine_reuses_a_freed_slot_only_when_no_fresh_one_is_left():
    with Arena(PAGE, 4, uaf=True) as arena:
        first = arena.alloc(8)
        first.free()
        order = [arena.alloc(8) for _ in range(4)]
        assert [b.slot for b in order] == [1, 2, 3, 0]
        assert arena.stats()["quarantine"] == 4


def test_quarantine_zero_releases_a_batch_and_keeps_the_guards_until_then():
    # quarantine=0 still releases a batch at a time: min(1024, slots) slots.
    with Arena(PAGE, 2, uaf=True, quarantine=0) as arena:
        buf = arena.alloc(8)
        buf.free()
        stats = arena.stats()
        assert (stats["quarantined"], stats["free"]) == (1, 1)
        if HAVE_PAGEMAP_BIT and arena.backend == "madvise":
            assert data_guarded(arena, 0)       # still faults through a stale pointer
        other = arena.alloc(8)
        assert other.slot == 1
        other.free()                            # the batch is full: both released
        stats = arena.stats()
        assert (stats["quarantined"], stats["free"]) == (0, 2)
        if arena.backend == "madvise" and guardalloc.support().process_madvise:
            assert stats["uaf_syscalls"] == 3   # two guards, one batched release
        assert arena.alloc(8).slot == 0         # the oldest on top


@needs_guards
@pytest.mark.skipif(not HAVE_PAGEMAP_BIT, reason="kernel without pagemap guard bit")
def test_free_guards_the_data_pages_and_reuse_unguards_them():
    with Arena(2 * PAGE, 3, uaf=True, quarantine=1, backend="madvise") as arena:
        a, b = arena.alloc(100), arena.alloc(100)
        assert not data_guarded(arena, 0)
        a.free()
        assert data_guarded(arena, 0)
        stats = arena.stats()
        assert stats["uaf_syscalls"] == 1
        b.free()                                 # one beyond the limit: not a batch yet
        assert data_guarded(arena, 0) and data_guarded(arena, 1)
        c = arena.alloc(100)                     # the fresh slot
        assert c.slot == 2
        c.free()                                 # a batch (2) beyond the limit: 0 and 1 go
        assert not data_guarded(arena, 0) and not data_guarded(arena, 1)
        assert data_guarded(arena, 2)
        assert arena.stats()["uaf_syscalls"] == 4   # three guards, one batched release
        assert arena.alloc(100).slot == 0        # the oldest released, on top of the stack


def test_freed_data_is_gone_after_reuse(backend):
    with make_arena(PAGE, 1, uaf=True, backend=backend) as arena:
        buf = arena.alloc(PAGE)
        memoryview(buf)[:] = b"\xab" * PAGE
        buf.free()
        again = arena.alloc(PAGE, zero=False)
        if backend == "madvise":
            assert bytes(again) == bytes(PAGE)   # the kernel dropped the pages
        again.free()


@needs_guards
def test_rss_drops_when_uaf_buffers_are_freed():
    slots = 2048                                  # 8 MiB of data
    with Arena(PAGE, slots, uaf=True, backend="madvise", alignment=1) as arena:
        bufs = [arena.alloc(PAGE) for _ in range(slots)]
        for buf in bufs:
            ctypes.memset(buf.address, 0x5A, PAGE)
        filled = rss_bytes()
        for buf in bufs:
            buf.free()
        freed = rss_bytes()
        assert filled - freed >= slots * PAGE * 3 // 4, (filled, freed)
        assert arena.stats()["quarantined"] == slots


@needs_guards
def test_rss_stays_without_uaf():
    slots = 2048
    with Arena(PAGE, slots, backend="madvise", alignment=1) as arena:
        bufs = [arena.alloc(PAGE) for _ in range(slots)]
        for buf in bufs:
            ctypes.memset(buf.address, 0x5A, PAGE)
        filled = rss_bytes()
        for buf in bufs:
            buf.free()
        assert filled - rss_bytes() < slots * PAGE // 4


# -- frees that cannot be honoured, with use-after-free guards ----------------------

def test_double_free_of_a_quarantined_raw_buffer(backend):
    with make_arena(PAGE, 4, uaf=True, alignment=1, backend=backend) as arena:
        address = arena.alloc_raw(10)
        arena.free(address)
        with pytest.raises(guardalloc.DoubleFreeError, match=r"double free of address 0x[0-9a-f]+ \(slot 0\)") as info:
            arena.free(address)
        assert (info.value.address, info.value.slot) == (address, 0)
        assert arena.stats()["quarantined"] == 1          # nothing changed


def test_double_free_after_the_slot_left_the_quarantine():
    with Arena(PAGE, 2, uaf=True, quarantine=0, alignment=1) as arena:
        address = arena.alloc_raw(10)
        arena.free(address)
        with pytest.raises(guardalloc.DoubleFreeError):
            arena.free(address)


def test_invalid_free_inside_a_quarantined_slot_does_not_touch_it(backend):
    with make_arena(PAGE, 2, uaf=True, alignment=1, backend=backend) as arena:
        address = arena.alloc_raw(10)
        arena.free(address)
        with pytest.raises(guardalloc.InvalidFreeError, match=r"slot 0, quarantined") as info:
            arena.free(address + 3)
        assert (info.value.address, info.value.slot) == (address + 3, 0)
        assert not isinstance(info.value, guardalloc.DoubleFreeError)
        with pytest.raises(guardalloc.InvalidFreeError, match="outside every slot"):
            arena.free(arena.slot_address(1) - 1)           # a guard page
        with pytest.raises(guardalloc.ForeignBufferError, match="not in this arena"):
            arena.free(arena.address + arena.size)
        assert arena.stats()["quarantined"] == 1


def test_errors_form_one_hierarchy():
    for error in (guardalloc.DoubleFreeError, guardalloc.InvalidFreeError,
                  guardalloc.ForeignBufferError, guardalloc.CorruptionError):
        assert issubclass(error, guardalloc.GuardError)
    assert issubclass(guardalloc.ForeignBufferError, guardalloc.InvalidFreeError)
    assert not issubclass(guardalloc.DoubleFreeError, guardalloc.InvalidFreeError)


# -- slack corruption ---------------------------------------------------------------

@pytest.mark.parametrize("alignment, nbytes, offset, count", [
    (16, 100, 100, 1),      # the first slack byte
    (16, 100, 111, 1),      # the last one, right before the guard
    (64, 1, 1, 63),         # all of them
    (8, 13, 14, 2),
])
def test_corruption_names_the_first_damaged_byte_and_the_count(alignment, nbytes, offset, count):
    with Arena(PAGE, 2, alignment=alignment, uaf=True) as arena:
        buf = arena.alloc(nbytes)
        address = buf.address
        ctypes.memset(address + offset, 0x00, count)
        with pytest.raises(guardalloc.CorruptionError) as info:
            buf.free()
        error = info.value
        assert (error.address, error.slot, error.nbytes) == (address, buf.slot, nbytes)
        assert (error.offset, error.damaged) == (offset, count)
        assert f"{count} slack byte(s) past the end of the {nbytes}-byte buffer" in str(error)
        assert f"the first at offset {offset} ({offset - nbytes} bytes past the end)" in str(error)
        # Freed all the same, and quarantined behind its guard.
        assert buf.freed
        stats = arena.stats()
        assert (stats["live"], stats["quarantined"]) == (0, 1)


def test_writing_the_pattern_byte_itself_is_not_corruption():
    with Arena(PAGE, 1, alignment=16) as arena:
        buf = arena.alloc(10)
        ctypes.memset(buf.address + 10, 0xCB, 6)    # GA_SLACK_BYTE
        buf.free()


def test_corruption_of_a_raw_buffer():
    with Arena(PAGE, 1, alignment=32) as arena:
        address = arena.alloc_raw(20)
        ctypes.memset(address + 25, 1, 1)
        with pytest.raises(guardalloc.CorruptionError, match="address 0x") as info:
            arena.free(address)
        assert (info.value.address, info.value.offset, info.value.damaged) == (address, 25, 1)
        assert arena.stats()["live"] == 0


def test_corruption_found_by_the_garbage_collector_goes_to_unraisablehook(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with Arena(PAGE, 1, alignment=16) as arena:
        buf = arena.alloc(10)
        ctypes.memset(buf.address + 15, 7, 1)
        del buf
        gc.collect()
        assert len(seen) == 1
        assert isinstance(seen[0].exc_value, guardalloc.CorruptionError)
        assert "garbage-collected 10-byte buffer" in str(seen[0].exc_value)
        assert arena.stats()["live"] == 0


# -- the allocator as a state machine ------------------------------------------------

class QuarantineMachine(RuleBasedStateMachine):
    """Model: a LIFO stack of fresh/released slots, a FIFO quarantine that
    releases its oldest ``batch`` slots once it holds ``limit + batch``
    (batch = min(1024, slots - limit), at least 1), and the older half of
    them (at least 1, at most 1024) when alloc finds the stack empty; released slots go on the stack
    with the oldest on top. Every reused buffer reads as zeros."""

    SLOTS = 6

    def __init__(self):
        super().__init__()
        self.arena = None

    @initialize(limit=st.integers(0, SLOTS))
    def start(self, limit):
        self.arena = Arena(PAGE, self.SLOTS, uaf=True, quarantine=limit, alignment=1)
        self.limit = limit
        self.stack = list(range(self.SLOTS - 1, -1, -1))   # slot 0 on top
        self.quarantine = deque()
        self.batch = max(1, min(1024, self.SLOTS - limit))
        self.live = {}

    def _release(self, count):
        released = [self.quarantine.popleft() for _ in range(min(count, len(self.quarantine)))]
        self.stack.extend(reversed(released))

    @rule(nbytes=st.integers(1, PAGE))
    def alloc(self, nbytes):
        if not self.stack and self.quarantine:
            self._release(max(1, len(self.quarantine) // 2))
        if self.stack:
            expected = self.stack.pop()
        else:
            with pytest.raises(MemoryError):
                self.arena.alloc(nbytes)
            return
        buf = self.arena.alloc(nbytes)
        assert buf.slot == expected
        assert bytes(buf) == bytes(nbytes)
        memoryview(buf)[:] = b"\x77" * nbytes
        self.live[buf.slot] = buf

    @rule(data=st.data())
    @precondition(lambda self: self.live)
    def free(self, data):
        slot = data.draw(st.sampled_from(sorted(self.live)))
        buf = self.live.pop(slot)
        address = buf.address
        buf.free()
        self.quarantine.append(slot)
        if len(self.quarantine) >= self.limit + self.batch:
            self._release(len(self.quarantine) - self.limit)
        with pytest.raises(guardalloc.DoubleFreeError):
            buf.free()
        with pytest.raises(guardalloc.DoubleFreeError):
            self.arena.free(address)

    @invariant()
    def counts_match(self):
        stats = self.arena.stats()
        assert stats["live"] == len(self.live)
        assert stats["quarantined"] == len(self.quarantine)
        assert stats["free"] == len(self.stack)

    def teardown(self):
        if self.arena is not None:
            for buf in self.live.values():
                buf.free()
            self.arena.close()


QuarantineMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_quarantine_state_machine = QuarantineMachine.TestCase

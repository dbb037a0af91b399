"""Model-based tests: hypothesis drives an Arena and a Pool against pure-Python models
(the only state machines over them; test_hardening has one for the quarantine).

The model is an exact replica of the slot bookkeeping documented in
arena.pyx (a LIFO free stack, a FIFO use-after-free quarantine), so it
predicts which slot every allocation gets. A wrong prediction means a slot
was handed out twice, lost, or the quarantine left its FIFO order. After
every step the invariants check that each live buffer still holds its own
bytes, that stats() agrees with the model, and (madvise backend) that every
freed use-after-free slot is guarded in /proc/self/pagemap.
"""

from __future__ import annotations

import ctypes
from collections import deque

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, precondition, rule,
)

import guardalloc
from guardalloc import DoubleFreeError, ForeignBufferError, InvalidFreeError
from guardalloc.pool import Pool

if not guardalloc.support().anonymous:   # pragma: no cover - depends on the kernel
    pytest.skip("the madvise backend needs MADV_GUARD_INSTALL (Linux 6.13+)", allow_module_level=True)

from conftest import PAGE, is_guard_page
SLOTS = 6
SLOT_SIZE = 2 * PAGE

FREE, LIVE, QUARANTINED = "free", "live", "quarantined"


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _pattern(tag: int, nbytes: int) -> bytes:
    """The bytes a buffer is filled with: distinct per buffer, not constant."""
    return bytes((tag * 31 + i) & 0xFF for i in range(min(nbytes, 256))) * (nbytes // 256 + 1)


class ArenaModel:
    """What the arena's bookkeeping must look like, in plain Python."""

    def __init__(self, slots: int, uaf: bool, quarantine: int):
        self.state = [FREE] * slots
        self.stacked = [True] * slots
        self.free_stack = list(range(slots - 1, -1, -1))   # slot 0 on top
        self.quarantine: deque[int] = deque()
        self.uaf = uaf
        self.quarantine_limit = quarantine
        self.guarded: set[int] = set()      # data pages under a UAF guard
        self.allocations = 0

    def push_free(self, slot: int) -> None:
        self.state[slot] = FREE
        if not self.stacked[slot]:
            self.stacked[slot] = True
            self.free_stack.append(slot)

    def take_slot(self, want: int | None = None) -> int | None:
        if want is not None:
            if self.state[want] != FREE:
                return None
            slot = want
        else:
            slot = None
            while self.free_stack or (slot is None and self.quarantine):
                if not self.free_stack:
                    self.release(max(1, len(self.quarantine) // 2))
                    continue
                candidate = self.free_stack.pop()
                self.stacked[candidate] = False
                if self.state[candidate] == FREE:
                    slot = candidate
                    break
            if slot is None:
                return None
        self.state[slot] = LIVE
        self.guarded.discard(slot)
        self.allocations += 1
        return slot

    def free(self, slot: int) -> None:
        if not self.uaf:
            self.push_free(slot)
            return
        self.state[slot] = QUARANTINED
        self.guarded.add(slot)
        self.quarantine.append(slot)
        if len(self.quarantine) >= self.quarantine_limit + self.batch():
            self.release(len(self.quarantine) - self.quarantine_limit)

    def batch(self) -> int:
        """Slots beyond the limit the quarantine collects before a release."""
        return max(1, min(1024, len(self.state) - self.quarantine_limit))

    def release(self, want: int) -> None:
        """The quarantine's oldest (up to want, at most 1024) slots go back,
        unguarded in one batch, onto the free stack with the oldest on top."""
        released = []
        while len(released) < min(want, 1024) and self.quarantine:
            candidate = self.quarantine.popleft()
            if self.state[candidate] == QUARANTINED:
                released.append(candidate)
        for slot in reversed(released):
            self.guarded.discard(slot)
            self.push_free(slot)

    def counts(self) -> dict:
        return {name: self.state.count(name) for name in (FREE, LIVE, QUARANTINED)}


class Live:
    """A buffer the model knows about: a Buffer object or a raw address."""

    def __init__(self, handle, slot: int, address: int, nbytes: int, tag: int):
        self.handle = handle            # Buffer, or None for alloc_raw
        self.slot = slot
        self.address = address
        self.nbytes = nbytes
        self.tag = tag

    @property
    def raw(self) -> bool:
        return self.handle is None

    def __repr__(self):
        kind = "raw" if self.raw else "Buffer"
        return f"<{kind} slot {self.slot}, {self.nbytes} B>"


class ArenaMachine(RuleBasedStateMachine):
    live = Bundle("live")
    dead = Bundle("dead")

    def __init__(self):
        super().__init__()
        self.arena = None
        self.other = None
        self.model = None
        self.tags = 0
        self.generation = 0     # bumped by close/reopen: older handles are stale
        self.steps_since_open = 0
        self.tracked: set[Live] = set()   # live buffers of the current arena

    @initialize(
        backend=st.sampled_from(["madvise", "madvise", "mprotect", "none"]),
        align=st.sampled_from(["right", "left"]),
        alignment=st.sampled_from([1, 16]),
        uaf=st.booleans(),
        quarantine=st.sampled_from([0, 1, 2, None]),
        file=st.sampled_from([None, None, "memfd"]),
    )
    def build(self, backend, align, alignment, uaf, quarantine, file):
        uaf = uaf and backend != "none"     # use-after-free detection needs guards
        self.config = dict(backend=backend, align=align, alignment=alignment, uaf=uaf,
                           quarantine=quarantine if uaf else None, file=file)
        self.other = guardalloc.Arena(PAGE, 2, backend="madvise")
        self._open()

    def _open(self):
        self.arena = guardalloc.Arena(SLOT_SIZE, SLOTS, **self.config)
        q = self.config["quarantine"]
        self.model = ArenaModel(SLOTS, self.config["uaf"], SLOTS if q is None else q)
        self.generation += 1
        self.tracked.clear()
        self.steps_since_open = 0
        self.last_address = [None] * SLOTS

    def teardown(self):
        for arena in (self.arena, self.other):
            if arena is not None:
                arena.close()

    # -- helpers ------------------------------------------------------------

    def _expected_address(self, slot: int, nbytes: int) -> int:
        padded = _round_up(nbytes, self.config["alignment"])
        offset = SLOT_SIZE - padded if self.config["align"] == "right" else 0
        return self.arena.slot_address(slot) + offset

    def _fill(self, entry: Live) -> None:
        ctypes.memmove(entry.address, _pattern(entry.tag, entry.nbytes), entry.nbytes)

    def _is_current(self, entry: Live) -> bool:
        return entry.generation == self.generation

    # -- allocation ---------------------------------------------------------

    @rule(target=live, nbytes=st.integers(1, SLOT_SIZE), zero=st.booleans())
    def alloc_buffer(self, nbytes, zero):
        return self._alloc(nbytes, False, None, zero)

    @rule(target=live, nbytes=st.integers(1, SLOT_SIZE), zero=st.booleans())
    def alloc_raw(self, nbytes, zero):
        return self._alloc(nbytes, True, None, zero)

    @rule(target=live, nbytes=st.integers(1, SLOT_SIZE), want=st.integers(0, SLOTS - 1))
    def alloc_claiming_a_slot(self, nbytes, want):
        return self._alloc(nbytes, False, want, True)

    def _alloc(self, nbytes, raw, want, zero):
        model = self.model
        expected = model.take_slot(want)
        if expected is None:
            error = MemoryError if want is None else ValueError
            with pytest.raises(error, match="arena is full" if want is None else "not free"):
                if raw:
                    self.arena.alloc_raw(nbytes, zero=zero)
                else:
                    self.arena.alloc(nbytes, zero=zero, slot=want)
            return multiple()
        if raw:
            address = self.arena.alloc_raw(nbytes, zero=zero)
            handle = None
            slot = self.arena.slot_of(address)
        else:
            handle = self.arena.alloc(nbytes, zero=zero, slot=want)
            address, slot = handle.address, handle.slot
            assert len(handle) == handle.nbytes == nbytes
        assert slot == expected, f"allocator chose slot {slot}, the model slot {expected}"
        assert address == self._expected_address(slot, nbytes)
        if zero:
            assert ctypes.string_at(address, nbytes) == bytes(nbytes)
        self.tags += 1
        self.steps_since_open += 1
        self.last_address[slot] = address
        entry = Live(handle, slot, address, nbytes, self.tags)
        entry.generation = self.generation
        self._fill(entry)
        self.tracked.add(entry)
        return entry

    # -- frees --------------------------------------------------------------

    @rule(target=dead, entry=consumes(live), by_method=st.booleans())
    def free(self, entry, by_method):
        if not self._is_current(entry):
            return multiple()
        if entry.raw:
            self.arena.free(entry.address)
        elif by_method:
            entry.handle.free()
            assert entry.handle.freed
        else:
            self.arena.free(entry.handle)
        self.model.free(entry.slot)
        self.tracked.discard(entry)
        return entry

    @rule(entry=consumes(live))
    def drop_reference(self, entry):
        """A Buffer that is garbage collected returns its slot."""
        if entry.raw or not self._is_current(entry):
            return
        handle = entry.handle
        entry.handle = "collected"
        del handle
        self.model.free(entry.slot)
        self.tracked.discard(entry)

    @rule(entry=dead)
    def double_free(self, entry):
        if not self._is_current(entry):
            if not entry.raw:
                with pytest.raises(DoubleFreeError):
                    entry.handle.free()
            return
        if entry.raw:
            if self.model.state[entry.slot] == LIVE:
                return   # the slot was reused: its address may be live again
            # The arena remembers only the last buffer of each slot: a stale
            # address of an older one is merely "not a live buffer".
            last = self.last_address[entry.slot] == entry.address
            with pytest.raises(DoubleFreeError if last else InvalidFreeError) as info:
                self.arena.free(entry.address)
            assert type(info.value) is (DoubleFreeError if last else InvalidFreeError)
            assert info.value.slot == entry.slot
        else:
            with pytest.raises(DoubleFreeError):
                self.arena.free(entry.handle)
            with pytest.raises(DoubleFreeError):
                entry.handle.free()
            with pytest.raises(ValueError, match="freed"):
                memoryview(entry.handle)

    @rule(entry=live, delta=st.sampled_from([1, -1, 7, 16]))
    def invalid_free_interior(self, entry, delta):
        if not self._is_current(entry):
            return
        with pytest.raises(InvalidFreeError) as info:
            self.arena.free(entry.address + delta)
        assert type(info.value) is InvalidFreeError
        if not entry.raw:
            # The Buffer's own address is not a raw allocation either.
            with pytest.raises(InvalidFreeError, match="free the Buffer"):
                self.arena.free(entry.address)

    @precondition(lambda self: self.tracked)
    @rule(nbytes=st.integers(1, PAGE), raw=st.booleans())
    def foreign_free(self, nbytes, raw):
        if raw:
            address = self.other.alloc_raw(nbytes)
            with pytest.raises(ForeignBufferError):
                self.arena.free(address)
            self.other.free(address)
        else:
            buf = self.other.alloc(nbytes)
            with pytest.raises(ForeignBufferError):
                self.arena.free(buf)
            buf.free()
        outside = ctypes.create_string_buffer(16)
        with pytest.raises(ForeignBufferError):
            self.arena.free(ctypes.addressof(outside))

    @rule(entry=live)
    def free_while_exported(self, entry):
        if entry.raw or not self._is_current(entry) or entry.handle == "collected":
            return
        view = memoryview(entry.handle)
        with pytest.raises(BufferError):
            entry.handle.free()
        with pytest.raises(BufferError):
            self.arena.close()
        assert bytes(view) == _pattern(entry.tag, entry.nbytes)[: entry.nbytes]
        view.release()

    # -- close and reopen ---------------------------------------------------

    @precondition(lambda self: self.steps_since_open >= 4)
    @rule()
    def close_and_reopen(self):
        old = self.arena
        old.close()
        old.close()     # idempotent
        assert old.closed
        for call in (lambda: old.alloc(1), lambda: old.alloc_raw(1), old.stats,
                     lambda: old.free(0), lambda: old.slot_address(0)):
            with pytest.raises(ValueError, match="closed"):
                call()
        with pytest.raises(ValueError, match="closed"):
            with old:
                pass
        self._open()

    @rule(entry=live)
    def stale_buffer_after_close(self, entry):
        """A live Buffer of a closed arena is unusable, and foreign to the new one."""
        if self._is_current(entry) or entry.raw or entry.handle == "collected":
            return
        with pytest.raises(ValueError, match="closed"):
            memoryview(entry.handle)
        with pytest.raises(ValueError, match="closed"):
            entry.handle.free()
        with pytest.raises(ForeignBufferError):
            self.arena.free(entry.handle)

    # -- invariants ---------------------------------------------------------

    @invariant()
    def live_buffers_keep_their_bytes(self):
        if self.model is None:
            return
        seen = set()
        for entry in self.tracked:
            assert entry.slot not in seen, f"slot {entry.slot} is held twice"
            seen.add(entry.slot)
            assert self.model.state[entry.slot] == LIVE
            expected = _pattern(entry.tag, entry.nbytes)[: entry.nbytes]
            assert ctypes.string_at(entry.address, entry.nbytes) == expected, entry

    @invariant()
    def stats_match_the_model(self):
        if self.model is None:
            return
        stats = self.arena.stats()
        counts = self.model.counts()
        assert (stats["live"], stats["free"], stats["quarantined"], stats["retired"]) == (
            counts[LIVE], counts[FREE], counts[QUARANTINED], 0)
        assert stats["allocations"] == self.model.allocations
        assert stats["slots"] == SLOTS

    @invariant()
    def freed_slots_are_guarded(self):
        if self.model is None or not self.config["uaf"] or self.config["backend"] != "madvise":
            return
        for slot in range(SLOTS):
            start = self.arena.slot_address(slot)
            assert is_guard_page(start) == (slot in self.model.guarded), slot


ArenaMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_arena_against_model = pytest.mark.slow(ArenaMachine.TestCase)


# ---------------------------------------------------------------------------
# Pool


MiB = 1 << 20
POOL_SIZES = st.one_of(
    st.integers(1, 3 * PAGE),            # the exact classes
    st.integers(3 * PAGE, 200_000),      # the doubling classes
    st.sampled_from([4096, 8192]),       # whole pages: no slack at all
    st.sampled_from([MiB, MiB + 5, 2 * MiB + 5]),  # dedicated one-slot arenas
)


class PoolMachine(RuleBasedStateMachine):
    """A Pool against a model of its live blocks (the one Pool state machine).

    The pool picks arenas and slots itself, so the model does not predict
    addresses; it checks that live blocks never overlap, keep their bytes
    and sizes (Buffers and raw blocks of mixed size classes, freed three
    ways and reallocated), and that the counts in stats() match.
    """

    live = Bundle("pool_live")
    dead = Bundle("pool_dead")

    def __init__(self):
        super().__init__()
        self.pool = None
        self.other = Pool()
        self.tracked: set[Live] = set()
        self.generation = 0
        self.tags = 0
        self.allocations = self.frees = 0
        self.freed_addresses: set[int] = set()

    @initialize(uaf=st.booleans(), alignment=st.sampled_from([1, 16]),
                backend=st.sampled_from(["madvise", "mprotect"]),
                max_bytes=st.sampled_from([None, 1 << 30]))
    def build(self, uaf, alignment, backend, max_bytes):
        self.config = dict(uaf=uaf, alignment=alignment, backend=backend,
                           quarantine=2 if uaf else None)
        if max_bytes is not None:
            self.config["max_bytes"] = max_bytes
        self._open()

    def _open(self):
        self.pool = Pool(**self.config)
        self.generation += 1
        self.tracked.clear()
        self.allocations = self.frees = 0
        self.freed_addresses.clear()

    def teardown(self):
        for pool in (self.pool, self.other):
            if pool is not None:
                pool.close()

    def _current(self, entry):
        return entry.generation == self.generation

    def _add(self, handle, address, nbytes, zero):
        assert self.pool.block_size(address) == nbytes
        if zero:
            assert ctypes.string_at(address, nbytes) == bytes(nbytes)
        self.tags += 1
        self.allocations += 1
        self.freed_addresses.discard(address)
        entry = Live(handle, None, address, nbytes, self.tags)
        entry.generation = self.generation
        ctypes.memmove(address, _pattern(entry.tag, nbytes), nbytes)
        self.tracked.add(entry)
        return entry

    @rule(target=live, nbytes=POOL_SIZES, zero=st.booleans())
    def alloc_buffer(self, nbytes, zero):
        buf = self.pool.alloc(nbytes, zero=zero)
        assert len(buf) == nbytes
        if zero:     # through the buffer protocol too, not only by address
            assert bytes(memoryview(buf)[-1:]) == b"\0"
        return self._add(buf, buf.address, nbytes, zero)

    @rule(target=live, nbytes=POOL_SIZES, zero=st.booleans())
    def alloc_raw(self, nbytes, zero):
        return self._add(None, self.pool.alloc_raw(nbytes, zero=zero), nbytes, zero)

    @rule(target=live, entry=consumes(live), nbytes=POOL_SIZES)
    def realloc_raw(self, entry, nbytes):
        if not self._current(entry):
            return multiple()
        if not entry.raw:
            # A Buffer's block cannot be reallocated by address: nothing changes.
            before = self.pool.stats()
            with pytest.raises(InvalidFreeError):
                self.pool.realloc_raw(entry.address, nbytes)
            assert self.pool.stats()["live"] == before["live"]
            return entry
        moved = self.pool.realloc_raw(entry.address, nbytes)
        kept = min(entry.nbytes, nbytes)
        assert ctypes.string_at(moved, kept) == _pattern(entry.tag, entry.nbytes)[:kept]
        self.tracked.discard(entry)
        self.frees += 1
        if moved != entry.address:
            self.freed_addresses.add(entry.address)
        new = self._add(None, moved, nbytes, False)
        return new

    @rule(target=dead, entry=consumes(live), how=st.sampled_from(["method", "pool", "drop"]))
    def free(self, entry, how):
        if not self._current(entry):
            return multiple()
        if not entry.raw:    # its bytes read through the buffer protocol, too
            assert bytes(entry.handle) == _pattern(entry.tag, entry.nbytes)[: entry.nbytes]
        if entry.raw:
            self.pool.free(entry.address)
        elif how == "method":
            entry.handle.free()
            assert entry.handle.freed
        elif how == "pool":
            self.pool.free(entry.handle)
            assert entry.handle.freed
        else:
            entry.handle = "collected"     # the last reference: garbage collection frees it
        self.tracked.discard(entry)
        self.frees += 1
        self.freed_addresses.add(entry.address)
        assert self.pool.block_size(entry.address) == 0
        return entry if entry.handle != "collected" else multiple()

    @rule(entry=dead)
    def double_free(self, entry):
        if not self._current(entry):
            return
        if not entry.raw:
            with pytest.raises(DoubleFreeError):
                self.pool.free(entry.handle)
        elif entry.address in self.freed_addresses:
            with pytest.raises((DoubleFreeError, InvalidFreeError)) as info:
                self.pool.free(entry.address)
            assert not isinstance(info.value, ForeignBufferError)

    @rule(entry=live, delta=st.sampled_from([1, 8, -1]))
    def bad_frees(self, entry, delta):
        if not self._current(entry):
            return
        with pytest.raises(InvalidFreeError):
            self.pool.free(entry.address + delta)
        if not entry.raw:
            with pytest.raises(InvalidFreeError, match="Buffer"):
                self.pool.free(entry.address)
            view = memoryview(entry.handle)
            with pytest.raises(BufferError):
                self.pool.free(entry.handle)
            with pytest.raises(BufferError):
                self.pool.close()
            view.release()
        other = self.other.alloc(10)
        with pytest.raises(ForeignBufferError):
            self.pool.free(other)
        with pytest.raises(ForeignBufferError):
            self.pool.free(other.address)
        other.free()

    @precondition(lambda self: self.allocations >= 4)
    @rule()
    def close_and_reopen(self):
        old = self.pool
        old.close()
        with pytest.raises(ValueError):
            old.alloc(1)
        with pytest.raises(ValueError):
            old.stats()
        for entry in self.tracked:
            if not entry.raw:
                with pytest.raises(ValueError):
                    memoryview(entry.handle)
        self._open()

    @invariant()
    def blocks_are_disjoint_and_keep_their_bytes(self):
        if self.pool is None:
            return
        spans = sorted((e.address, e.address + e.nbytes) for e in self.tracked)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end <= start, "two live blocks overlap"
        for entry in self.tracked:
            assert self.pool.block_size(entry.address) == entry.nbytes
            expected = _pattern(entry.tag, entry.nbytes)[: entry.nbytes]
            assert ctypes.string_at(entry.address, entry.nbytes) == expected, entry

    @invariant()
    def pool_stats_match(self):
        if self.pool is None:
            return
        stats = self.pool.stats()
        assert stats["live"] == len(self.tracked)
        assert stats["live_bytes"] == sum(e.nbytes for e in self.tracked)
        assert stats["allocations"] == self.allocations
        assert stats["frees"] == self.frees
        assert stats["corruptions"] == 0


PoolMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_pool_against_model = pytest.mark.slow(PoolMachine.TestCase)

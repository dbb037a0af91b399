"""A state machine over the pool: Buffers and raw blocks of mixed sizes,
freed, reallocated and checked against a model of their contents."""

from __future__ import annotations

import ctypes

from hypothesis import settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

import guardalloc
from guardalloc.pool import Pool

SIZES = st.one_of(st.integers(1, 64), st.integers(65, 20_000), st.sampled_from([4096, 8192, 1 << 20, (1 << 20) + 5]))


class PoolMachine(RuleBasedStateMachine):
    buffers = Bundle("buffers")
    raws = Bundle("raws")

    def __init__(self):
        super().__init__()
        self.pool = Pool(max_bytes=1 << 30)
        self.model = {}          # id -> (object or address, nbytes, fill byte)
        self.next_fill = 1

    def fill(self, address, nbytes):
        value = self.next_fill
        self.next_fill = self.next_fill % 251 + 1
        ctypes.memset(address, value, nbytes)
        return value

    @rule(target=buffers, nbytes=SIZES)
    def alloc(self, nbytes):
        buf = self.pool.alloc(nbytes)
        assert len(buf) == nbytes and bytes(memoryview(buf)[-1:]) == b"\0"
        self.model[id(buf)] = (buf, nbytes, self.fill(buf.address, nbytes))
        return buf

    @rule(target=raws, nbytes=SIZES)
    def alloc_raw(self, nbytes):
        address = self.pool.alloc_raw(nbytes)
        key = ("raw", address)
        self.model[key] = (address, nbytes, self.fill(address, nbytes))
        return key

    @rule(buf=consumes(buffers))
    def free_buffer(self, buf):
        _, nbytes, value = self.model.pop(id(buf))
        assert bytes(buf) == bytes([value]) * nbytes
        buf.free()
        assert buf.freed

    @rule(key=consumes(raws))
    def free_raw(self, key):
        address, nbytes, value = self.model.pop(key)
        assert ctypes.string_at(address, nbytes) == bytes([value]) * nbytes
        self.pool.free(address)

    @rule(target=raws, key=consumes(raws), nbytes=SIZES)
    def realloc_raw(self, key, nbytes):
        address, old, value = self.model.pop(key)
        moved = self.pool.realloc_raw(address, nbytes)
        kept = min(old, nbytes)
        assert ctypes.string_at(moved, kept) == bytes([value]) * kept
        assert self.pool.block_size(moved) == nbytes
        new_key = ("raw", moved)
        self.model[new_key] = (moved, nbytes, self.fill(moved, nbytes))
        return new_key

    @invariant()
    def counts_match(self):
        stats = self.pool.stats()
        assert stats["live"] == len(self.model)
        assert stats["live_bytes"] == sum(n for _, n, _ in self.model.values())

    def teardown(self):
        for obj, _, _ in list(self.model.values()):
            if isinstance(obj, guardalloc.Buffer):
                obj.free()
        self.model.clear()
        self.pool.close()


PoolMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestPool = PoolMachine.TestCase

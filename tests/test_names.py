"""One name per concept across Arena, Pool and the numpy handler; the old
names still work for one release, with a DeprecationWarning."""

from __future__ import annotations

import pytest

import guardalloc


def test_owns_and_block_size_on_arena_and_pool():
    with guardalloc.Arena(4096, 4) as arena, guardalloc.Pool() as pool:
        a = arena.alloc_raw(10)
        p = pool.alloc_raw(10)
        assert arena.owns(a) and pool.owns(p)
        assert arena.block_size(a) == 10 and pool.block_size(p) == 10
        assert arena.block_size(a + 1) == 0 and pool.block_size(p + 1) == 0
        assert not arena.owns(p) and not pool.owns(a)
        arena.free(a)
        pool.free(p)


def test_old_pool_names_warn_and_still_answer():
    with guardalloc.Pool() as pool:
        p = pool.alloc_raw(10)
        with pytest.warns(DeprecationWarning, match="use Pool.owns"):
            assert pool.owns_address(p)
        with pytest.warns(DeprecationWarning, match="use Pool.block_size"):
            assert pool.block_nbytes(p) == 10
        pool.free(p)


def test_traceback_switches():
    assert not guardalloc.tracebacks_enabled()
    guardalloc.enable_tracebacks()
    try:
        assert guardalloc.tracebacks_enabled()
    finally:
        guardalloc.disable_tracebacks()
    assert not guardalloc.tracebacks_enabled()


def test_old_traceback_names_warn():
    with pytest.warns(DeprecationWarning, match="enable_tracebacks"):
        guardalloc.set_tracebacks(False)
    with pytest.warns(DeprecationWarning, match="tracebacks_enabled"):
        assert guardalloc.get_tracebacks() is False
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="True or False"):
        guardalloc.set_tracebacks("yes")


def test_internal_helpers_are_not_in_all():
    assert "batching_refused" not in guardalloc.__all__
    for name in guardalloc.__all__:
        assert hasattr(guardalloc, name), name

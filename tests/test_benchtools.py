"""The benchmark toolkit: exact VMA counts, interleaved timing, the pure-Python arena."""

from __future__ import annotations

import pytest

import guardalloc
from guardalloc.bench.timing import PyArena, interleaved, make_arena, measure_create
from guardalloc.maps import vmas_in_range

from conftest import PAGE, is_guard_page


@pytest.mark.parametrize("backend, expected", [("madvise", 1), ("none", 1), ("mprotect", 2 * 100 + 1)])
def test_vmas_in_range_is_exact_per_backend(backend, expected):
    with guardalloc.Arena(4096, 100, backend=backend) as arena:
        assert vmas_in_range(arena.address, arena.address + arena.size) == expected
        # One page inside the arena: exactly the VMA that holds it.
        assert vmas_in_range(arena.address, arena.address + PAGE) == 1


def test_vmas_in_range_rejects_bad_input():
    with pytest.raises(ValueError):
        vmas_in_range(0x2000, 0x1000)
    with pytest.raises(ProcessLookupError):
        vmas_in_range(0, 1, pid=2 ** 22 + 12345)


def test_madvise_arena_is_one_vma_even_for_many_slots():
    """The slot table lives in the arena's mapping: no malloc()ed second VMA."""
    counts = measure_create("madvise-batched", 50_000)
    # Lazy guards: built, the arena is its first guard and a PROT_NONE tail
    # (two system calls), plus the bookkeeping VMA after it.
    assert counts.vmas_in_arena == 2
    assert counts.vmas_added <= 3
    assert counts.guard_syscalls == 2


def test_measure_create_counts_mprotect_vmas_and_syscalls():
    counts = measure_create("mprotect", 500)
    assert counts.vmas_in_arena == 1001
    assert counts.guard_syscalls == 501
    assert counts.seconds > 0


def test_interleaved_alternates_sides_and_reports_per_call():
    calls = []
    result = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                         rounds=3, inner=2)
    assert calls == ["a", "a", "b", "b"] * 3
    assert [len(v) for v in result.samples.values()] == [3, 3]
    assert result.median("a") >= 0
    assert result.ratio("a", "b") > 0


def test_interleaved_setup_and_teardown_stay_untimed_but_run():
    built, closed = [], []
    result = interleaved(
        {"x": lambda state: state * 2},
        rounds=2,
        setup={"x": lambda: built.append(1) or 21},
        teardown={"x": closed.append},
    )
    assert built == [1, 1]
    assert closed == [42, 42]
    assert len(result.samples["x"]) == 2


@pytest.mark.parametrize("rounds, inner, sides", [(0, 1, {"a": int}), (1, 0, {"a": int}), (1, 1, {})])
def test_interleaved_rejects_empty_runs(rounds, inner, sides):
    with pytest.raises(ValueError):
        interleaved(sides, rounds, inner)


def test_python_arena_installs_real_guards():
    arena = PyArena(4096, 10)
    try:
        assert arena.guard_syscalls == 11
        assert vmas_in_range(arena.address, arena.address + arena.size) == 1
        stride = arena.stride
        for i in range(11):
            assert is_guard_page(arena.address + i * stride)
        assert not is_guard_page(arena.address + arena.guard_size)
    finally:
        arena.close()


def test_make_arena_builds_each_side():
    for side in ("madvise-batched", "madvise-per-guard", "mprotect", "none", "python"):
        arena = make_arena(side, 10)
        try:
            assert arena.stats()["slots"] == 10
        finally:
            arena.close()

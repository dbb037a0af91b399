"""The fault handler's registry of arenas (_c/registry.c) at 16, 1,024 and
16,384 live arenas: ``Arena(4096, 1)`` create + close (registration and
removal, each O(log n)), and the handler's lookup by address
(``ga_find_arena``, lock-free, through ctypes: a pair, one address in no arena
and one in the newest arena). ``extra_info`` records the nodes each lookup
visits (``ga_registry_steps``: its comparisons), which grow as log n.

    python -m pytest bench/bench_registry.py --benchmark-columns=median,ops

The previous main's linear table against this one, in one run:
``python bench/compare_previous.py --old-python OLD --only registry``.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os

import pytest

import guardalloc
from guardalloc import Arena
from guardalloc.faults import registered_arenas

COUNTS = [16, 1024, 16384]
MISS = 4096   # an address in no arena (below any mapping)


def _core() -> ctypes.CDLL:
    [path] = glob.glob(os.path.join(os.path.dirname(guardalloc.__file__), "libguardalloc_core*.so"))
    core = ctypes.CDLL(path)
    for name, restype in (("ga_find_arena", ctypes.c_void_p), ("ga_registry_steps", ctypes.c_ulong)):
        getattr(core, name).argtypes = [ctypes.c_void_p]
        getattr(core, name).restype = restype
    return core


@pytest.fixture(scope="module")
def live_arenas():
    """live(n): n - 1 arenas live beside the test's own (grown as asked)."""
    arenas: list = []

    def grow(n: int) -> list:
        while len(arenas) < n - 1:
            arenas.append(Arena(4096, 1, backend="madvise"))
        while len(arenas) > n - 1:
            arenas.pop().close()
        return arenas

    yield grow
    for arena in arenas:
        arena.close()


@pytest.mark.benchmark(group="registry: Arena(4096, 1) create+close")
@pytest.mark.parametrize("arenas", COUNTS)
def test_create_close(benchmark, record, live_arenas, arenas):
    live_arenas(arenas)

    def create_close():
        Arena(4096, 1, backend="madvise").close()

    benchmark.pedantic(create_close, iterations=100, rounds=30, warmup_rounds=2)
    record(benchmark, side=f"{arenas} arenas", baseline=arenas == COUNTS[0], arenas=registered_arenas() + 1)


@pytest.mark.benchmark(group="registry: lookup pair (miss + hit)")
@pytest.mark.parametrize("arenas", COUNTS)
def test_lookup(benchmark, record, live_arenas, arenas):
    live_arenas(arenas)
    core = _core()
    with Arena(4096, 1, backend="madvise") as probe:
        hit = probe.alloc(8).address
        assert core.ga_find_arena(MISS) is None and core.ga_find_arena(hit) is not None
        total = registered_arenas()
        steps = {"miss_steps": core.ga_registry_steps(MISS), "hit_steps": core.ga_registry_steps(hit)}
        # A treap keyed by base: expected depth about 2 ln n.
        assert max(steps.values()) <= 4 * math.log2(total + 1), steps
        find = core.ga_find_arena

        def pair():
            find(MISS)
            find(hit)

        benchmark.pedantic(pair, iterations=1_000, rounds=30, warmup_rounds=2)
        record(benchmark, side=f"{arenas} arenas", baseline=arenas == COUNTS[0], arenas=total, **steps)

"""numpy arrays with numpy's allocator and inside ``guardalloc.numpy.guarded()``.

Each round makes one array and drops it (an allocation and a free through
the handler), for ``np.empty`` and ``np.zeros`` at 1 KiB, 64 KiB and 8 MiB,
side by side in one run:

    python3 -m pytest bench/bench_numpy.py --benchmark-group-by=group

``extra_info`` holds the exact counts: VMAs added over the whole benchmark
and the handler's malloc/calloc/free counters (every round went through the
guarded pool, none fell back).
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")

import guardalloc  # noqa: E402
import guardalloc.numpy as gnp  # noqa: E402

SIZES = {"1KiB": 1 << 10, "64KiB": 64 << 10, "8MiB": 8 << 20}
MAKERS = {"empty": np.empty, "zeros": np.zeros}
MODES = {
    "numpy": None,                       # numpy's default allocator
    "guarded": {},                       # 16-byte aligned (the default)
    "guarded-exact": {"alignment": 1},   # byte-exact
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("maker", list(MAKERS))
def test_numpy_array(benchmark, maker, size, mode):
    make = MAKERS[maker]
    nbytes = SIZES[size]
    options = MODES[mode]
    benchmark.group = f"np.{maker} {size}"
    benchmark.extra_info["nbytes"] = nbytes

    def one_array():
        make(nbytes, np.uint8)

    if options is None:
        vmas_before = guardalloc.vma_count()
        benchmark(one_array)
        benchmark.extra_info["vmas_added"] = guardalloc.vma_count() - vmas_before
        return

    handler = gnp.handler(**options)
    with gnp.guarded(**options):
        one_array()                      # the pool's arena for this size exists now
        vmas_before = guardalloc.vma_count()
        before = handler.stats()
        benchmark(one_array)
        after = handler.stats()
        vmas_added = guardalloc.vma_count() - vmas_before
        # Every round went through the guarded pool.
        assert isinstance(make(nbytes, np.uint8), np.ndarray)
    counts = {k: after[k] - before[k] for k in after}
    assert counts["fallback"] == counts["failed"] == counts["bad_free"] == counts["corrupt"] == 0
    assert counts["malloc"] + counts["calloc"] == counts["free"] > 0
    benchmark.extra_info.update(
        vmas_added=vmas_added,
        handler_allocations=counts["malloc"] + counts["calloc"],
        handler_frees=counts["free"],
    )

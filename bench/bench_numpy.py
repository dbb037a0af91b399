"""numpy arrays with numpy's allocator and inside ``guardalloc.numpy.guarded()``.

Each round makes one array and drops it (an allocation and a free through
the handler), for ``np.empty``, ``np.zeros`` and ``np.zeros`` plus a write
per page, at 1 KiB, 64 KiB and 8 MiB, side by side in one run:

    python3 -m pytest bench/bench_numpy.py --benchmark-group-by=group

The ``empty`` and ``zeros`` rounds only allocate and free: pages that come
fresh from the kernel are faulted in later, when the array is used. The
``zeros+touch`` rounds write one byte per page as well, so that cost is in. ``extra_info`` holds exact
counts for the guarded runs: the handler's allocations and frees during the
benchmark (every round went through the pool, none fell back) and the
arenas the pool added meanwhile (0: one slot is reused round after round).
The 8 MiB ``zeros+touch`` round is issue 14's (numpy's allocator against
the handler, which keeps a freed large block's pages within ``keep_bytes``
and lays large blocks out for transparent huge pages as numpy does).
(Process-wide VMA counts are not stored: the interpreter's own allocations
during the run move them by a few either way.)
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")

import guardalloc.numpy as gnp  # noqa: E402

SIZES = {"1KiB": 1 << 10, "64KiB": 64 << 10, "8MiB": 8 << 20}
PAGE = 4096


def zeros_touched(nbytes, dtype):
    """np.zeros, then one write per page: the page faults that a fresh
    mapping defers to first use are paid inside the round."""
    a = np.zeros(nbytes, dtype)
    a[::PAGE] = 1
    return a


MAKERS = {"empty": np.empty, "zeros": np.zeros, "zeros+touch": zeros_touched}
MODES = {
    "numpy": None,                       # numpy's default allocator
    "guarded": {},                       # 16-byte aligned, native stacks (the defaults)
    "guarded-exact": {"alignment": 1},   # byte-exact
    # What the stacks for fault reports cost: "guarded" against no native
    # stacks (the unwinder at every alloc and free), and Python tracebacks
    # on top (recorded under the GIL).
    "guarded-no-stacks": {"native_stacks": False},
    "guarded-tracebacks": {"tracebacks": True},
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("maker", list(MAKERS))
def test_numpy_array(benchmark, maker, size, mode):
    make = MAKERS[maker]
    nbytes = SIZES[size]
    options = MODES[mode]
    benchmark.group = f"{maker} {size}"
    benchmark.extra_info["nbytes"] = nbytes

    def one_array():
        make(nbytes, np.uint8)

    if options is None:
        benchmark(one_array)
        return

    handler = gnp.handler(**options)
    with gnp.guarded(**options):
        one_array()                      # the pool's arena for this size exists now
        arenas_before = handler.pool_stats()["arenas"]
        before = handler.stats()
        benchmark(one_array)
        after = handler.stats()
        pool_after = handler.pool_stats()
    counts = {k: after[k] - before[k] for k in after}
    assert counts["fallback"] == counts["failed"] == counts["bad_free"] == counts["corrupt"] == 0
    assert counts["malloc"] + counts["calloc"] == counts["free"] > 0
    benchmark.extra_info.update(
        handler_allocations=counts["malloc"] + counts["calloc"],
        handler_frees=counts["free"],
        pool_arenas_added=pool_after["arenas"] - arenas_before,
        pool_arenas=pool_after["arenas"],
        pool_live_blocks=pool_after["live"],
        # Large blocks: pages kept for reuse (keep_bytes) and huge pages.
        pool_kept_bytes=pool_after["kept_bytes"],
        hugepages=handler.options.get("hugepages"),
    )

"""Pool alloc + free against bytearray, per size; and the C interface,
with and without native stacks (``Pool(native_stacks=True)``, what the numpy
handler and the PyMem hooks use).

    python -m pytest bench/bench_pool.py -o python_files='bench_*.py'

Each Python-level round allocates and frees one zeroed buffer (a guarded
``Pool.alloc`` Buffer, or a ``bytearray`` of the same size); both are
written once (first and last byte) so that the pages are really touched.
The VMAs a pool adds for 10,000 live buffers of the size are stored in
``extra_info`` (deterministic).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import guardalloc
from guardalloc import pool as pool_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import load_helper  # noqa: E402

from guardalloc.bench.timing import cpu_clock, interleaved  # noqa: E402

# The helper's functions themselves: the helpers package's wrappers find
# the build by hashing its interfaces on every call (about 1.5 ms).
alloc_free_pairs = load_helper("pool_stress").alloc_free_pairs
pool_stress = load_helper("pool_stress").pool_stress

SIZES = {"64B": 64, "4KiB": 4096, "64KiB": 65536, "1MiB": 1 << 20}


def touch(buf):
    view = memoryview(buf)
    view[0] = 1
    view[-1] = 1
    view.release()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_pool_alloc_free(benchmark, size):
    benchmark.group = f"alloc+free {size} B"
    with guardalloc.Pool() as pool:
        def one():
            buf = pool.alloc(size)          # zeroed, like a bytearray
            touch(buf)
            buf.free()
        benchmark(one)
        before = guardalloc.vma_count()
        live = [pool.alloc(size, zero=False) for _ in range(10_000 if size < (1 << 20) else 200)]
        benchmark.extra_info["vmas_added"] = guardalloc.vma_count() - before
        benchmark.extra_info["live_buffers"] = len(live)
        benchmark.extra_info["arenas"] = pool.stats()["arenas"]
        del live


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_bytearray_alloc_free(benchmark, size):
    benchmark.group = f"alloc+free {size} B"

    def one():
        buf = bytearray(size)
        touch(buf)
        del buf
    benchmark(one)


def test_c_interface_mixed_sizes(benchmark):
    """10,000 malloc/calloc/realloc/free_ptr calls (1 B..64 KiB) without the
    GIL, through the pool's C interface."""
    benchmark.group = "pool C interface"
    with guardalloc.Pool() as pool:
        assert pool_stress(pool, 10_000, 1) == 0
        benchmark(pool_stress, pool, 10_000, 1)
        benchmark.extra_info["calls_per_round"] = 10_000
        benchmark.extra_info["arenas"] = pool.stats()["arenas"]


# malloc + free_ptr pairs per timed call of the native stack rows.
NATIVE_PAIRS = 2_000


@pytest.mark.parametrize("side", ["no stacks", "native stacks"])
def test_c_alloc_free_native_stacks(benchmark, record, side):
    """One 64-byte malloc + free_ptr through the C interface without the GIL
    (NATIVE_PAIRS per round), without and with per-slot native stacks: what
    capturing two stacks (stacks.c's unwinder) adds to an allocation and free."""
    benchmark.group = "alloc+free: C interface, 64 B, native stacks"
    with guardalloc.Pool(native_stacks=side == "native stacks") as pool:
        assert alloc_free_pairs(pool, 100, 64) == 0
        benchmark(alloc_free_pairs, pool, NATIVE_PAIRS, 64)
        record(benchmark, side=side, baseline=side == "no stacks", pairs_per_round=NATIVE_PAIRS,
               arenas=pool.stats()["arenas"])
        assert pool.stats()["live"] == 0


def native_stacks_ratio(rounds: int = 21) -> tuple[float, float, float]:
    """Same-run, interleaved, in this thread's CPU time (2 shared cores:
    waiting for a CPU is not the unwinder's): (ratio, ns per pair without,
    ns per pair with) for a 64-byte C-interface malloc + free_ptr with
    native stacks against without, at the caller's stack depth."""
    with guardalloc.Pool(native_stacks=False) as plain, guardalloc.Pool(native_stacks=True) as stacked:
        result = interleaved({"plain": lambda: alloc_free_pairs(plain, NATIVE_PAIRS, 64),
                              "stacks": lambda: alloc_free_pairs(stacked, NATIVE_PAIRS, 64)},
                             rounds=rounds, clock=cpu_clock)
    return (result.ratio("stacks", "plain"), result.median("plain") / NATIVE_PAIRS * 1e9,
            result.median("stacks") / NATIVE_PAIRS * 1e9)


def test_native_stacks_same_run_ratio(record, benchmark):
    """The interleaved ratio (a figure, not a timed assertion): stored in
    extra_info as ``ratio_x100`` with the two medians in ns."""
    benchmark.group = "alloc+free: C interface, 64 B, native stacks (interleaved)"
    ratio, plain_ns, stacks_ns = benchmark.pedantic(native_stacks_ratio, args=(5,), rounds=1)
    record(benchmark, side="interleaved", ratio_x100=round(ratio * 100), plain_ns=round(plain_ns),
           stacks_ns=round(stacks_ns))


if __name__ == "__main__":
    ratio, plain_ns, stacks_ns = native_stacks_ratio()
    print(f"C-interface alloc+free of 64 B: {plain_ns:.0f} ns without native stacks, "
          f"{stacks_ns:.0f} ns with: {ratio:.2f}x")

"""Pool alloc + free against bytearray, per size; and the C interface.

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
from helpers import pool_stress  # noqa: E402

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

"""The pytest plugin's cost on a slice of numpy's own test suite: plain pytest
against ``pytest --guardalloc`` and ``pytest --guardalloc --guardalloc-forked``,
each a fresh pytest process, in one run (pytest-benchmark's table gives the
ratios to plain). The full ``test_multiarray.py`` comparison, with the same
pass counts checked, is ``python tests/external/numpy_suite.py --plugin``.

    python -m pytest bench/bench_pytest_plugin.py
    python bench/bench_pytest_plugin.py [ROUNDS]          # the slice, interleaved (A B C A B C ...)
    python bench/bench_pytest_plugin.py --full [ROUNDS]   # all of test_multiarray (not huge_vectordot)

The script prints wall time and CPU time (user + system of the pytest
process and of its forked children): on a shared machine the wall-time ratio
moves with the load of the moment, the CPU-time ratio much less.

Measured (``--full 3``, numpy 2.4.6, 14,033 passed on every side; 2-core
machine, first while other builds ran, then quiet):

| run | side | wall s (median) | wall vs plain | CPU s (median) | CPU vs plain |
| --- | --- | --- | --- | --- | --- |
| busy | plain | 50.2 | 1.00x | 27.0 | 1.00x |
| busy | --guardalloc | 52.8 | 1.05x | 33.8 | 1.25x |
| busy | --guardalloc --guardalloc-forked | 61.6 | 1.23x | 36.7 | 1.36x |
| quiet | plain | 25.6 | 1.00x | 25.0 | 1.00x |
| quiet | --guardalloc | 27.7 | 1.08x | 26.9 | 1.07x |
| quiet | --guardalloc --guardalloc-forked | 28.0 | 1.09x | 27.5 | 1.10x |

Targets: at most 1.5x plain without forking, 3x with it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import guardalloc

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="needs numpy")

PACKAGE_PARENT = str(Path(guardalloc.__file__).resolve().parent.parent)
SLICE = ["--pyargs"] + [f"numpy._core.tests.test_multiarray::{name}"
                        for name in ("TestCreation", "TestAttributes", "TestResize", "TestNewBufferProtocol")]
# The whole file but the two tests that time 8 GiB page faults (their wall
# time is the machine's memory, tens of seconds, on every side alike).
FULL = ["--pyargs", "numpy._core.tests.test_multiarray", "-k", "not huge_vectordot"]
SIDES = {"plain": [], "guardalloc": ["--guardalloc"],
         "guardalloc-forked": ["--guardalloc", "--guardalloc-forked"]}
PASSED: dict[str, int] = {}


def run_slice(flags: list[str], scratch: Path, selection: list[str] = SLICE) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)}
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-o", "filterwarnings=", *flags, *selection], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return int(re.search(r"(\d+) passed", proc.stdout).group(1))


@pytest.mark.benchmark(group="pytest plugin: numpy test_multiarray slice")
@pytest.mark.parametrize("side", list(SIDES))
def test_numpy_slice(benchmark, record, side, tmp_path):
    passed = benchmark.pedantic(run_slice, args=(SIDES[side], tmp_path), rounds=3, iterations=1)
    PASSED[side] = passed
    # Guarding changes no outcome: the same pass count as plain.
    assert passed == PASSED.setdefault("plain", passed)
    record(benchmark, side=side, baseline=side == "plain", passed=passed)


def main(argv: list[str]) -> None:
    """Interleaved rounds of every side; print the medians of wall and CPU
    time, their ratios to plain and the pass counts (which must agree)."""
    import tempfile
    import time

    from guardalloc.bench.timing import Comparison, cpu_clock_with_children

    selection = FULL if "--full" in argv else SLICE
    numbers = [a for a in argv if a != "--full"]
    rounds = int(numbers[0]) if numbers else 5
    wall, cpu = Comparison({side: [] for side in SIDES}), Comparison({side: [] for side in SIDES})
    passed: dict[str, set[int]] = {side: set() for side in SIDES}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            for side, flags in SIDES.items():
                started, cpu_started = time.perf_counter(), cpu_clock_with_children()
                passed[side].add(run_slice(flags, Path(scratch), selection))
                wall.samples[side].append(time.perf_counter() - started)
                cpu.samples[side].append(cpu_clock_with_children() - cpu_started)
    print(f"{' '.join(selection)}: {rounds} interleaved rounds")
    print("| side | passed | wall s (median) | wall vs plain | CPU s (median) | CPU vs plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for side in SIDES:
        print(f"| {side} | {', '.join(map(str, sorted(passed[side])))} | {wall.median(side):.1f} | "
              f"{wall.ratio(side, 'plain'):.2f}x | {cpu.median(side):.1f} | {cpu.ratio(side, 'plain'):.2f}x |")
    print("samples (wall s):", {side: [round(x, 1) for x in v] for side, v in wall.samples.items()})
    print("samples (CPU s):", {side: [round(x, 1) for x in v] for side, v in cpu.samples.items()})
    if len({frozenset(p) for p in passed.values()}) != 1:
        raise SystemExit(f"pass counts differ: {passed}")


if __name__ == "__main__":
    main(sys.argv[1:])

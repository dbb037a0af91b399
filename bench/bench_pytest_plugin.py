"""The pytest plugin's cost on a slice of numpy's own test suite: plain pytest
against ``pytest --guardalloc`` and ``pytest --guardalloc --guardalloc-forked``,
each a fresh pytest process, in one run (pytest-benchmark's table gives the
ratios to plain). The full ``test_multiarray.py`` comparison, with the same
pass counts checked, is ``python tests/external/numpy_suite.py --plugin``.

    python -m pytest bench/bench_pytest_plugin.py
    python bench/bench_pytest_plugin.py [ROUNDS]   # interleaved (A B C A B C ...): ratios on a busy machine
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
SIDES = {"plain": [], "guardalloc": ["--guardalloc"],
         "guardalloc-forked": ["--guardalloc", "--guardalloc-forked"]}
PASSED: dict[str, int] = {}


def run_slice(flags: list[str], scratch: Path) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)}
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-o", "filterwarnings=", *flags, *SLICE], cwd=scratch, env=env,
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


def main(rounds: int) -> None:
    """Interleaved rounds of every side; print the medians and the ratios to plain."""
    import tempfile

    from guardalloc.benchtools import interleaved

    with tempfile.TemporaryDirectory() as scratch:
        result = interleaved({side: (lambda flags=flags: run_slice(flags, Path(scratch)))
                              for side, flags in SIDES.items()}, rounds)
    for side in SIDES:
        print(f"{side:20} median {result.median(side):6.2f} s   {result.ratio(side, 'plain'):.2f}x plain"
              if side != "plain" else f"{side:20} median {result.median(side):6.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

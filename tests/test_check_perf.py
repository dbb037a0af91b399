"""bench/check_perf.py, the CI performance check: its baseline layer notices
a 1.5x regression, and every failure is one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardalloc.bench.timing import slowed

CHECK = Path(__file__).resolve().parent.parent / "bench" / "check_perf.py"


def check_perf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True, text=True, timeout=600)


def test_baseline_layer_fails_a_1_5x_regression_one_line_per_figure(tmp_path):
    """Record a baseline here and now, then slow guardalloc's side of every
    figure down 1.5x through the check's own hook: every figure must fail.
    (The committed baseline is not used: it belongs to the CI machine.)"""
    baseline = tmp_path / "baseline.json"
    recorded = check_perf("--refresh-baseline", "--runs", "1", "--baseline", str(baseline))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    figures = json.loads(baseline.read_text())["figures"]
    assert set(figures) == {"create", "teardown", "alloc+free"}

    slowed_run = check_perf("--only", "baseline", "--slow-down", "1.5", "--baseline", str(baseline))
    out = slowed_run.stdout + slowed_run.stderr
    assert slowed_run.returncode == 1, out
    assert "Traceback" not in out
    fails = [line for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert len(fails) == len(figures), out
    for name in figures:
        assert sum(line.strip().startswith(f"FAIL {name}:") for line in fails) == 1, out


def test_a_missing_or_old_baseline_is_one_fail_line(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))   # the pytest-benchmark form
    for path in (old, tmp_path / "missing.json"):
        result = check_perf("--only", "baseline", "--baseline", str(path))
        assert result.returncode == 1
        assert "Traceback" not in result.stdout + result.stderr
        fails = [line for line in result.stdout.splitlines() if "FAIL" in line and "--refresh-baseline" in line]
        assert len(fails) == 1, result.stdout


def test_bad_slow_down_is_a_usage_error():
    result = check_perf("--slow-down", "0.5")
    assert result.returncode == 2 and "must be between 1 and 100" in result.stderr


class FakeClock:
    """A clock that advances by one unit per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_slowed_spins_factor_minus_one_times_the_call_on_its_clock():
    clock = FakeClock()

    def work(x):
        clock.now += 10.0   # the call takes 10 units
        return x * 2

    slow = slowed(work, 1.5, clock=clock)
    assert slow(21) == 42
    # start at 1, the call ends at 12 (11 units), the spin runs until 12 + 5.5.
    assert clock.now >= 12 + 11 * 0.5


def test_slowed_by_one_only_calls():
    clock = FakeClock()
    assert slowed(lambda: "x", 1.0, clock=clock)() == "x"
    assert clock.now <= 4


@pytest.mark.parametrize("factor", [0.5, -1, float("nan")])
def test_slowed_refuses_factors_below_one(factor):
    with pytest.raises(ValueError, match="factor"):
        slowed(lambda: None, factor)

"""CI slices of the external suites (tests/external/): numpy's and CPython's
own tests give the same outcomes with and without guardalloc.

The full runs are ``python tests/external/numpy_suite.py`` and
``python tests/external/cpython_suite.py`` (minutes); these run a slice.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# Other projects' suites take 10 to 30 s each: `python -m pytest -m slow`.
pytestmark = pytest.mark.slow

EXTERNAL = Path(__file__).resolve().parent / "external"
sys.path.insert(0, str(EXTERNAL))
import _compare  # noqa: E402


def _run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = _compare.child_env()
    return subprocess.run([sys.executable, str(EXTERNAL / name), *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _run(label, counts, not_passed=(), returncode=0):
    return {"label": label, "returncode": returncode, "seconds": 1.0,
            "counts": counts, "not_passed": list(not_passed), "extra": {}}


def test_compare_finds_differences():
    same = _compare.compare(_run("plain", {"passed": 3, "skipped": 1}, ["skipped: a"]),
                            _run("guarded", {"passed": 3, "skipped": 1}, ["skipped: a"]))
    assert same == []
    differ = _compare.compare(_run("plain", {"passed": 3}), _run("guarded", {"passed": 2, "failed": 1},
                                                                 ["failed: t"]))
    assert any("passed: 3 without guardalloc, 2 with" in d for d in differ)
    assert any("only with guardalloc: failed: t" in d for d in differ)
    crashed = {"label": "guarded", "returncode": -11, "crashed": True, "signal": "SIGSEGV",
               "stderr_tail": "== guardalloc: heap-buffer-overflow"}
    assert "SIGSEGV" in _compare.compare(_run("plain", {}), crashed)[0]
    died_at_exit = _run("guarded", {"passed": 3}, returncode=-11)
    assert "SIGSEGV" in _compare.compare(_run("plain", {"passed": 3}), died_at_exit)[0]


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_numpy_suite_slice():
    result = _run_script("numpy_suite.py", "--pyargs",
                         "numpy._core.tests.test_multiarray::TestNewBufferProtocol",
                         "numpy._core.tests.test_multiarray::TestResize")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same outcomes" in result.stdout
    assert "handler = guardalloc" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("test.test_struct") is None,
                    reason="CPython's test package is not installed")
def test_cpython_suite_slice():
    result = _run_script("cpython_suite.py", "--fast")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same outcomes" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("test.test_zlib") is None,
                    reason="CPython's test package is not installed")
def test_cpython_suite_slice_under_native_library():
    """test_bytes, test_json, test_re and test_zlib under run --native 1
    (every malloc guarded): about 10 s here."""
    result = _run_script("cpython_suite.py", "--native", "1", "--native-full")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same outcomes" in result.stdout
    assert "guardalloc_native = {'allocations'" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_numpy_suite_slice_under_native_library():
    """numpy's slice under run --native 1: every malloc, numpy's data
    buffers included, in a guarded slot."""
    result = _run_script("numpy_suite.py", "--native", "1", "--fast")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same outcomes" in result.stdout
    assert "guardalloc_native_at_start = {'allocations'" in result.stdout

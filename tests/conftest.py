"""Shared test helpers: running code in a child process that may crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guardalloc

# pytester runs the plugin's tests (tests/test_pytest_plugin*.py).
pytest_plugins = ("pytester",)

# The directory that holds the imported guardalloc package (an in-place build
# or site-packages), so that children import the very same build.
PACKAGE_PARENT = str(Path(guardalloc.__file__).resolve().parent.parent)


def run_child(code: str, *args: str, env: dict | None = None, timeout: float = 120,
              python_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run dedented ``code`` in a fresh interpreter; return the finished process.

    ``returncode`` is ``-signal.SIGSEGV`` when the child died of a fault.
    """
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PACKAGE_PARENT, child_env.get("PYTHONPATH", "")) if p)
    child_env.pop("PYTHONFAULTHANDLER", None)
    child_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return subprocess.run(
        [sys.executable, *python_args, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, env=child_env, timeout=timeout,
    )


@pytest.fixture
def child():
    """The :func:`run_child` helper as a fixture."""
    return run_child


@pytest.fixture
def root_process():
    """A process of ours (root's), which the user nobody may not read."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody")
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as proc:
        yield proc.pid
        proc.stdin.close()
        proc.wait(timeout=30)

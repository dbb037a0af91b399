"""The type stubs (.pyi) stay true to the built modules: mypy.stubtest
compares every stub with what the package really has at run time, so a
renamed method, a new parameter or a dropped function fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PACKAGE_PARENT

ALLOWLIST = Path(__file__).resolve().parent / "stubtest_allowlist.txt"
# The command .ci/run runs too.
STUBTEST = ["-m", "mypy.stubtest", "guardalloc", "--ignore-disjoint-bases", "--allowlist", str(ALLOWLIST)]


def test_stubs_match_the_runtime(tmp_path):
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    proc = subprocess.run([sys.executable, *STUBTEST], capture_output=True, text=True,
                          cwd=PACKAGE_PARENT, env=env, timeout=600)
    if "No module named mypy" in proc.stderr:
        raise AssertionError("mypy is missing: install the test extra (pip install -e '.[test]')")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout, proc.stdout

"""The type stubs (.pyi) stay true to the built modules: mypy.stubtest
compares every stub with what the package really has at run time, so a
renamed method, a new parameter or a dropped function fails here."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import PACKAGE_PARENT

TESTS = Path(__file__).resolve().parent
# Entries true on every supported Python, then those of this version only
# (stubtest fails on an allowlist entry that matched nothing).
ALLOWLISTS = [TESTS / "stubtest_allowlist.txt",
              *[path for path in [TESTS / f"stubtest_allowlist_py{sys.version_info[0]}{sys.version_info[1]}.txt"]
                if path.exists()]]
STUBTEST = ["-m", "mypy.stubtest", "guardalloc", "--ignore-disjoint-bases",
            *[arg for path in ALLOWLISTS for arg in ("--allowlist", str(path))]]


def test_stubs_match_the_runtime(tmp_path):
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    site_dirs = {os.path.realpath(sysconfig.get_path(name)) for name in ("purelib", "platlib")}
    if os.path.realpath(PACKAGE_PARENT) in site_dirs:
        # An installed package: mypy finds it (py.typed) where the import
        # does. Run elsewhere, or mypy would take every module there for
        # the user's own.
        cwd = tmp_path
    else:
        # An in-place build (editable install: src/): mypy reads the stubs
        # from the directory it runs in, the import follows PYTHONPATH.
        cwd = PACKAGE_PARENT
        env["PYTHONPATH"] = PACKAGE_PARENT
    proc = subprocess.run([sys.executable, *STUBTEST], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    if "No module named mypy" in proc.stderr:
        raise AssertionError("mypy is missing: install the test extra (pip install -e '.[test]')")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout, proc.stdout

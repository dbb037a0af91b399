"""Shared by the native library's tests: C/C++ programs compiled on first
use (gcc, g++; the ``build`` fixture) and a runner that preloads the
library. A plain module the tests import, not a conftest.py: the tests
import tests/conftest.py as ``conftest`` and a second one would shadow it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from guardalloc import native

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
PROGRAMS = os.path.join(HERE, "programs")
# No -rdynamic: reports carry raw frames, symbolized from the programs'
# symbol tables and DWARF outside the process, as most programs are built.
CFLAGS = ["-g", "-O0", "-fno-omit-frame-pointer", "-pthread"]
CLASSES = os.path.join(CORPUS, "classes")


def _compiler(source: str) -> str:
    name = "g++" if source.endswith(".cc") else "gcc"
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """build(path_to_source, *extra_flags, rdynamic=False) -> path of the
    compiled program (cached per session). rdynamic=True: the program's own
    functions are dynamic symbols too (most programs are built without)."""
    out_dir = tmp_path_factory.mktemp("native-programs")
    cache: dict = {}

    def compile_one(source: str, *extra: str, rdynamic: bool = False) -> str:
        key = (source, extra, rdynamic)
        if key not in cache:
            base = os.path.splitext(os.path.basename(source))[0]
            suffix = ".so" if "-shared" in extra else ""
            target = str(out_dir / f"{base}{len(cache)}{suffix}")
            flags = CFLAGS + ["-rdynamic"] if rdynamic else CFLAGS
            subprocess.run([_compiler(source), *flags, *extra, "-o", target, source, "-ldl"],
                           check=True, capture_output=True, text=True)
            cache[key] = target
        return cache[key]

    return compile_one


@pytest.fixture(scope="session")
def library():
    return native.library_path()


def run_preloaded(argv, options: str = "sample_rate=1", timeout: float = 120, env=None,
                  **kwargs) -> subprocess.CompletedProcess:
    """Run argv with the library preloaded and GUARDALLOC_OPTIONS=options."""
    full = dict(os.environ if env is None else env)
    full.pop("PYTHONFAULTHANDLER", None)
    full["LD_PRELOAD"] = native.library_path()
    full["GUARDALLOC_OPTIONS"] = options
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=timeout, **kwargs)


def symbolized(text: str) -> str:
    """text as ``guardalloc exec`` prints it: raw frames symbolized. Skips
    the test when no symbolizer (llvm-symbolizer, addr2line) is installed."""
    from guardalloc.symbolize import Symbolizer, symbolize_text

    symbolizer = Symbolizer(cache_dir=None)
    if symbolizer.backend is None:
        pytest.skip("no symbolizer installed (llvm-symbolizer or addr2line)")
    return symbolize_text(text, symbolizer)


def functions(frames) -> list:
    """The functions of a JSON report's raw stack (innermost first, inlined
    ones included), symbolized; skips like symbolized()."""
    from guardalloc.symbolize import RawFrame, Symbolizer

    symbolizer = Symbolizer(cache_dir=None)
    if symbolizer.backend is None:
        pytest.skip("no symbolizer installed (llvm-symbolizer or addr2line)")
    assert frames, frames
    done = symbolizer.symbolize([RawFrame.parse(f) for f in frames])
    return [loc.function for frame in done for loc in frame.locations]


def python_argv(*args: str) -> list:
    return [sys.executable, *args]

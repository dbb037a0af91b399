"""The stack capture's unwinder (libunwind's caching unw_backtrace when the
build found libunwind, docs/design.md "Stack capture") gives the same return
addresses as libgcc's _Unwind_Backtrace, from the same frame, on varied code:
C built with gcc -O2 -fomit-frame-pointer (recursion of random depth through
three kinds of frame), C++ with exceptions in flight, and Python stacks
through libpython, a Cython module, numpy and threads. Each runs in a child
process (tests/c/unwind_compare.c does the comparing)."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import guardalloc

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
COMPARE = ROOT / "tests" / "c" / "unwind_compare.c"
CXX_PROGRAM = ROOT / "tests" / "c" / "unwind_compare_cxx.cpp"
CORE = next(Path(guardalloc.__file__).resolve().parent.glob("libguardalloc_core*.so"))


def _compiler(env: str, default: str) -> list[str] | None:
    command = shlex.split(os.environ.get(env) or sysconfig.get_config_var(env) or default)
    return command if command and shutil.which(command[0]) else None


def unwinder() -> str:
    """The unwinder the installed core library captures with."""
    core = ctypes.CDLL(str(CORE))
    core.ga_stack_unwinder.restype = ctypes.c_char_p
    return core.ga_stack_unwinder().decode()


def _link_core() -> list[str]:
    return [f"-L{CORE.parent}", f"-l:{CORE.name}", f"-Wl,-rpath,{CORE.parent}", "-lgcc_s"]


@pytest.fixture(scope="module")
def compare_so(tmp_path_factory):
    """tests/c/unwind_compare.c as a shared object, -O2 without frame pointers."""
    compiler = _compiler("CC", "cc")
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    out = tmp_path_factory.mktemp("unwind") / "libunwind_compare.so"
    proc = subprocess.run([*compiler, "-O2", "-fomit-frame-pointer", "-g", "-Wall", "-Werror", "-shared", "-fPIC",
                           f"-I{C_DIR}", str(COMPARE), "-o", str(out), *_link_core()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_build_has_the_fast_unwinder():
    """Where pkg-config finds libunwind (CI installs it), the core uses it."""
    if shutil.which("pkg-config") is None or subprocess.run(
            ["pkg-config", "--exists", "libunwind"]).returncode != 0:
        pytest.skip("libunwind is not installed: the build falls back to libgcc")
    assert unwinder() == "libunwind"


C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
typedef int (*leaf_t)(int *);
int descend(int depth, unsigned seed, leaf_t leaf, int *compared);
int compare_unwinders(int *compared);
int main(int argc, char **argv)
{
    int failures = 0, compared = 0, total = 0;
    srand((unsigned)atoi(argv[1]));
    for (int i = 0; i < 40; i++) {
        failures += descend(rand() % 90, (unsigned)rand(), compare_unwinders, &compared);
        total += compared;
    }
    printf("compared %d\n", total);
    return failures != 0;
}
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_c_recursion_of_random_depth(compare_so, tmp_path, seed):
    """gcc -O2 -fomit-frame-pointer frames (plain, alloca, spilling), 0 to
    89 deep: deeper than the 64 frames captured, so the cut is checked too."""
    compiler = _compiler("CC", "cc")
    main = tmp_path / "main.c"
    main.write_text(C_MAIN)
    program = tmp_path / "recursion"
    proc = subprocess.run([*compiler, "-O2", "-fomit-frame-pointer", str(main), str(compare_so), "-o", str(program),
                           f"-Wl,-rpath,{compare_so.parent}", *_link_core()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(program), str(seed)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[1]) > 40 * 10


def test_cxx_exceptions_in_flight(compare_so, tmp_path):
    """Destructors run by an exception's unwinding (libgcc's own frames on
    the stack), catch blocks, a rethrow."""
    compiler = _compiler("CXX", "c++")
    if compiler is None:
        pytest.skip("no C++ compiler ($CXX, sysconfig CXX or c++)")
    program = tmp_path / "exceptions"
    proc = subprocess.run([*compiler, "-O2", "-fomit-frame-pointer", str(CXX_PROGRAM), str(compare_so),
                           "-o", str(program), f"-Wl,-rpath,{compare_so.parent}", *_link_core()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(program), "7"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[1]) > 0


PYTHON_CHILD = r"""
import ctypes, random, sys, threading
import numpy as np
sys.path.insert(0, sys.argv[3])
from unwind_through import through

so = ctypes.CDLL(sys.argv[1])
so.descend.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
LEAF = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int))
rng = random.Random(int(sys.argv[2]))
failures, compared = [], [0]

def compare():
    n = ctypes.c_int()
    failures.append(so.compare_unwinders(ctypes.byref(n)))
    compared[0] += n.value

def layer(depth):
    # One more kind of frame, then the rest below it; compare at the bottom.
    if depth == 0:
        return compare()
    kind = rng.randrange(5)
    if kind == 0:                              # libpython: a C call back into Python
        return list(map(layer, [depth - 1]))[0]
    if kind == 1:                              # a Cython module's C recursion
        return through(lambda: layer(depth - 1), rng.randrange(1, 4))
    if kind == 2:                              # numpy calling Python per element
        return np.frompyfunc(lambda x: layer(depth - 1), 1, 1)(np.arange(1))[0]
    if kind == 3:                              # gcc -O2 C frames calling back
        keep = LEAF(lambda c: layer(depth - 1) or 0)
        return so.descend(rng.randrange(1, 6), rng.randrange(1 << 30), ctypes.cast(keep, ctypes.c_void_p), None)
    return layer(depth - 1)                    # plain Python: no C frame

for i in range(30):
    layer(rng.randrange(0, 12))
worker = threading.Thread(target=lambda: [layer(rng.randrange(0, 8)) for _ in range(10)])
worker.start(); worker.join()
print("compared", compared[0], "stacks", len(failures))
sys.exit(1 if any(failures) else 0)
"""


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_python_stacks_through_libpython_cython_and_numpy(compare_so, tmp_path, seed):
    """CPython (built without frame pointers), a Cython module, numpy and a
    thread's stack (its outermost frame is clone's)."""
    pytest.importorskip("numpy")
    from helpers import load_helper

    helper = load_helper("unwind_through")
    script = tmp_path / "child.py"
    script.write_text(PYTHON_CHILD)
    run = subprocess.run([sys.executable, str(script), str(compare_so), str(seed),
                          str(Path(helper.__file__).parent)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout.split()[1]) > 100, run.stdout


@pytest.mark.parametrize("pkg_config", ["missing", "real"])
def test_setup_warns_once_without_libunwind(pkg_config):
    """A build whose pkg-config finds no libunwind says so in one line (and
    falls back to libgcc: tests/test_c_core.py builds stacks.c so)."""
    if not (ROOT / "setup.py").exists():   # pragma: no cover - an installed copy
        pytest.skip("setup.py is not here")
    env = dict(os.environ)
    if pkg_config == "missing":
        env["PKG_CONFIG"] = str(ROOT / "no-such-pkg-config")
    elif shutil.which("pkg-config") is None or subprocess.run(
            ["pkg-config", "--exists", "libunwind"]).returncode != 0:
        pytest.skip("libunwind is not installed")
    proc = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "libunwind" in line]
    assert len(warnings) == (1 if pkg_config == "missing" else 0), proc.stderr


THROWER = r"""
#include <stdexcept>
#include <string>
struct Count { int *n; ~Count() { ++*n; } };
static void deep(int depth, int *n) {
    Count c{n};
    if (depth == 0) throw std::runtime_error(std::string(100, 'x'));
    deep(depth - 1, n);
}
extern "C" int catch_many(int times) {
    int caught = 0, destroyed = 0, expected = 0;
    for (int i = 0; i < times; i++) {
        expected += i % 20 + 1;   /* deep(d) makes d + 1 of them */
        try { deep(i % 20, &destroyed); } catch (const std::exception &e) { caught += e.what()[0] == 'x'; }
    }
    return caught == times && destroyed == expected ? 1 : -caught;
}
"""


def test_cxx_exceptions_under_the_preloaded_library(tmp_path):
    """Under run --native (libunwind in the global scope, docs/design.md
    "Stack capture"), C++ code that CPython loads later throws and catches
    through destructors, its blocks guarded and their stacks recorded."""
    compiler = _compiler("CXX", "c++")
    if compiler is None:
        pytest.skip("no C++ compiler ($CXX, sysconfig CXX or c++)")
    lib = tmp_path / "libthrower.so"
    proc = subprocess.run([*compiler, "-O2", "-shared", "-fPIC", "-x", "c++", "-", "-o", str(lib)], input=THROWER,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "throw.py"
    script.write_text(f"import ctypes\nprint(ctypes.CDLL({str(lib)!r}).catch_many(500))\n")
    run = subprocess.run([sys.executable, "-m", "guardalloc", "run", "--native", "1", str(script)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout == "1\n", run.stdout + run.stderr

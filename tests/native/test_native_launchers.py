"""guardalloc.native from Python: library_path, options, the exec command,
run --native (argv, sys.path[0], environment, exit status) and the
allocator seen from a Python child through ctypes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

import guardalloc
from guardalloc import native
from native_support import CORPUS, build, run_preloaded  # noqa: F401 (build: a fixture)


def test_library_path_is_in_the_package():
    path = native.library_path()
    assert os.path.isfile(path)
    assert os.path.dirname(path) == os.path.dirname(os.path.abspath(guardalloc.__file__))   # beside the core library
    assert os.path.basename(path).startswith("libguardalloc_malloc")


def test_library_has_no_python_dependency():
    out = subprocess.run(["ldd", native.library_path()], capture_output=True, text=True).stdout
    assert "libpython" not in out
    assert "libguardalloc_core" in out   # the one core, by $ORIGIN


def test_options_string():
    assert native.options_string() == ""
    text = native.options_string(sample_rate=1, max_bytes=4 << 30, alignment=1, uaf=True,
                                 quarantine=4096, on_fault="continue", random=False,
                                 align="random", log_path="/tmp/x-%p.json")
    assert text == ("sample_rate=1:max_bytes=4294967296:alignment=1:uaf=1:quarantine=4096:"
                    "on_fault=continue:random=0:align=random:log_path='/tmp/x-%p.json'")


@pytest.mark.parametrize("kwargs, error, name", [
    ({"sample_rate": -1}, ValueError, "sample_rate"),
    ({"sample_rate": 1.5}, TypeError, "sample_rate"),
    ({"alignment": 3}, ValueError, "alignment"),
    ({"uaf": 1}, TypeError, "uaf"),
    ({"align": "middle"}, ValueError, "align"),
    ({"on_fault": "ignore"}, ValueError, "on_fault"),
    ({"log_path": 3}, TypeError, "log_path"),
    ({"max_bytes": -1}, ValueError, "max_bytes"),
])
def test_options_string_refuses_bad_values(kwargs, error, name):
    with pytest.raises(error, match=name):
        native.options_string(**kwargs)


def test_environment_puts_library_first():
    env = native.environment({"LD_PRELOAD": "libother.so", "PATH": "/bin"}, sample_rate=7)
    assert env["LD_PRELOAD"].split() == [native.library_path(), "libother.so"]
    assert env["GUARDALLOC_OPTIONS"] == "sample_rate=7"
    assert env["PATH"] == "/bin"


def test_not_active_in_this_process():
    assert native.is_active() is False
    assert native.stats() is None


def _cli(*args, **kwargs):
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", *args], capture_output=True,
                          text=True, timeout=300, env=env, **kwargs)


def test_exec_runs_program_with_options(build):
    program = build(os.path.join(CORPUS, "overflow_write.c"))
    result = _cli("exec", "--sample-rate", "1", "--alignment", "1", "--", program)
    assert result.returncode == -signal.SIGSEGV
    assert "heap-buffer-overflow WRITE" in result.stderr
    result = _cli("exec", "--sample-rate", "1", "--alignment", "1", "--on-fault", "continue",
                  "--", program)
    assert result.returncode == 0 and "the program goes on" in result.stderr


def test_exec_uaf_and_align_flags(build):
    uaf = build(os.path.join(CORPUS, "uaf_read.c"))
    result = _cli("exec", "--sample-rate", "1", "--uaf", "--quarantine", "8", "--", uaf)
    assert result.returncode == -signal.SIGSEGV and "use-after-free READ" in result.stderr
    under = build(os.path.join(CORPUS, "underflow.c"))
    result = _cli("exec", "--sample-rate", "1", "--align", "left", "--max-bytes", "1G", "--", under)
    assert result.returncode == -signal.SIGSEGV and "heap-buffer-underflow" in result.stderr


def test_exec_exit_status_and_errors():
    assert _cli("exec", "--", sys.executable, "-c", "raise SystemExit(5)").returncode == 5
    result = _cli("exec", "--alignment", "3", "--", "/bin/true")
    assert result.returncode == 2 and "alignment" in result.stderr
    result = _cli("exec")
    assert result.returncode == 2 and "no program" in result.stderr
    result = _cli("exec", "--", "/nonexistent/program")
    assert result.returncode == 127


SCRIPT = textwrap.dedent("""
    import json, os, sys
    from guardalloc import native
    print(json.dumps({"argv": sys.argv, "path0": sys.path[0],
                      "preload": os.environ.get("LD_PRELOAD"),
                      "options": os.environ.get("GUARDALLOC_OPTIONS"),
                      "marker": os.environ.get("MARKER"),
                      "active": native.is_active(), "stats": native.stats()},
                     default=dict))     # stats objects are mappings, not dicts
    sys.exit(int(os.environ.get("STATUS", "0")))
""")


def _run_native(tmp_path, *run_args, env_extra=None):
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, MARKER="kept", STATUS="9", **(env_extra or {}))
    env.pop("PYTHONFAULTHANDLER", None)
    env.pop("LD_PRELOAD", None)
    env.pop("GUARDALLOC_OPTIONS", None)
    result = subprocess.run([sys.executable, "-m", "guardalloc", "run", *run_args, str(script), "a", "b"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    import json
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def test_run_native_keeps_argv_path_environment_and_status(tmp_path):
    result, seen = _run_native(tmp_path, "--native", "1")
    assert result.returncode == 9, result.stderr
    assert seen["argv"] == [str(tmp_path / "prog.py"), "a", "b"]
    assert seen["path0"] == str(tmp_path)
    assert seen["preload"] is None and seen["options"] is None and seen["marker"] == "kept"
    assert seen["active"] is True
    assert seen["stats"]["allocations"] > 1000 and seen["stats"]["refused"] == 0


def test_run_native_without_rate_takes_the_script(tmp_path):
    result, seen = _run_native(tmp_path, "--native")
    assert result.returncode == 9, result.stderr
    assert seen["argv"][1:] == ["a", "b"] and seen["active"] is True


def test_run_native_composes_with_pymem_and_numpy(tmp_path):
    pytest.importorskip("numpy")
    result, seen = _run_native(tmp_path, "--pymem", "1", "--numpy", "--native", "1", "--uaf")
    assert result.returncode == 9, result.stderr
    assert seen["active"] is True


def test_run_native_catches_overflow_in_c_library(tmp_path):
    """A heap overflow inside a C library called from Python (ctypes'
    memset on a malloc'ed block) is caught at the access. alignment=4, not
    1: CPython keeps flags in the low two bits of its GC pointers and
    cannot start with odd addresses (DUMA needs DUMA_ALIGNMENT=4 too)."""
    script = tmp_path / "bug.py"
    script.write_text(textwrap.dedent("""
        import ctypes
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        p = libc.malloc(100)
        ctypes.memset(p, 0, 101)
    """))
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    result = subprocess.run([sys.executable, "-m", "guardalloc", "run", "--native", "1",
                             "--alignment", "4", str(script)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr
    assert "0 bytes past the end of a 100-byte buffer" in result.stderr
    assert re.search(r"  \w+(?: of size \d+(?: \([^)]*\))?)? by thread \d+ .*:\n    #0 0x", result.stderr)   # the access stack


CTYPES_CONTRACTS = textwrap.dedent("""
    import ctypes, ctypes.util, errno
    libc = ctypes.CDLL(None, use_errno=True)
    lib = ctypes.CDLL(None)
    for name in ("malloc", "calloc", "realloc", "reallocarray", "aligned_alloc", "memalign",
                 "valloc", "pvalloc"):
        getattr(libc, name).restype = ctypes.c_void_p
    libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.reallocarray.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
    libc.malloc_usable_size.restype = ctypes.c_size_t
    owns = lib.guardalloc_native_owns
    owns.argtypes = [ctypes.c_void_p]
    big = 1 << 62
    p = libc.malloc(33)
    assert owns(p) and p % 16 == 0 and libc.malloc_usable_size(p) == 33
    p = libc.realloc(p, 5)
    assert owns(p) and libc.malloc_usable_size(p) == 5
    assert libc.realloc(p, 0) is None
    ctypes.set_errno(0)
    assert libc.calloc(ctypes.c_size_t(big), ctypes.c_size_t(8)) is None
    assert ctypes.get_errno() == errno.ENOMEM
    ctypes.set_errno(0)
    assert libc.reallocarray(None, big, 8) is None and ctypes.get_errno() == errno.ENOMEM
    ctypes.set_errno(0)
    assert libc.malloc(ctypes.c_size_t(big)) is None and ctypes.get_errno() == errno.ENOMEM
    q = libc.aligned_alloc(ctypes.c_size_t(128), ctypes.c_size_t(1000))
    assert q % 128 == 0 and owns(q)
    libc.free(q)
    out = ctypes.c_void_p()
    assert libc.posix_memalign(ctypes.byref(out), ctypes.c_size_t(3), ctypes.c_size_t(8)) == errno.EINVAL
    assert libc.posix_memalign(ctypes.byref(out), ctypes.c_size_t(256), ctypes.c_size_t(8)) == 0
    assert out.value % 256 == 0 and owns(out.value)
    libc.free(out)
    v = libc.valloc(ctypes.c_size_t(3))
    assert v % 4096 == 0 and libc.malloc_usable_size(v) == 3
    libc.free(v)
    v = libc.pvalloc(ctypes.c_size_t(3))
    assert v % 4096 == 0 and libc.malloc_usable_size(v) == 4096
    libc.free(v)
    z = libc.malloc(0)
    assert z is not None and z != libc.malloc(0)
    print("ok")
""")


def test_contracts_through_ctypes():
    result = run_preloaded([sys.executable, "-c", CTYPES_CONTRACTS], "sample_rate=1")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

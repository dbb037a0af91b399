"""The library under C and C++ programs: every allocator contract, threads,
fork, allocation before main, dlopen'ed libraries, and programs that are
not Python (sort, ls, a C++ program) giving the same output as without it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from native_support import PROGRAMS, build, run_preloaded, symbolized  # noqa: F401 (build: a fixture)


def program(build, name, *flags):
    return build(os.path.join(PROGRAMS, name), *flags)


@pytest.mark.parametrize("mode, options", [
    ("all", "sample_rate=1"),
    ("all", "sample_rate=1:alignment=1"),
    ("all", "sample_rate=1:alignment=16"),
    ("all", "sample_rate=1:uaf=1:quarantine=16"),
    ("all", "sample_rate=1:align=left"),
    ("all", "sample_rate=1:align=random"),
    ("exact", "sample_rate=1:alignment=1"),
    ("sampled", "sample_rate=2"),
    ("max_bytes", "sample_rate=1:max_bytes=64K"),
])
def test_allocator_contracts(build, mode, options):
    result = run_preloaded([program(build, "contracts.c"), mode], options)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_threads_never_share_a_block(build):
    result = run_preloaded([program(build, "threads.c"), "8", "20000"], "sample_rate=1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_threads_with_uaf(build):
    result = run_preloaded([program(build, "threads.c"), "8", "5000"],
                           "sample_rate=1:uaf=1:quarantine=64")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_threads_soak(build):
    """The issue's minute of 8 threads, as a count of iterations."""
    result = run_preloaded([program(build, "threads.c"), "8", "1500000"], "sample_rate=1",
                           timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fork_while_another_thread_allocates(build):
    result = run_preloaded([program(build, "forks.c"), "50"], "sample_rate=1", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_allocation_before_main(build):
    result = run_preloaded([program(build, "early.c")], "sample_rate=1")
    assert result.returncode == 0 and "made before main" in result.stdout, result.stderr


def test_dlopened_library(build):
    plugin = program(build, "plugin.c", "-shared", "-fPIC")
    result = run_preloaded([program(build, "dlopener.c"), plugin], "sample_rate=1")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_overflow_in_dlopened_library_names_its_function(build):
    plugin = program(build, "plugin.c", "-shared", "-fPIC")
    result = run_preloaded([program(build, "dlopener.c"), plugin, "overflow"],
                           "sample_rate=1:alignment=1")
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr
    text = symbolized(result.stderr)
    assert " in plugin_overflow " in text and " in plugin_block " in text, text


def _same_output(argv, **kwargs):
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    guarded = run_preloaded(argv, "sample_rate=1", **kwargs)
    assert guarded.returncode == plain.returncode, guarded.stderr
    assert guarded.stdout == plain.stdout
    assert "guardalloc" not in guarded.stderr


def test_cxx_program(build):
    _same_output([program(build, "cxx_workload.cc")])


def test_sort(tmp_path):
    sort = shutil.which("sort")
    if sort is None:
        pytest.skip("no sort")
    lines = [f"{(i * 7919) % 10007:05d} line {i}\n" for i in range(20000)]
    path = tmp_path / "input.txt"
    path.write_text("".join(lines))
    _same_output([sort, str(path)], env={**os.environ, "LC_ALL": "C"})


def test_ls():
    ls = shutil.which("ls")
    if ls is None:
        pytest.skip("no ls")
    _same_output([ls, "-la", "/usr/lib"])


@pytest.mark.parametrize("options, fragment", [
    ("bogus=1", "bogus: unknown option"),
    ("max_bytes=3Q", "max_bytes: unknown size suffix"),
    ("alignment=3", "alignment: expected auto (0) or a power of two"),
    ("align=middle", "align: expected one of left, right, random"),
    ("uaf", "uaf: expected name=value"),
    ("sample_rate=-1", "sample_rate: expected a whole number"),
])
def test_bad_option_exits_2_naming_it(options, fragment):
    result = run_preloaded(["/bin/true"], options)
    assert result.returncode == 2
    assert fragment in result.stderr, result.stderr


def test_options_are_parsed_with_suffixes():
    result = run_preloaded(["/bin/true"], "sample_rate=1:max_bytes=4G:alignment=16:uaf=1:"
                           "quarantine=4096:on_fault=abort:random=1:align=random")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("mode", ["inside-dlopen", "dlopen-loop"])
def test_fault_while_another_thread_dlopens_never_hangs(build, mode):
    """A fault while another thread is inside dlopen() (a library's
    constructor, which runs under the loader's lock), or loads and unloads a
    library in a loop: 100 runs, each reported, each dying of SIGSEGV. A
    handler that took the loader's lock (dladdr, libgcc's unwinder) would
    wait for the constructor, and for ever when it faults in the middle."""
    plugin = program(build, "slow_ctor.c", "-shared", "-fPIC")
    racer = program(build, "dlopen_race.c")
    argv = [racer, plugin] + (["once"] if mode == "inside-dlopen" else [])
    for run in range(100 if mode == "dlopen-loop" else 10):
        result = run_preloaded(argv, "sample_rate=1:alignment=1", timeout=60)
        assert result.returncode == -signal.SIGSEGV, (run, result.stderr)
        assert "heap-buffer-overflow WRITE" in result.stderr and "\nSUMMARY: guardalloc:" in result.stderr, run

"""--guardalloc-native=RATE: pytest runs again, in a child it waits for, with guardalloc's
malloc library (guardalloc.native, the native-heap issue) preloaded.

The re-execution is tested with a stand-in library; the native malloc
overflow needs the real one and runs once guardalloc.native exists.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

HAVE_NATIVE = importlib.util.find_spec("guardalloc.native") is not None


def test_without_the_library_the_flag_is_a_usage_error(pytester):
    # A build without guardalloc.native, simulated: the import fails.
    pytester.makeconftest("""
        import sys
        sys.modules["guardalloc.native"] = None
    """)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--guardalloc-native=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--guardalloc-native needs guardalloc.native (the preloadable malloc library)" in result.stderr.str()


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_pytest_is_re_executed_with_the_library_preloaded(pytester, tmp_path):
    source = tmp_path / "standin.c"
    source.write_text("int guardalloc_standin_loaded = 1;\n")
    library = tmp_path / "libstandin.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    pytester.makeconftest(f"""
        from guardalloc import pytest_plugin
        pytest_plugin.native_library_path = lambda: {str(library)!r}
    """)
    pytester.makepyfile(test_preloaded=f"""
        import os, guardalloc.faults

        def test_preloaded():
            with open("/proc/self/maps") as maps:
                assert {str(library)!r} in maps.read()
            assert os.environ["LD_PRELOAD"].startswith({str(library)!r})
            options = guardalloc.faults.parse_options(os.environ["GUARDALLOC_OPTIONS"])
            assert (options["sample_rate"], options["uaf"], options["alignment"]) == (7, True, 32)
            # Reports of the library land where the session reads them.
            assert options["log_path"].endswith("guardalloc.%p.json")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=7",
                                           "--guardalloc-uaf", "--guardalloc-alignment=32",
                                           "--guardalloc-forked")
    result.assert_outcomes(passed=1)



@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("dies", [True, False], ids=["dies-at-load", "runs"])
def test_the_report_directory_is_removed_however_the_preloaded_pytest_ends(pytester, tmp_path, dies):
    """The session with the library preloaded runs in a child; the first
    pytest removes the report directory it made once that child has exited,
    also when the child died before its session started (its status is the
    first pytest's)."""
    source = tmp_path / "standin.c"
    source.write_text("#include <unistd.h>\n"
                      + ("__attribute__((constructor)) static void die(void) { _exit(7); }\n" if dies
                         else "int guardalloc_standin_loaded = 1;\n"))
    library = tmp_path / "libstandin.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    pytester._monkeypatch.setenv("TMPDIR", str(temporary))
    pytester.makeconftest(f"""
        from guardalloc import pytest_plugin
        pytest_plugin.native_library_path = lambda: {str(library)!r}
    """)
    pytester.makepyfile(test_preloaded="""
        import os, glob, guardalloc.faults

        def test_reports_go_to_the_directory():
            log_path = guardalloc.faults.parse_options(os.environ["GUARDALLOC_OPTIONS"])["log_path"]
            assert os.path.isdir(os.path.dirname(log_path))
            assert os.path.basename(os.path.dirname(log_path)).startswith("guardalloc-reports-")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=1")
    if dies:
        assert result.ret == 7
    else:
        result.assert_outcomes(passed=1)
    assert not list(temporary.glob("guardalloc-reports-*"))

NATIVE_SUITE = """
import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

def test_fine():
    assert libc.malloc(10)

def test_native_malloc_overflow():
    block = libc.malloc(64)
    ctypes.memset(block, 0, 65)

def test_fine_too():
    pass
"""


@pytest.mark.skipif(not HAVE_NATIVE, reason="needs guardalloc.native (the native-heap issue)")
def test_native_malloc_overflow_fails_its_test(pytester):
    pytester.makepyfile(test_native=NATIVE_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=1",
                                           "--guardalloc-forked")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "test_native.py::test_native_malloc_overflow" in out
    assert "died of SIGSEGV" in out or "died of SIGABRT" in out


DOUBLE_FREE_SUITE = """
import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def test_fine():
    libc.free(libc.malloc(10))

def test_double_free():
    block = libc.malloc(48)
    libc.free(block)
    libc.free(block)
"""


def _one_test_aborts(pytester, tmp_path, suite: str) -> tuple[str, list[dict]]:
    """Run suite (two tests) forked under the malloc library: one passes,
    one dies of SIGABRT. pytest's output and the JSON reports it left."""
    from guardalloc import pytest_plugin

    pytester.makepyfile(test_native=suite)
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=1",
                                           "--guardalloc-forked", f"--guardalloc-report-dir={reports}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "died of SIGABRT" in out
    return out, [r for path in reports.iterdir() for r in pytest_plugin.read_reports(str(path))]


@pytest.mark.skipif(not HAVE_NATIVE, reason="needs guardalloc.native (the native-heap issue)")
def test_native_double_free_fails_its_test_with_the_report(pytester, tmp_path):
    """The malloc library's report of a bad free (JSON, access "free") fails
    the forked test that made it, like a fault's."""
    from test_reports_json import validate

    out, found = _one_test_aborts(pytester, tmp_path, DOUBLE_FREE_SUITE)
    assert "double-free of a 48-byte buffer (slot" in out       # describe(), in the failure and the summary
    assert "guardalloc: double-free of 0x" in out and "first freed at:" in out   # the text report
    assert "test_native.py::test_double_free (call): double-free of a 48-byte buffer" in out
    assert [(r["kind"], r["access"], r["test"]) for r in found] == [
        ("double-free", "free", {"nodeid": "test_native.py::test_double_free", "phase": "call"})]
    validate(found[0])
    assert found[0]["stacks"]["this_free_native"]


POOL_FREE_SUITE = """
import ctypes
from guardalloc.pool import Pool

libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
pool = Pool()

def test_pool_block_freed_by_its_pool():
    pool.free(pool.alloc(64))

def test_pool_block_freed_by_libc():
    block = pool.alloc(64)
    libc.free(ctypes.addressof(ctypes.c_char.from_buffer(block)))
"""


@pytest.mark.skipif(not HAVE_NATIVE, reason="needs guardalloc.native (the native-heap issue)")
def test_a_pool_block_passed_to_free_fails_its_test_saying_whose_block(pytester, tmp_path):
    """libc's free() of a Pool's block: the malloc library's bad-free report
    says it is the Pool's, in the crashed test's report, instead of glibc's
    "free(): invalid pointer" and "no guardalloc fault report"; the twin
    test, which frees through the Pool, passes."""
    from test_reports_json import validate

    out, found = _one_test_aborts(pytester, tmp_path, POOL_FREE_SUITE)
    assert "free(): invalid pointer" not in out and "no guardalloc fault report" not in out
    assert "attempting free on address which was not malloc()-ed: 0x" in out
    assert "is a live 64-byte block of a guardalloc Pool, not malloc()'s" in out
    assert ("test_native.py::test_pool_block_freed_by_libc (call): "
            "bad-free by free of a 64-byte block of a guardalloc Pool, not malloc()'s") in out
    assert [(r["kind"], r["memory"]["kind"], r["test"]["nodeid"]) for r in found] == [
        ("bad-free", "guardalloc", "test_native.py::test_pool_block_freed_by_libc")]
    validate(found[0])

"""--guardalloc-forked: every test in a forked child, a guard fault fails that
test only (with its report, also in JUnit XML), the rest goes on; faults in
fixtures and at collection; without forking the report names the test;
pytest-xdist and pytest-benchmark. Fresh pytest processes (pytester).
"""

from __future__ import annotations

import importlib.util
import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

needs_numpy = pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
needs_xdist = pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report-schema.json").read_text())

# A suite with deliberate heap bugs between passing tests.
BUGGY_SUITE = """
import ctypes
import numpy as np
import pytest
import guardalloc

def test_passes_first():
    assert np.arange(10).sum() == 45

def test_numpy_over_read():
    a = np.zeros(1000)
    np.lib.stride_tricks.as_strided(a, shape=(1100,))[1050]

def test_memset_past_pool_buffer(guard_pool):
    buf = guard_pool.alloc(4096)
    ctypes.memset(buf.address, 0, 4097)

def test_use_after_free():
    arena = guardalloc.Arena(4096, 4, uaf=True)
    buf = arena.alloc(64)
    address = buf.address
    buf.free()
    ctypes.string_at(address, 1)

@pytest.fixture
def overflowing_fixture(guard_pool):
    buf = guard_pool.alloc(4096)
    ctypes.memset(buf.address, 0, 4097)

def test_fixture_faults(overflowing_fixture):
    pass

@pytest.fixture
def faulting_teardown(guard_pool):
    buf = guard_pool.alloc(4096)
    yield
    ctypes.memset(buf.address - 1, 0, 1)

def test_teardown_faults(faulting_teardown):
    pass

def test_passes_last():
    pass
"""

FAILED = {  # test -> (phase, kind, access)
    "test_numpy_over_read": ("call", "heap-buffer-overflow", "READ"),
    "test_memset_past_pool_buffer": ("call", "heap-buffer-overflow", "WRITE"),
    "test_use_after_free": ("call", "use-after-free", "READ"),
    "test_fixture_faults": ("setup", "heap-buffer-overflow", "WRITE"),
    "test_teardown_faults": ("teardown", "heap-buffer-underflow", "WRITE"),
}


def validate(report: dict) -> None:
    import jsonschema
    jsonschema.validate(report, SCHEMA)


def check_buggy_run(result, junit: Path | None = None) -> None:
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The teardown fault errors a test that passed.
    result.assert_outcomes(passed=3, failed=3, errors=2)
    out = result.stdout.str()
    for name, (phase, kind, access) in FAILED.items():
        assert f"test_buggy.py::{name} ({phase}): {kind} {access}" in out, name
        assert f"test: test_buggy.py::{name} ({phase})" in out, name    # the full report
    assert "guardalloc faults" in out
    assert "0 bytes past the end of a 4096-byte buffer" in out
    assert "400 bytes past the end of a 8000-byte buffer" in out
    assert 'File "' in out and "in test_use_after_free" in out      # faulthandler's traceback
    if junit is None:
        return
    cases = {case.get("name"): case for case in ElementTree.parse(junit).iter("testcase")}
    assert len(cases) == 7
    for name in ("test_passes_first", "test_passes_last"):
        assert not list(cases[name])
    for name, (phase, kind, access) in FAILED.items():
        tag = "failure" if phase == "call" else "error"
        found = cases[name].findall(tag)
        assert found and f"guardalloc: {kind} {access}" in found[0].text, name
        # JUnit's message of a failure opens with the bug, not with how the
        # child died (pytest prefixes an error's: 'failed on setup with').
        message = found[0].get("message", "")
        assert (message.startswith(f"guardalloc: {kind} {access}") if tag == "failure"
                else f'with "guardalloc: {kind} {access}' in message), message
        properties = [p for p in cases[name].iter("property") if p.get("name") == "guardalloc_fault"]
        report = json.loads(properties[0].get("value"))
        validate(report)
        assert (report["kind"], report["access"], report["test"]) == (
            kind, access, {"nodeid": f"test_buggy.py::{name}", "phase": phase})


@needs_numpy
def test_buggy_suite_forked(pytester):
    pytester.makepyfile(test_buggy=BUGGY_SUITE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc", "--guardalloc-forked",
                                           f"--junitxml={junit}")
    check_buggy_run(result, junit)


@needs_numpy
@needs_xdist
def test_buggy_suite_forked_under_xdist(pytester):
    pytester.makepyfile(test_buggy=BUGGY_SUITE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--guardalloc",
                                           "--guardalloc-forked", f"--junitxml={junit}")
    check_buggy_run(result, junit)


@needs_xdist
@needs_numpy
def test_each_xdist_worker_is_guarded(pytester):
    pytester.makepyfile(test_workers="""
        import os, pytest
        import numpy as np
        import guardalloc.numpy, guardalloc.pymem, guardalloc.faults

        @pytest.mark.parametrize("i", range(6))
        def test_guarded(i):
            assert os.environ["PYTEST_XDIST_WORKER"].startswith("gw")
            assert guardalloc.numpy.is_guarded(np.zeros(10))
            assert guardalloc.pymem.state() == "sampling"
            assert guardalloc.faults.get_report_test().startswith("test_workers.py::test_guarded")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--guardalloc")
    result.assert_outcomes(passed=6)



@needs_xdist
def test_under_xdist_without_forking_a_workers_fault_is_reported_by_the_controller(pytester, tmp_path,
                                                                                  monkeypatch):
    """A worker that faults dies (there is no fork to take the fault): the
    controller's failure of that test and its summary say what guardalloc
    reported, with the test's Python traceback; a worker that dies outside
    guarded memory gets its traceback too, and no guardalloc fault."""
    # Under CI=true pytest prints each failure's whole message in the short
    # summary too; the counts below are of the failure sections.
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    pytester.makepyfile(test_workers="""
        import ctypes, os

        def test_fine():
            pass

        def test_overflow(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)

        def test_aborts():
            os.abort()

        def test_fine_too():
            pass
    """)
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--guardalloc",
                                           f"--guardalloc-report-dir={reports}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    overflow = out[out.index("crashed while running 'test_workers.py::test_overflow'"):]
    overflow = overflow[:overflow.index("\n____") if "\n____" in overflow else overflow.index("guardalloc faults")]
    assert "heap-buffer-overflow WRITE, 0 bytes past the end of a 4096-byte buffer" in overflow
    assert "test: test_workers.py::test_overflow (call)" in overflow       # the text report
    assert 'test_workers.py", line 8 in test_overflow' in overflow        # the worker's traceback
    aborted = out[out.index("crashed while running 'test_workers.py::test_aborts'"):]
    assert 'test_workers.py", line 11 in test_aborts' in aborted
    summary = out[out.index("guardalloc faults"):]
    assert "test_workers.py::test_overflow (call): heap-buffer-overflow WRITE" in summary
    assert "test_aborts" not in summary.split("short test summary")[0]
    # The text report shows once, under the test, not in the worker's stderr too.
    assert (out + result.stderr.str()).count("guardalloc: heap-buffer-overflow WRITE at") == 1
    found = [r for path in reports.iterdir() for r in map(json.loads, path.read_text().splitlines())]
    assert [(r["kind"], r["test"]["nodeid"]) for r in found] == [
        ("heap-buffer-overflow", "test_workers.py::test_overflow")]


@needs_xdist
def test_under_xdist_without_forking_a_clean_suite_reports_nothing(pytester):
    pytester.makepyfile(test_workers="""
        def test_uses_a_pool(guard_pool):
            buf = guard_pool.alloc(4096)
            buf[4095] = 1

        def test_fine():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--guardalloc")
    result.assert_outcomes(passed=2)
    assert "guardalloc" not in result.stdout.str().split("2 workers")[1]

def test_report_dir_gets_one_json_report_per_fault(pytester):
    pytester.makepyfile(test_two="""
        import ctypes

        def test_overflow(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)

        def test_underflow(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address - 1, 0, 1)

        def test_fine():
            pass
    """)
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked",
                                           "--guardalloc-tracebacks", f"--guardalloc-report-dir={reports}")
    result.assert_outcomes(passed=1, failed=2)
    files = sorted(reports.iterdir())
    assert len(files) == 2
    found = {}
    for path in files:
        lines = path.read_text().splitlines()
        assert len(lines) == 1
        report = json.loads(lines[0])
        validate(report)
        found[report["test"]["nodeid"]] = report
    assert found["test_two.py::test_overflow"]["kind"] == "heap-buffer-overflow"
    assert found["test_two.py::test_underflow"]["kind"] == "heap-buffer-underflow"
    assert found["test_two.py::test_overflow"]["offset"] == 4096
    assert found["test_two.py::test_underflow"]["offset"] == -1
    # --guardalloc-tracebacks: where the buffer was allocated.
    assert "in test_overflow" in found["test_two.py::test_overflow"]["stacks"]["allocated"]
    assert f"JSON reports: {reports}" in result.stdout.str()


def test_fault_at_collection_is_a_collection_error(pytester):
    pytester.makepyfile(test_import_faults="""
        import ctypes, guardalloc
        _pool = guardalloc.Pool()
        _buf = _pool.alloc(4096)
        ctypes.memset(_buf.address, 0, 4097)

        def test_never_collected():
            pass
    """, test_fine="def test_fine(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked",
                                           "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "ERROR collecting test_import_faults.py" in out
    assert "guardalloc: collection died of SIGSEGV" in out
    assert "test: test_import_faults.py (collect)" in out
    assert "test_import_faults.py (collect): heap-buffer-overflow WRITE" in out


def test_crash_outside_guarded_memory_fails_the_test(pytester):
    pytester.makepyfile(test_crash="""
        import os, signal

        def test_killed():
            os.kill(os.getpid(), signal.SIGABRT)

        def test_fine():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "guardalloc: test call died of SIGABRT" in out
    assert "no guardalloc fault report" in out
    assert "test_crash.py::test_killed (call): crashed (SIGABRT), no guard fault report" in out


def test_children_are_forked_unless_the_marker_says_no(pytester):
    pytester.makeconftest("""
        import os
        def pytest_configure(config):
            os.environ["SESSION_PID"] = str(os.getpid())
    """)
    pytester.makepyfile(test_pids="""
        import os, pytest

        def test_in_child():
            assert os.getpid() != int(os.environ["SESSION_PID"])

        @pytest.mark.guardalloc(forked=False)
        def test_in_session():
            assert os.getpid() == int(os.environ["SESSION_PID"])
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked")
    result.assert_outcomes(passed=2)


def test_output_and_exit_first_work_in_children(pytester):
    pytester.makepyfile(test_output="""
        import ctypes

        def test_prints():
            print("hello from the child")
            assert False

        def test_faults(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)

        def test_not_run():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked")
    result.assert_outcomes(passed=1, failed=2)
    assert "hello from the child" in result.stdout.str()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked", "-x")
    result.assert_outcomes(failed=1)


def test_without_forking_the_report_names_the_running_test(pytester):
    pytester.makepyfile(test_unforked="""
        import ctypes

        def test_fine():
            pass

        def test_faults(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)
    """)
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-tracebacks",
                                           f"--guardalloc-report-dir={reports}")
    assert result.ret == -11          # the session dies, as it would without pytest
    err = result.stderr.str()         # captured output does not swallow the report
    assert "guardalloc: heap-buffer-overflow WRITE" in err
    assert "test: test_unforked.py::test_faults (call)" in err
    (path,) = reports.iterdir()
    report = json.loads(path.read_text())
    validate(report)
    assert report["test"] == {"nodeid": "test_unforked.py::test_faults", "phase": "call"}
    assert report["pid"] == int(path.name.split(".")[1])


@pytest.mark.skipif(importlib.util.find_spec("pytest_benchmark") is None,
                    reason="pytest-benchmark is not installed")
def test_pytest_benchmark_keeps_its_results(pytester, monkeypatch):
    # pytest-benchmark turns itself off in an xdist worker, and the inner
    # pytest would take this suite's own worker variables for its own.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_bench="""
        import ctypes

        def test_timed(benchmark, guard_pool):
            buf = guard_pool.alloc(100)
            benchmark(bytes, memoryview(buf))

        def test_faults(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)
    """)
    out = pytester.path / "bench.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked",
                                           f"--benchmark-json={out}")
    result.assert_outcomes(passed=1, failed=1)
    names = [b["name"] for b in json.loads(out.read_text())["benchmarks"]]
    assert names == ["test_timed"]


def test_a_crash_gets_the_next_tests_a_fresh_child(pytester):
    pytester.makepyfile(test_runner="""
        import ctypes, os, pytest

        pids = []

        @pytest.fixture(scope="module")
        def module_pid():
            return os.getpid()

        def test_one(module_pid):
            pids.append(os.getpid())

        def test_two(module_pid):
            assert pids == [os.getpid()] == [module_pid]   # same child, fixture kept

        def test_crash(guard_pool):
            buf = guard_pool.alloc(4096)
            ctypes.memset(buf.address, 0, 4097)

        def test_after(module_pid):
            assert pids == [] and module_pid == os.getpid()  # a new child, fixture set up again
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked")
    result.assert_outcomes(passed=3, failed=1)


IMPORT_COUNTING_TESTS = """
import os, signal

with open(os.environ["IMPORT_LOG"], "a") as f:     # an import-time side effect
    f.write(f"{os.getpid()}\\n")

def record():
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(f"{os.getpid()} {os.getppid()}\\n")

def test_one():
    record()

def test_crash():
    os.kill(os.getpid(), signal.SIGSEGV)

def test_two():
    record()
"""


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "unforked"])
def test_modules_are_imported_once_by_the_session_and_once_by_a_probe(pytester, forked):
    # docs/pytest-plugin.md, "Imports": with --guardalloc-forked a test module
    # runs twice, in a throwaway child forked to import it first (a fault at
    # import is then that module's collection error) and in the session. The
    # children that run the tests are forked from the session after
    # collection and import nothing again, also the one forked after a crash.
    # Without forking it runs once.
    import_log, run_log = pytester.path / "imports.txt", pytester.path / "runs.txt"
    pytester._monkeypatch.setenv("IMPORT_LOG", str(import_log))
    pytester._monkeypatch.setenv("RUN_LOG", str(run_log))
    pytester.makepyfile(test_counted=IMPORT_COUNTING_TESTS)
    args = ["--guardalloc-forked"] if forked else ["--guardalloc-report-dir=reports", "-k", "not crash"]
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    imports = import_log.read_text().split()
    runs = [line.split() for line in run_log.read_text().splitlines()]
    if not forked:
        result.assert_outcomes(passed=2, deselected=1)
        assert len(imports) == 1 and {pid for pid, _ in runs} == {imports[0]}
        return
    result.assert_outcomes(passed=2, failed=1)
    runners = {pid for pid, _ in runs}
    sessions = {ppid for _, ppid in runs}
    assert len(runners) == 2            # test_two ran in a fresh child after the crash
    assert len(sessions) == 1           # both forked from the session...
    assert len(imports) == 2 and len(set(imports)) == 2
    assert sessions < set(imports)      # ...which imported the module once
    assert not runners & set(imports)   # the test children never import it

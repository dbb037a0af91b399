"""--guardalloc-forked gives the plain run's outcomes, counts and exit status
for every kind of report (subtests, xfail, skips, warnings, reruns), and a
crashed test's captured output shows under that test. Each suite runs plain
and forked in the same test, in fresh pytest processes (pytester).
"""

from __future__ import annotations

import importlib.util
import platform
import re

import pytest

SUITES = {
    "unittest_subtests": """
        import unittest

        class Cases(unittest.TestCase):
            def test_one_subtest_fails(self):
                for i in range(3):
                    with self.subTest(i=i):
                        self.assertNotEqual(i, 1)

            def test_all_subtests_pass(self):
                for i in range(2):
                    with self.subTest(i=i):
                        pass

            def test_plain(self):
                pass
    """,
    "pytest_subtests": """
        def test_one_subtest_fails(subtests):
            for i in range(3):
                with subtests.test(msg="step", i=i):
                    assert i != 2

        def test_all_subtests_pass(subtests):
            for i in range(4):
                with subtests.test(i=i):
                    pass
    """,
    "xfail_and_skip": """
        import pytest

        @pytest.mark.xfail
        def test_xfail():
            assert 0

        @pytest.mark.xfail
        def test_xpass():
            pass

        @pytest.mark.xfail(strict=True)
        def test_xpass_strict():
            pass

        def test_xfail_inside():
            pytest.xfail("not yet")

        def test_skip_inside():
            pytest.skip("not here")

        def test_passes():
            pass
    """,
    "warnings": """
        import warnings

        class CustomWarning(UserWarning):
            pass

        def test_warns():
            warnings.warn("careful", DeprecationWarning)
            warnings.warn("custom", CustomWarning)

        def test_warns_too():
            warnings.warn("again", UserWarning)
    """,
    "reruns": """
        import os
        import pytest

        COUNT = os.path.join(os.path.dirname(__file__), "count")

        @pytest.mark.flaky(reruns=2)
        def test_passes_on_second_try():
            n = int(open(COUNT).read()) if os.path.exists(COUNT) else 0
            with open(COUNT, "w") as f:
                f.write(str(n + 1))
            assert n >= 1

        @pytest.mark.flaky(reruns=1)
        def test_always_fails():
            assert 0
    """,
}

# What the plain run of each suite says (-v: passing subtests are counted):
# the forked run must say the same.
EXPECTED = {
    "unittest_subtests": {"failed": 1, "passed": 3, "subtests passed": 4},
    "pytest_subtests": {"failed": 2, "passed": 1, "subtests passed": 6},
    "xfail_and_skip": {"failed": 1, "passed": 1, "skipped": 1, "xfailed": 2, "xpassed": 1},
    "warnings": {"passed": 2, "warnings": 3},
    "reruns": {"failed": 1, "passed": 1, "rerun": 2},
}


def summary(result: pytest.RunResult) -> tuple[dict[str, int], str]:
    """The outcome counts and the summary line without its timing."""
    lines = [line for line in result.outlines if re.search(r" in [\d.]+s", line)]
    assert lines, result.stdout.str()
    line = re.sub(r" in [\d.]+s.*", "", lines[-1]).strip("= ")
    counts = {name: int(n) for n, name in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", line)}
    return counts, line


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_forked_run_reports_what_the_plain_run_reports(pytester, suite):
    if suite == "reruns" and importlib.util.find_spec("pytest_rerunfailures") is None:
        pytest.skip("pytest-rerunfailures is not installed (the test extra has it)")
    if suite.endswith("subtests") and not hasattr(pytest, "Subtests"):
        pytest.skip("this pytest has no built-in subtests (pytest >= 9)")
    pytester.makepyfile(test_suite=SUITES[suite])
    results = {}
    for mode, args in (("plain", ()), ("forked", ("--guardalloc", "--guardalloc-forked"))):
        (pytester.path / "count").unlink(missing_ok=True)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", *args)
        results[mode] = (summary(result), result.ret)
    (plain_counts, plain_line), plain_ret = results["plain"]
    (forked_counts, forked_line), forked_ret = results["forked"]
    assert plain_counts == EXPECTED[suite], plain_line
    assert forked_counts == plain_counts, (forked_line, plain_line)
    assert forked_line == plain_line
    assert forked_ret == plain_ret


def test_failing_subtests_fail_the_forked_run_with_their_details(pytester):
    if not hasattr(pytest, "Subtests"):
        pytest.skip("this pytest has no built-in subtests (pytest >= 9)")
    pytester.makepyfile(test_suite=SUITES["pytest_subtests"])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc", "--guardalloc-forked")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "SUBFAILED[[]step[]] (i=2) test_suite.py::test_one_subtest_fails - assert 2 != 2",
        "FAILED test_suite.py::test_one_subtest_fails - contains 1 failed subtest",
    ])


def test_exit_first_stops_at_a_failing_subtest_as_the_plain_run_does(pytester):
    if not hasattr(pytest, "Subtests"):
        pytest.skip("this pytest has no built-in subtests (pytest >= 9)")
    pytester.makepyfile(test_suite=SUITES["pytest_subtests"])
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-x")
    forked = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-x", "--guardalloc", "--guardalloc-forked")
    assert summary(forked) == summary(plain)
    assert forked.ret == plain.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's double-free message")
def test_a_crashed_tests_stderr_shows_under_that_test(pytester):
    pytester.makepyfile(test_suite="""
        import ctypes, sys

        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]

        def test_double_free():
            print("written before the crash", file=sys.stderr)
            p = libc.malloc(64)
            libc.free(p)
            libc.free(p)

        def test_next():
            print("written by the next test", file=sys.stderr)
            assert 0
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc", "--guardalloc-forked")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    crashed = output[output.index("_ test_double_free _"):output.index("_ test_next _")]
    after = output[output.index("_ test_next _"):]
    assert "died of SIGABRT" in crashed
    assert re.search(r"Captured stderr call -+\nwritten before the crash\n"
                     r"free\(\): double free detected", crashed), crashed
    assert "written by the next test" in after
    assert "double free" not in after.split("short test summary")[0].split("guardalloc faults")[0]

"""CPython's own tests with and without ``python -m guardalloc run --pymem RATE``.

    python tests/external/cpython_suite.py              # test_bytes test_memoryview test_array test_struct
    python tests/external/cpython_suite.py --fast       # test_struct and test_memoryview (CI)
    python tests/external/cpython_suite.py --rate 1 test.test_bytes -k Join
    python tests/external/cpython_suite.py --native 1 --native-full   # test_bytes test_json test_re test_zlib

Runs the selection twice in fresh interpreters with unittest, once plainly
and once under ``guardalloc run --pymem RATE`` (RATE 1: every PyMem
allocation in a guarded slot), and compares run/failure/error/skip counts and
the failing tests. Exit status 0 when they agree. Needs CPython's ``test``
package (Debian: libpython3.X-testsuite; python.org and pyenv builds ship it).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # for _compare, however we are run
from _compare import import_guardalloc, report, run_counted, write_result

FULL = ["test.test_bytes", "test.test_memoryview", "test.test_array", "test.test_struct"]
FAST = ["test.test_struct", "test.test_memoryview"]
# Under the preloadable malloc library (--native RATE).
NATIVE_FULL = ["test.test_bytes", "test.test_json", "test.test_re", "test.test_zlib"]
KEYS = ("run", "passed", "failed", "error", "skipped", "xfailed", "xpassed")


def child(argv: list[str]) -> int:
    """``cpython_suite.py --child [-k PATTERN] MODULE... --result FILE``"""
    import unittest

    *argv, _, result_file = argv
    patterns = []
    while argv[:1] == ["-k"]:
        patterns.append(argv[1])
        argv = argv[2:]
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    suite = unittest.TestSuite(loader.loadTestsFromName(name) for name in argv)

    class Result(unittest.TextTestResult):
        pass

    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=Result)
    result = runner.run(suite)
    failed = len(result.failures)
    errors = len(result.errors)
    counts = {
        "run": result.testsRun,
        "failed": failed,
        "error": errors,
        "skipped": len(result.skipped),
        "xfailed": len(result.expectedFailures),
        "xpassed": len(result.unexpectedSuccesses),
    }
    counts["passed"] = (result.testsRun - failed - errors - counts["skipped"]
                        - counts["xfailed"] - counts["xpassed"])
    not_passed = ([f"failed: {test.id()}" for test, _ in result.failures]
                  + [f"error: {test.id()}" for test, _ in result.errors]
                  + [f"skipped: {test.id()}" for test, _ in result.skipped]
                  + [f"xfailed: {test.id()}" for test, _ in result.expectedFailures]
                  + [f"xpassed: {test.id()}" for test in result.unexpectedSuccesses])
    extra = {}
    stats = _pymem_stats()
    if stats is not None:
        extra["guardalloc_pymem"] = stats
    native = _native_stats()
    if native is not None:
        extra["guardalloc_native"] = native
    write_result(result_file, counts, not_passed, extra)
    return 0 if result.wasSuccessful() else 1


def _pymem_stats():
    """Counts of the pymem hooks when they are active in this process."""
    if "guardalloc" not in sys.modules:
        return None
    try:
        import guardalloc.pymem as pymem
    except ImportError:
        return None
    stats = getattr(pymem, "stats", None)
    return stats() if stats is not None else None


def _native_stats():
    """Counts of the preloaded malloc library, when this process has it."""
    if "guardalloc" not in sys.modules:
        return None
    from guardalloc import native
    return native.stats()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a slice that runs in seconds")
    parser.add_argument("--rate", default="1", help="guardalloc run --pymem RATE (default 1: every allocation)")
    parser.add_argument("--native", metavar="RATE",
                        help="compare with guardalloc run --native RATE (the malloc library) instead of --pymem")
    parser.add_argument("--native-full", action="store_true",
                        help="the native selection: %s" % " ".join(NATIVE_FULL))
    parser.add_argument("-k", action="append", default=[], metavar="PATTERN",
                        help="only test methods matching PATTERN (unittest -k)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("modules", nargs="*", help="test modules (default: %s)" % " ".join(FULL))
    args = parser.parse_args(argv)
    import_guardalloc()
    modules = args.modules or (NATIVE_FULL if args.native_full else FAST if args.fast else FULL)
    selection = [part for k in args.k for part in ("-k", k)] + modules
    plain = run_counted("plain", [sys.executable, __file__, "--child", *selection], args.timeout)
    if args.native is not None:
        label, mode = f"native {args.native}", ["--pymem", "0", "--native", args.native]
    else:
        label, mode = f"pymem {args.rate}", ["--pymem", args.rate]
    guarded = run_counted(
        label, [sys.executable, "-m", "guardalloc", "run", *mode, __file__, "--child", *selection],
        args.timeout)
    return report(f"CPython tests: {' '.join(selection)}", plain, guarded, KEYS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

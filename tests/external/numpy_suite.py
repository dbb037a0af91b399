"""numpy's own test suite with and without guardalloc.numpy.install().

    python tests/external/numpy_suite.py            # numpy/_core/tests/test_multiarray.py (~2-5 min)
    python tests/external/numpy_suite.py --fast     # a slice that runs in seconds (CI)
    python tests/external/numpy_suite.py --pyargs numpy._core.tests.test_numeric -k Clip
    python tests/external/numpy_suite.py --option fallback=True --option uaf=True
    python tests/external/numpy_suite.py --native 1 --fast   # under run --native 1, no numpy handler
    python tests/external/numpy_suite.py --plugin   # plain vs pytest --guardalloc [--guardalloc-forked]

Runs the selection twice in fresh interpreters, once plainly and once with
every numpy data buffer allocated by guardalloc, and compares the
pass/fail/skip/xfail counts and the failing tests. Exit status 0 when they
agree. ``--option KEY=VALUE`` is passed to ``install()`` (a Python literal).
``--plugin`` runs it plainly, under ``pytest --guardalloc`` and under
``pytest --guardalloc --guardalloc-forked`` (the pytest plugin) instead, and
prints the wall-time ratios against plain.
numpy's wheels ship their tests (``numpy/_core/tests``); pytest and
hypothesis are needed (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # for _compare, however we are run
from _compare import import_guardalloc, report, run_counted, write_result

FULL = ["--pyargs", "numpy._core.tests.test_multiarray"]
FAST = ["--pyargs"] + [f"numpy._core.tests.test_multiarray::{name}" for name in (
    "TestCreation", "TestAttributes", "TestResize", "TestFromBuffer", "TestNewBufferProtocol")]
# install() options for the guarded child, as JSON.
OPTIONS_VARIABLE = "GUARDALLOC_NUMPY_SUITE_OPTIONS"
# Our own pytest configuration must not leak into numpy's run.
PYTEST_BASE = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "-o", "filterwarnings="]
# Modes that run under the pytest plugin, and its flags.
PLUGIN_MODES = {"plugin": ["--guardalloc"], "plugin-forked": ["--guardalloc", "--guardalloc-forked"]}


def child(mode: str, pytest_args: list[str], result_file: str) -> int:
    import pytest
    import numpy._core.multiarray as multiarray

    extra = {}
    if mode == "guarded":
        guardalloc = import_guardalloc()
        import guardalloc.numpy
        handler = guardalloc.numpy.install(**json.loads(os.environ.get(OPTIONS_VARIABLE, "{}")))
        extra["install_options"] = handler.options
    extra["handler"] = multiarray.get_handler_name()
    if mode == "native":
        from guardalloc import native
        extra["guardalloc_native_at_start"] = native.stats()

    class Counter:
        def __init__(self):
            self.counts = {}
            self.not_passed = []

        def _add(self, outcome, nodeid):
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome != "passed":
                self.not_passed.append(f"{outcome}: {nodeid}")

        def pytest_runtest_logreport(self, report):
            xfail = hasattr(report, "wasxfail")
            if report.when == "call":
                if report.passed:
                    self._add("xpassed" if xfail else "passed", report.nodeid)
                elif report.skipped:
                    self._add("xfailed" if xfail else "skipped", report.nodeid)
                else:
                    self._add("failed", report.nodeid)
            elif report.skipped:         # skipped in setup
                self._add("xfailed" if xfail else "skipped", report.nodeid)
            elif report.failed:
                self._add("error", report.nodeid)

    counter = Counter()
    status = pytest.main([*PYTEST_BASE, *PLUGIN_MODES.get(mode, []), *pytest_args], plugins=[counter])
    if mode == "guarded":
        extra["handler_after_run"] = multiarray.get_handler_name()
        extra["guardalloc_stats"] = handler.stats()
        guardalloc.numpy.uninstall()
    write_result(result_file, counter.counts, counter.not_passed, extra)
    return int(status)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        mode, *pytest_args = argv[1:]
        pytest_args, result_file = pytest_args[:-2], pytest_args[-1]
        return child(mode, pytest_args, result_file)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a slice that runs in seconds")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option for guardalloc.numpy.install(), e.g. fallback=True")
    parser.add_argument("--native", metavar="RATE",
                        help="compare with guardalloc run --native RATE (the malloc library guards "
                             "numpy's buffers through malloc) instead of the numpy handler")
    parser.add_argument("--plugin", action="store_true",
                        help="compare plain with the pytest plugin (--guardalloc, with and without "
                             "--guardalloc-forked) and print the wall-time ratios")
    parser.add_argument("--timeout", type=float, default=3600)
    args, pytest_args = parser.parse_known_args(argv)
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = ast.literal_eval(value)
    os.environ[OPTIONS_VARIABLE] = json.dumps(options)
    selection = pytest_args or (FAST if args.fast else FULL)
    if args.native is not None:
        import_guardalloc()
        runs = [run_counted("plain", [sys.executable, __file__, "--child", "plain", *selection],
                            args.timeout),
                run_counted(f"native {args.native}",
                            [sys.executable, "-m", "guardalloc", "run", "--pymem", "0", "--native",
                             args.native, __file__, "--child", "native", *selection], args.timeout)]
        return report(f"numpy tests: {' '.join(selection)}", *runs)
    if args.plugin:
        return plugin_report(selection, args.timeout)
    runs = [run_counted(label, [sys.executable, __file__, "--child", label, *selection], args.timeout)
            for label in ("plain", "guarded")]
    return report(f"numpy tests: {' '.join(selection)}", *runs)


def plugin_report(selection: list[str], timeout: float) -> int:
    """Plain against each plugin mode: same outcomes, and the wall-time ratios."""
    plain = run_counted("plain", [sys.executable, __file__, "--child", "plain", *selection], timeout)
    status = 0
    ratios = {}
    for mode in PLUGIN_MODES:
        run = run_counted(mode, [sys.executable, __file__, "--child", mode, *selection], timeout)
        status |= report(f"numpy tests: {' '.join(selection)} (pytest {' '.join(PLUGIN_MODES[mode])})",
                         plain, run)
        if not run.get("crashed") and plain["seconds"]:
            ratios[mode] = round(run["seconds"] / plain["seconds"], 2)
    for mode, ratio in ratios.items():
        print(f"wall time {mode} / plain: {ratio}x ({' '.join(PLUGIN_MODES[mode])})")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

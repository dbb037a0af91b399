"""The plugin's session object: installs the guarding the settings ask for,
names the running test in every fault report, hands tests and module imports
to the forked runner, and sums up the faults at the end."""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

import pytest

import guardalloc
from guardalloc import faults

from .forked import ForkedRunner, wants_fork
from .marker import import_guardalloc_numpy
from .options import Settings
from .reports import FAULT_PROPERTY, describe, report_directory, signal_name, trim_traceback, unread_reports

PLUGIN_NAME = "guardalloc-session"
# workerinput keys: where an xdist worker writes its JSON fault reports and
# its faulthandler traceback, for the controller to read when it crashes.
WORKER_REPORTS = "guardalloc_reports"
WORKER_TRACES = "guardalloc_traces"


class GuardallocPlugin:
    """The active part: installed when the settings ask for anything."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.faulted: list[tuple[str, str, dict | None]] = []   # (nodeid, phase, report)
        self.forked: ForkedRunner | None = None
        self._stderr_copy = -1
        self._previous_fd = faults.get_report_fd()
        self._previous_path = faults.get_report_path()
        self._owned_template = False
        self.template = self._previous_path
        self.scratch = tempfile.mkdtemp(prefix="guardalloc-pytest-")
        self._distributing = (not hasattr(config, "workerinput")
                              and getattr(config.option, "dist", "no") != "no"
                              and bool(getattr(config.option, "numprocesses", None)))
        self._workerinput: dict = getattr(config, "workerinput", {})
        self._seen: set[tuple[str, int]] = set()     # crash reports the controller has shown
        self._trace: Any = None

    # session start and end

    def start(self) -> None:
        settings = self.settings
        if settings.report_dir:
            self.template = os.path.join(report_directory(settings.report_dir), "guardalloc.%p.json")
            self._owned_template = True
        elif self.template is None and self._workerinput.get(WORKER_REPORTS):
            # An xdist worker: reports go where the controller reads them.
            self.template = self._workerinput[WORKER_REPORTS]
            self._owned_template = True
        elif self.template is None and (settings.forked or self._distributing):
            self.template = os.path.join(self.scratch, "guardalloc.%p.json")
            self._owned_template = True
        faults.set_report_path(self.template)
        if settings.forked and not self._distributing:
            self.forked = ForkedRunner(self.scratch, self.template, self._owned_template)
        if self._distributing:
            return          # the xdist controller runs no tests: its workers guard
        # Text reports to the terminal's stderr, which output capturing
        # (fd 2 redirected while a test runs) does not swallow.
        self._stderr_copy = os.dup(2)
        # A worker's controller shows the report under the crashed test.
        faults.set_report_fd(-1 if self._workerinput.get(WORKER_REPORTS) else self._stderr_copy)
        guardalloc.enable_reports()
        if settings.tracebacks:
            guardalloc.set_tracebacks(True)
        if settings.numpy:
            guarded_numpy = import_guardalloc_numpy("--guardalloc-numpy")
            guarded_numpy.install(**settings.pool_options())
        if settings.pymem:
            from guardalloc.hooks import pymem
            pymem.install(sample_rate=settings.pymem, uaf=settings.uaf)

    def stop(self) -> None:
        settings = self.settings
        if self.forked is not None:
            self.forked.stop_runner()
        if not self._distributing:
            if settings.numpy:
                import_guardalloc_numpy("--guardalloc-numpy").uninstall()
            if settings.pymem:
                from guardalloc.hooks import pymem
                pymem.uninstall()
            faults.set_report_fd(self._previous_fd)
            if self._stderr_copy >= 0:
                os.close(self._stderr_copy)
        faults.set_report_path(self._previous_path)
        if self._trace is not None:
            # faulthandler keeps the descriptor: never leave it a closed one
            # (pytest's faulthandler plugin, when on, sets up its own again).
            faulthandler.disable()
            self._trace.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # the running test, named in every report

    def _phase(self, nodeid: str, phase: str) -> Iterator[None]:
        faults.set_report_test(nodeid, phase)
        try:
            yield
        finally:
            faults.set_report_test(None)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        yield from self._phase(item.nodeid, "setup")

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item):
        yield from self._phase(item.nodeid, "call")

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item):
        yield from self._phase(item.nodeid, "teardown")

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        yield from self._phase(collector.nodeid or ".", "collect")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if self.forked is None or self.forked.in_child or not wants_fork(item):
            return None
        hook = item.ihook
        for name, kwargs in self.forked.run(item, nextitem):
            if name == "pytest_warning_recorded":
                hook.pytest_warning_recorded.call_historic(kwargs=kwargs)
            else:
                getattr(hook, name)(**kwargs)
        return True

    def pytest_sessionfinish(self) -> None:
        if self.forked is not None:
            self.forked.stop_runner()

    @pytest.hookimpl(specname="pytest_make_collect_report", tryfirst=True)
    def pytest_make_collect_report_forked(self, collector: pytest.Collector):
        # (pytest registers only attributes named pytest_*; specname names the hook.)
        """Import a test module in a child first: a fault at import fails
        its collection instead of ending the session."""
        if self.forked is None or not isinstance(collector, pytest.Module):
            return None
        return self.forked.collect(collector)

    # pytest-xdist without forking: a worker that crashes

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """(Controller) Tell a worker where to write its reports and traceback."""
        node.workerinput[WORKER_REPORTS] = self.template
        node.workerinput[WORKER_TRACES] = self.scratch

    def pytest_sessionstart(self) -> None:
        traces = self._workerinput.get(WORKER_TRACES)
        if traces and self.forked is None:
            # (Worker) After pytest's faulthandler plugin has set up its own.
            self._trace = open(os.path.join(traces, f"trace-{self._workerinput['workerid']}.txt"), "w")
            faulthandler.enable(file=self._trace, all_threads=False)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched) -> None:
        """(Controller) A worker died running crashitem: its failure says
        what guardalloc reported (and the summary lists it) with the
        worker's Python traceback."""
        worker_id = getattr(getattr(report, "node", None), "workerinput", {}).get("workerid")
        found = unread_reports(self.template, crashitem, self._seen) if self.template else []
        trace = ""
        if worker_id:
            path = os.path.join(self.scratch, f"trace-{worker_id}.txt")
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    trace = f.read()
                os.unlink(path)
            except FileNotFoundError:
                pass
        if not found and not trace.strip():
            return None
        parts = [str(report.longrepr) + "".join(f"\n  {describe(r)}" for r in found)]
        parts += [r.get("text", "").rstrip() for r in found]
        if not found:
            parts.append("(no guardalloc fault report: the crash was not in a guarded slot)")
        if trace.strip():
            parts.append(trim_traceback(trace))
        report.longrepr = "\n\n".join(parts)
        phase = next(((r.get("test") or {}).get("phase") for r in found), None)
        if phase in ("setup", "call", "teardown"):
            report.when = phase
        report.user_properties.extend((FAULT_PROPERTY, json.dumps(r)) for r in found)
        return None

    # the summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        for name, value in report.user_properties:
            if name == FAULT_PROPERTY:
                self.faulted.append((report.nodeid, report.when, json.loads(value)))  # type: ignore[arg-type]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        for value in getattr(report, "guardalloc_faults", ()):
            self.faulted.append((report.nodeid, "collect", json.loads(value)))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.faulted:
            return
        terminalreporter.section("guardalloc faults", red=True, bold=True)
        for nodeid, phase, report in self.faulted:
            if report.get("kind") == "crash":  # type: ignore[union-attr]
                what = f"crashed ({signal_name(report['signal']) if report.get('signal') else 'exit'}), no guard fault report"  # type: ignore[index,union-attr]
            else:
                what = describe(report)  # type: ignore[arg-type]
            terminalreporter.line(f"{nodeid} ({phase}): {what}")
        if self.template and self._owned_template and self.settings.report_dir:
            terminalreporter.line(f"JSON reports: {os.path.dirname(self.template)}")


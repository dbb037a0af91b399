"""``--guardalloc-forked``: tests run in a child forked from the session, one
after the other, a fresh child after one dies; a module is imported in a child
of its own first. A child that dies fails the test (or the collection) it was
running, with its fault report as the failure text."""

from __future__ import annotations

import dataclasses
import faulthandler
import gc
import json
import marshal
import os
import sys
import time
from typing import TYPE_CHECKING, Callable

import pytest

from guardalloc import faults

from . import ipc
from .reports import FAULT_PROPERTY, describe, expand_log_path, read_reports, signal_name, trim_traceback

if TYPE_CHECKING:
    from guardalloc.symbolize import Symbolizer


@dataclasses.dataclass
class Runner:
    """A forked child that runs tests one after the other until one kills it."""
    pid: int
    commands: int          # write end: (item index, next item index) per test
    messages: int          # read end: reporting hook calls (ipc.encode_call), then {"done": 1}
    trace_path: str


@dataclasses.dataclass
class ChildResult:
    messages: list[bytes]
    status: int            # os.waitpid status
    pid: int
    text: str              # what the child's fault reporters wrote (trace file)
    reports: list[dict]    # its JSON fault reports

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def _is_phase_report(report: pytest.TestReport) -> bool:
    """Whether report is the one report of its phase (not a subtest's, nor a
    rerun attempt's)."""
    return type(report) is pytest.TestReport and report.outcome != "rerun"  # type: ignore[comparison-overlap]


def _captured_sections(config: pytest.Config, phase: str) -> list[tuple[str, str]]:
    """What a child that died wrote to the captured stdout and stderr (glibc's
    "free(): double free detected" goes there), taken now so that it shows
    under the test that wrote it rather than the next one."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None or getattr(capture, "_global_capturing", None) is None:
        return []
    out, err = capture.read_global_capture()
    return [(f"Captured {name} {phase}", text) for name, text in (("stdout", out), ("stderr", err)) if text]


def wants_fork(item: pytest.Item) -> bool:
    """Whether item runs in a forked child (not a benchmark, not marked forked=False)."""
    # pytest-benchmark keeps its results in the session process.
    if "benchmark" in getattr(item, "fixturenames", ()):
        return False
    marker = item.get_closest_marker("guardalloc")
    return marker is None or marker.kwargs.get("forked", True) is not False


class ForkedRunner:
    """Runs tests and imports modules in forked children of the session.

    Args:
        scratch: a private directory for the children's trace files.
        template: the JSON report path template (``%p``) the children write to.
        owned_template: the template's directory is the session's: reports are
            renamed there once read, so that a later child with the same pid
            does not find them.
    """

    def __init__(self, scratch: str, template: str | None, owned_template: bool) -> None:
        self.scratch = scratch
        self.template = template
        self.owned_template = owned_template
        self.children = 0
        self._symbolizer: Symbolizer | None = None   # made on the first failure
        self.runner: Runner | None = None
        self._indices: dict[int, int] | None = None
        self.in_child = False     # True in a child that runs tests

    def _spawn(self, body: Callable) -> tuple[int, int, str]:
        """Fork a child that runs body(send) and exits; returns its pid, the
        read end of its messages and its trace file."""
        self.children += 1
        trace_path = os.path.join(self.scratch, f"child-{self.children}.txt")
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # The session's objects go to the permanent generation while the
        # child lives: its garbage collections then do not touch them, which
        # would copy (copy-on-write) most of the session's heap page by page.
        gc.freeze()
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                gc.unfreeze()
        if pid == 0:   # the child: never returns
            status = 0
            try:
                os.close(read_end)
                # The text report reaches the parent in the JSON report;
                # faulthandler's Python traceback through this file.
                faults.set_report_fd(-1)
                trace = open(trace_path, "w")
                faulthandler.enable(file=trace, all_threads=True)
                body(lambda payload: ipc.send(write_end, payload))
            except BaseException:   # a bug of ours: tell the parent, do not run its code
                import traceback
                try:
                    ipc.send(write_end, marshal.dumps({"plugin_error": traceback.format_exc()}))
                except BaseException:
                    pass
                status = 3
            finally:
                os._exit(status)
        os.close(write_end)
        return pid, read_end, trace_path

    def _fork(self, label: str, body: Callable) -> ChildResult:
        """Run body(send) in a forked child; body sends bytes messages to us."""
        pid, read_end, trace_path = self._spawn(body)
        try:
            messages = ipc.receive_all(read_end)
        finally:
            os.close(read_end)
        return self._reap(pid, trace_path, label, messages)

    def _reap(self, pid: int, trace_path: str, label: str, messages: list[bytes]) -> ChildResult:
        """Wait for a child that ended; what it left: status, trace, JSON reports."""
        _, status = os.waitpid(pid, 0)
        try:
            with open(trace_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            os.unlink(trace_path)
        except FileNotFoundError:
            text = ""
        reports = self._child_reports(pid, label)
        return ChildResult(messages, status, pid, text, reports)

    def _child_reports(self, pid: int, label: str) -> list[dict]:
        """The JSON fault reports child pid wrote while running label."""
        if not self.template:
            return []
        path = expand_log_path(self.template, pid)
        reports = read_reports(path, pid)
        if self.owned_template and os.path.exists(path):
            # Free the pid's name for a later child with the same pid.
            os.replace(path, expand_log_path(self.template, f"{pid}-{self.children}"))
        # A runner ran other tests before (continue-mode reports of theirs).
        return [r for r in reports if (r.get("test") or {}).get("nodeid") in (label, None)]

    def _symbolized(self, reports: list[dict]) -> list[dict]:
        """The child's JSON reports symbolized here, in the session (the child
        that wrote them is gone)."""
        from guardalloc.symbolize import Symbolizer, symbolize_report
        if self._symbolizer is None:
            self._symbolizer = Symbolizer()
        return [symbolize_report(r, self._symbolizer) for r in reports]

    def _failure_text(self, result: ChildResult, what: str) -> str:
        """The failure's text: its first line names the bug and where (JUnit
        takes it as the message), then how the child ended, then each report
        symbolized and faulthandler's traceback."""
        died = (f"died of {signal_name(result.signal)}" if result.signal is not None
                else f"exited with status {os.WEXITSTATUS(result.status)}")
        ended = f"guardalloc: {what} {died} in a forked child (pid {result.pid})"
        reports = self._symbolized(result.reports)
        if reports:
            heads = []
            for r in reports:
                where = (r.get("symbolized") or {}).get("location")
                heads.append(describe(r) + (f" at {where}" if where else ""))
            parts = ["guardalloc: " + heads[0] + "".join(f"\n  {h}" for h in heads[1:]) + "\n" + ended]
        else:
            parts = [ended, "(no guardalloc fault report: the crash was not in a guarded slot)"]
        parts += [r.get("text", "").rstrip() for r in reports]
        if result.text.strip():
            parts.append(trim_traceback(result.text))
        return "\n\n".join(parts)

    def _run_in_child(self, session: pytest.Session, send: Callable[[bytes], None]) -> None:
        """What a child does before it runs tests: pytest's reporting hooks
        go to the session (the session object's own count of failures,
        which -x and --maxfail read, stays here too)."""
        self.in_child = True
        ipc.forward_reporting_hooks(session.config, send, keep=lambda plugin: plugin is session)

    def _start_runner(self, session: pytest.Session) -> Runner:
        """A child forked from the session that runs the tests it is sent,
        with their fixtures kept between tests as pytest keeps them."""
        commands_read, commands_write = os.pipe()
        items = session.items

        def body(send):
            os.close(commands_write)
            self._run_in_child(session, send)
            while True:
                command = ipc.read_message(commands_read)
                if command is None:       # the session is over: tear everything down
                    session._setupstate.teardown_exact(None)
                    return
                index, next_index = marshal.loads(command)
                item = items[index]
                nextitem = items[next_index] if next_index >= 0 else None
                # The whole protocol, with every plugin's part of it (warnings,
                # reruns, subtests); this plugin's part passes (in_child).
                item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                send(marshal.dumps({"done": 1}))

        pid, messages, trace_path = self._spawn(body)
        os.close(commands_read)
        return Runner(pid, commands_write, messages, trace_path)

    def stop_runner(self) -> None:
        """Let the runner tear down its fixtures and exit."""
        runner, self.runner = self.runner, None
        if runner is None:
            return
        os.close(runner.commands)
        while ipc.read_message(runner.messages) is not None:
            pass
        os.close(runner.messages)
        os.waitpid(runner.pid, 0)
        try:
            os.unlink(runner.trace_path)
        except FileNotFoundError:
            pass

    def _index(self, item: pytest.Item | None) -> int:
        if item is None:
            return -1
        if self._indices is None:
            self._indices = {id(it): i for i, it in enumerate(item.session.items)}
        return self._indices.get(id(item), -1)

    def run(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[tuple[str, dict]]:
        """Run item in the runner child (a new one when there is none) and
        return the reporting hook calls it made, (hook name, keyword
        arguments), for the session to replay in order. A child that died
        adds a failed report for the phase it died in, with the fault report
        and what the child wrote to the captured stdout and stderr.

        Raises:
            RuntimeError: the plugin's own code failed in the child.
        """
        config = item.config
        started = time.time()
        if self._index(item) < 0:    # not in session.items (a plugin re-runs it): a child of its own
            nextitem = None
        if self.runner is None or self._index(item) < 0:
            self.stop_runner()
            self.runner = self._start_runner(item.session) if self._index(item) >= 0 else None
        messages: list[bytes] = []
        result = None
        if self.runner is None:
            result = self._fork_one(item)
        else:
            runner = self.runner
            try:
                ipc.send(runner.commands, marshal.dumps((self._index(item), self._index(nextitem))))
            except BrokenPipeError:
                pass
            while True:
                message = ipc.read_message(runner.messages)
                if message is None:      # it died running this test
                    os.close(runner.commands)
                    os.close(runner.messages)
                    self.runner = None
                    result = self._reap(runner.pid, runner.trace_path, item.nodeid, messages)
                    break
                if marshal.loads(message).get("done"):
                    break
                messages.append(message)
        if result is not None:
            messages = result.messages
        calls = []
        for message in messages:
            data = marshal.loads(message)
            if "plugin_error" in data:
                raise RuntimeError("guardalloc's forked child failed:\n" + data["plugin_error"])
            calls.append(ipc.decode_call(config, data))
        if result is None or (result.status == 0 and calls and calls[-1][0] == "pytest_runtest_logfinish"):
            return calls
        return self._died(item, calls, result, started)

    def _died(self, item: pytest.Item, calls: list[tuple[str, dict]], result: ChildResult,
              started: float) -> list[tuple[str, dict]]:
        """The calls of a child that died (or exited) before it finished a
        test: its own, then a failed report of the phase it was in."""
        reports = [kwargs["report"] for name, kwargs in calls if name == "pytest_runtest_logreport"]
        done = [r.when for r in reports if _is_phase_report(r)]
        phase = next((r["test"].get("phase") for r in result.reports if r.get("test")), None)
        if phase not in ("setup", "call", "teardown"):
            phase = "setup" if not done else "call" if done == ["setup"] else "teardown"
        if phase == "call" and not done:
            phase = "setup"
        properties = ([(FAULT_PROPERTY, json.dumps(r)) for r in result.reports]
                      or [(FAULT_PROPERTY, json.dumps({"kind": "crash", "signal": result.signal}))])
        keywords = {k: 1 for k in item.keywords}
        failed = pytest.TestReport(
            item.nodeid, item.location, keywords, "failed",  # type: ignore[arg-type]
            self._failure_text(result, f"test {phase}"), phase,  # type: ignore[arg-type]
            duration=time.time() - started, user_properties=properties,
            sections=_captured_sections(item.config, phase))
        location = {"nodeid": item.nodeid, "location": item.location}
        kept = [(name, kwargs) for name, kwargs in calls
                if name != "pytest_runtest_logfinish"
                and not (name == "pytest_runtest_logreport" and kwargs["report"].when == phase
                         and _is_phase_report(kwargs["report"]))]
        if not kept or kept[0][0] != "pytest_runtest_logstart":
            kept.insert(0, ("pytest_runtest_logstart", location))
        kept.append(("pytest_runtest_logreport", {"report": failed}))
        if phase != "teardown":
            # Close the test case: JUnit XML writes it, and its properties, on teardown.
            kept.append(("pytest_runtest_logreport", {"report": pytest.TestReport(
                item.nodeid, item.location, keywords, "passed", None,  # type: ignore[arg-type]
                "teardown", user_properties=properties)}))
        kept.append(("pytest_runtest_logfinish", location))
        return kept

    def _fork_one(self, item: pytest.Item) -> ChildResult:
        """Run one test in a child of its own (setup, call, teardown)."""

        def body(send):
            self._run_in_child(item.session, send)
            item.ihook.pytest_runtest_protocol(item=item, nextitem=None)

        return self._fork(item.nodeid, body)

    def collect(self, collector: pytest.Module) -> pytest.CollectReport | None:
        """Import a test module in a child first: a fault at import fails
        its collection instead of ending the session."""

        def body(send):
            faults.set_report_test(collector.nodeid, "collect")
            try:
                list(collector.collect())
            except BaseException:
                pass    # the session's own collection reports it

        result = self._fork(collector.nodeid, body)
        if result.signal is None:
            return None
        report = pytest.CollectReport(collector.nodeid, "failed",
                                      self._failure_text(result, "collection"), [])
        report.guardalloc_faults = [json.dumps(r) for r in result.reports]  # type: ignore[attr-defined]
        return report

"""The pytest plugin: a whole test suite under guard pages, each fault a failed test.

Registered through the ``pytest11`` entry point and inactive unless asked::

    pytest --guardalloc                        # numpy arrays + sampled PyMem
    pytest --guardalloc --guardalloc-forked    # tests in a forked child
    pytest --guardalloc-numpy --guardalloc-alignment=1 --guardalloc-uaf
    pytest --guardalloc-pymem=100 --guardalloc-report-dir=guardalloc-reports
    pytest --guardalloc-native=1               # the preloaded malloc library

or in the ini file: ``guardalloc = numpy pymem:100 forked``.

With ``--guardalloc-forked`` the tests run in a child forked from the
session (guard pages add no VMAs for fork to copy), one after the other; a
child that dies is replaced by a fresh fork for the next test. A guard fault
then fails that test only -- or errors it, when a fixture faulted in setup or
teardown -- with the fault report and the Python traceback as its failure
text (also in ``--junitxml``), and the terminal summary lists the tests that
faulted. Modules are imported in a child first as well, so a fault at import
fails that module's collection. Without forking, a fault ends the session as
it would without pytest, and the report names the test (node id and phase)
that was running.

Fault reports (and the malloc library's reports of a bad free) are also
written as JSON (docs/report-schema.json), one object per report, to ``--guardalloc-report-dir`` (or ``GUARDALLOC_OPTIONS=log_path``).

Tests that use pytest-benchmark's ``benchmark`` fixture run in the session
process even with forking, so that their timings reach pytest-benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import gc
import json
import marshal
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Iterator

import pytest

import guardalloc
from guardalloc import faults
from guardalloc.cli import run as launcher
from guardalloc.cli.run import DEFAULT_PYMEM_RATE

if TYPE_CHECKING:
    from guardalloc.symbolize import Symbolizer

FAULT_PROPERTY = "guardalloc_fault"  # user_properties key: the JSON report
# Set in the environment of a pytest re-executed with the native library
# preloaded: its path (so the re-executed session does not exec again).
NATIVE_ENV = "GUARDALLOC_PYTEST_NATIVE"
# A report directory the re-executed session should remove at its end.
CLEANUP_ENV = "GUARDALLOC_PYTEST_CLEANUP"
MARKER_OPTIONS = ("uaf", "alignment", "align", "guard_pages")

# Frames of the plugin itself (left out of the tracebacks it shows).
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep



# -- settings -----------------------------------------------------------------

@dataclasses.dataclass
class Settings:
    """What the command line and the ini file ask for."""

    numpy: bool = False
    pymem: int = 0           # sample rate; 0: off
    native: int = 0          # sample rate of the preloaded library; 0: off
    uaf: bool = False
    alignment: int | None = None
    forked: bool = False
    tracebacks: bool = False
    report_dir: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.numpy or self.pymem or self.native or self.forked or self.uaf
                    or self.alignment is not None or self.tracebacks or self.report_dir)

    def pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.uaf:
            options["uaf"] = True
        if self.alignment is not None:
            options["alignment"] = self.alignment
        return options


def _rate(text: str, what: str) -> int:
    try:
        return launcher._rate(text)     # the launcher's rule for --pymem RATE
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{what}: {exc}") from None


def _alignment(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not (value == 1 or (value >= 16 and value & (value - 1) == 0)):
        raise pytest.UsageError(
            f"{what}: alignment must be 1 (byte-exact) or a power of two of at least 16, not {text!r}")
    return value


def _apply_ini_token(settings: Settings, token: str) -> None:
    name, sep, value = token.partition(":")
    what = f"ini option guardalloc: {token!r}"
    flags = {"numpy", "uaf", "forked", "tracebacks", "default"}
    if name in flags and sep:
        raise pytest.UsageError(f"{what}: {name} takes no value")
    if name == "default":
        settings.numpy = True
        settings.pymem = settings.pymem or DEFAULT_PYMEM_RATE
    elif name in ("numpy", "uaf", "forked", "tracebacks"):
        setattr(settings, name, True)
    elif name == "pymem":
        settings.pymem = _rate(value, what) if sep else DEFAULT_PYMEM_RATE
    elif name == "native":
        settings.native = _rate(value, what) if sep else 1
    elif name == "alignment" and sep:
        settings.alignment = _alignment(value, what)
    elif name == "report-dir" and sep and value:
        settings.report_dir = value
    else:
        raise pytest.UsageError(
            f"{what}: unknown; use default, numpy, pymem[:RATE], native[:RATE], uaf, "
            "alignment:N, forked, tracebacks, report-dir:DIR")


def settings_from(config: pytest.Config) -> Settings:
    """The settings of this session: the ini option, then the command line.

    Raises:
        pytest.UsageError: a bad ini token or option value.
    """
    settings = Settings()
    for token in config.getini("guardalloc"):
        _apply_ini_token(settings, token)
    option = config.option
    if option.guardalloc:
        settings.numpy = True
        settings.pymem = settings.pymem or DEFAULT_PYMEM_RATE
    if option.guardalloc_numpy:
        settings.numpy = True
    if option.guardalloc_pymem is not None:
        settings.pymem = _rate(option.guardalloc_pymem, "--guardalloc-pymem")
    if option.guardalloc_native is not None:
        settings.native = _rate(option.guardalloc_native, "--guardalloc-native")
    if option.guardalloc_uaf:
        settings.uaf = True
    if option.guardalloc_alignment is not None:
        settings.alignment = _alignment(option.guardalloc_alignment, "--guardalloc-alignment")
    if option.guardalloc_forked:
        settings.forked = True
    if option.guardalloc_tracebacks:
        settings.tracebacks = True
    if option.guardalloc_report_dir:
        settings.report_dir = option.guardalloc_report_dir
    return settings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("guardalloc", "guard pages under the test suite (guardalloc)")
    group.addoption("--guardalloc", action="store_true", default=False,
                    help="guard numpy arrays and one in "
                         f"{DEFAULT_PYMEM_RATE} of the interpreter's allocations")
    group.addoption("--guardalloc-numpy", action="store_true", default=False,
                    help="allocate every numpy array's data in guarded slots")
    group.addoption("--guardalloc-pymem", metavar="RATE", default=None,
                    help="guard one in RATE of the interpreter's allocations (1: all; 0: off)")
    group.addoption("--guardalloc-native", metavar="RATE", default=None,
                    help="re-execute pytest with guardalloc's malloc library preloaded, "
                         "guarding one in RATE native allocations")
    group.addoption("--guardalloc-uaf", action="store_true", default=False,
                    help="guard freed blocks too (use-after-free)")
    group.addoption("--guardalloc-alignment", metavar="N", default=None,
                    help="block alignment: 1 (byte-exact) or a power of two >= 16 (default 16)")
    group.addoption("--guardalloc-forked", action="store_true", default=False,
                    help="run the tests in a forked child, a new one after a crash: a fault fails its test only")
    group.addoption("--guardalloc-tracebacks", action="store_true", default=False,
                    help="record allocation/free tracebacks of guardalloc buffers for reports")
    group.addoption("--guardalloc-report-dir", metavar="DIR", default=None,
                    help="write JSON fault reports (docs/report-schema.json) into DIR")
    parser.addini("guardalloc", type="args", default=[],
                  help="guardalloc settings: default numpy pymem[:RATE] native[:RATE] uaf "
                       "alignment:N forked tracebacks report-dir:DIR")


# -- the native library: re-execute with it preloaded ---------------------------

def native_library_path() -> str:
    """The path of guardalloc's preloadable malloc library.

    Raises:
        pytest.UsageError: this guardalloc has no guardalloc.native module.
    """
    try:
        from guardalloc import native
    except ImportError as exc:
        raise pytest.UsageError(
            "--guardalloc-native needs guardalloc.native (the preloadable malloc library), "
            f"which this guardalloc build lacks: {exc}") from None
    return str(native.library_path())


def _library_loaded(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(real) for line in maps)


def _native_environment(settings: Settings, library: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env[NATIVE_ENV] = library
    options = [f"sample_rate={settings.native}"]
    if settings.uaf:
        options.append("uaf=1")
    if settings.alignment is not None:
        options.append(f"alignment={settings.alignment}")
    current = env.get(faults.OPTIONS_ENV, "")
    if "log_path" not in faults.parse_options(current) or not faults.parse_options(current)["log_path"]:
        # Children's reports must land where the session reads them.
        directory = settings.report_dir
        if directory is None:
            directory = tempfile.mkdtemp(prefix="guardalloc-reports-")
            env[CLEANUP_ENV] = directory
        options.append(f"log_path='{os.path.abspath(os.path.join(directory, 'guardalloc.%p.json'))}'")
    env[faults.OPTIONS_ENV] = ":".join(p for p in (current, *options) if p)
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    settings = settings_from(config)
    if not settings.native:
        return
    preloaded = os.environ.get(NATIVE_ENV)
    if preloaded:
        if not _library_loaded(preloaded):
            raise pytest.UsageError(
                f"--guardalloc-native: {preloaded} was to be preloaded (LD_PRELOAD) but is not "
                "loaded in this process")
        return
    library = native_library_path()
    argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "pytest",  # type: ignore[attr-defined]
            *config.invocation_params.args]
    env = _native_environment(settings, library)
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(sys.executable, argv, env)


# -- fault reports -------------------------------------------------------------

def expand_log_path(template: str, pid: int | str) -> str:
    """A log_path template with ``%p`` replaced by pid (``%%`` by ``%``), as
    the C handler expands it."""
    return re.sub(r"%[p%]", lambda m: str(pid) if m.group() == "%p" else "%", template)


def read_reports(path: str, pid: int | None = None) -> list[dict]:
    """The JSON reports in a log file (one object per line), only those of
    process pid when given; [] when the file does not exist. Lines that are
    not JSON (a report cut short) are skipped."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                if isinstance(report, dict) and (pid is None or report.get("pid") == pid):
                    found.append(report)
    except FileNotFoundError:
        pass
    return found


def describe(report: dict) -> str:
    """One line: kind, access and the buffer's size, as the summary shows it
    (for a bad free the native heap found, access "free": what was freed)."""
    size = report.get("size")
    offset = report.get("offset")
    if report.get("access") == "free":
        return _describe_free(report, size, offset)
    where = ""
    if size is not None and offset is not None:
        if offset >= size:
            where = f", {offset - size} bytes past the end of a {size}-byte buffer"
        elif offset < 0:
            where = f", {-offset} bytes before a {size}-byte buffer"
        else:
            where = f", at offset {offset} of a {size}-byte buffer"
    return f"{report.get('kind')} {report.get('access')}{where}"


def _describe_free(report: dict, size: int | None, offset: int | None) -> str:
    kind = report.get("kind")
    if size is None or offset is None:
        return f"{kind} at free, of a pointer in no slot"
    if kind == "heap-buffer-overflow":
        return (f"heap-buffer-overflow found at free: {report.get('damaged')} slack byte(s) "
                f"after a {size}-byte buffer overwritten")
    if offset == 0:
        return f"{kind} of a {size}-byte buffer (slot {report.get('slot')})"
    side = f"{offset} bytes inside" if offset > 0 else f"{-offset} bytes before"
    return f"{kind} of a pointer {side} a {size}-byte buffer (slot {report.get('slot')})"


# -- running one test (or importing one module) in a forked child ------------------

def _send(fd: int, payload: bytes) -> None:
    data = struct.pack("<I", len(payload)) + payload
    while data:
        done = os.write(fd, data)
        data = data[done:]


def _receive_all(fd: int) -> list[bytes]:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    messages = []
    while len(data) >= 4:
        (n,) = struct.unpack("<I", data[:4])
        if len(data) < 4 + n:
            break
        messages.append(data[4:4 + n])
        data = data[4 + n:]
    return messages


def _read_message(fd: int) -> bytes | None:
    """One framed message (see _send), or None at end of file."""
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack("<I", head)[0])


@dataclasses.dataclass
class Runner:
    """A forked child that runs tests one after the other until one kills it."""
    pid: int
    commands: int          # write end: (item index, next item index) per test
    messages: int          # read end: serialized reports, then {"done": 1}
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class GuardallocPlugin:
    """The active part: installed when the settings ask for anything."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.faulted: list[tuple[str, str, dict | None]] = []   # (nodeid, phase, report)
        self.children = 0
        self._symbolizer: Symbolizer | None = None   # made on the first failure
        self.runner: Runner | None = None
        self._indices: dict[int, int] | None = None
        self._cleanup: str | None = os.environ.pop(CLEANUP_ENV, None)
        self._stderr_copy = -1
        self._previous_fd = faults.get_report_fd()
        self._previous_path = faults.get_report_path()
        self._owned_template = False
        self.template = self._previous_path
        self.scratch = tempfile.mkdtemp(prefix="guardalloc-pytest-")
        self._distributing = (not hasattr(config, "workerinput")
                              and getattr(config.option, "dist", "no") != "no"
                              and bool(getattr(config.option, "numprocesses", None)))

    # session start and end

    def start(self) -> None:
        settings = self.settings
        if settings.report_dir:
            os.makedirs(settings.report_dir, exist_ok=True)
            self.template = os.path.join(os.path.abspath(settings.report_dir), "guardalloc.%p.json")
            self._owned_template = True
        elif self.template is None and settings.forked:
            self.template = os.path.join(self.scratch, "guardalloc.%p.json")
            self._owned_template = True
        faults.set_report_path(self.template)
        if self._distributing:
            return          # the xdist controller runs no tests: its workers guard
        # Text reports to the terminal's stderr, which output capturing
        # (fd 2 redirected while a test runs) does not swallow.
        self._stderr_copy = os.dup(2)
        faults.set_report_fd(self._stderr_copy)
        guardalloc.enable_reports()
        if settings.tracebacks:
            guardalloc.set_tracebacks(True)
        if settings.numpy:
            guarded_numpy = _import_guardalloc_numpy("--guardalloc-numpy")
            guarded_numpy.install(**settings.pool_options())
        if settings.pymem:
            from guardalloc.hooks import pymem
            pymem.install(sample_rate=settings.pymem, uaf=settings.uaf)

    def stop(self) -> None:
        settings = self.settings
        self.stop_runner()
        if not self._distributing:
            if settings.numpy:
                _import_guardalloc_numpy("--guardalloc-numpy").uninstall()
            if settings.pymem:
                from guardalloc.hooks import pymem
                pymem.uninstall()
            faults.set_report_fd(self._previous_fd)
            if self._stderr_copy >= 0:
                os.close(self._stderr_copy)
        faults.set_report_path(self._previous_path)
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)

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

    # forking

    def _spawn(self, body, commands: int = -1) -> tuple[int, int, str]:
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
                body(lambda payload: _send(write_end, payload))
            except BaseException:   # a bug of ours: tell the parent, do not run its code
                import traceback
                try:
                    _send(write_end, marshal.dumps({"plugin_error": traceback.format_exc()}))
                except BaseException:
                    pass
                status = 3
            finally:
                os._exit(status)
        os.close(write_end)
        return pid, read_end, trace_path

    def _fork(self, label: str, body) -> ChildResult:
        """Run body(send) in a forked child; body sends bytes messages to us."""
        pid, read_end, trace_path = self._spawn(body)
        try:
            messages = _receive_all(read_end)
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
        if not self.template:
            return []
        path = expand_log_path(self.template, pid)
        reports = read_reports(path, pid)
        if self._owned_template and os.path.exists(path):
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
        died = (f"died of {_signal_name(result.signal)}" if result.signal is not None
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
            parts.append(_trim_traceback(result.text))
        return "\n\n".join(parts)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if not self.settings.forked or self._distributing or not _wants_fork(item):
            return None
        hook = item.ihook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in self._run_forked(item, nextitem):
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _start_runner(self, session: pytest.Session) -> Runner:
        """A child forked from the session that runs the tests it is sent,
        with their fixtures kept between tests as pytest keeps them."""
        commands_read, commands_write = os.pipe()
        config = session.config
        items = session.items

        def body(send):
            from _pytest.runner import call_and_report, show_test_item
            os.close(commands_write)

            def report(rep):
                send(marshal.dumps(config.hook.pytest_report_to_serializable(config=config, report=rep)))

            while True:
                command = _read_message(commands_read)
                if command is None:       # the session is over: tear everything down
                    session._setupstate.teardown_exact(None)
                    return
                index, next_index = marshal.loads(command)
                item = items[index]
                nextitem = items[next_index] if next_index >= 0 else None
                if hasattr(item, "_request") and not item._request:
                    item._initrequest()
                rep = call_and_report(item, "setup", log=False)
                report(rep)
                if rep.passed and not config.getoption("setuponly", False):
                    if config.getoption("setupshow", False):
                        show_test_item(item)
                    report(call_and_report(item, "call", log=False))
                report(call_and_report(item, "teardown", log=False, nextitem=nextitem))
                if hasattr(item, "_request"):
                    item._request = False
                    item.funcargs = None
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
        while _read_message(runner.messages) is not None:
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

    def _run_forked(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.TestReport]:
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
                _send(runner.commands, marshal.dumps((self._index(item), self._index(nextitem))))
            except BrokenPipeError:
                pass
            while True:
                message = _read_message(runner.messages)
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
        reports = []
        for message in messages:
            data = marshal.loads(message)
            if "plugin_error" in data:
                raise RuntimeError("guardalloc's forked child failed:\n" + data["plugin_error"])
            reports.append(config.hook.pytest_report_from_serializable(config=config, data=data))
        done = [r.when for r in reports]
        if result is None or (result.status == 0 and done and done[-1] == "teardown"):
            return reports
        # The child died (or exited) before it finished: fail the phase it was in.
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
            duration=time.time() - started, user_properties=properties)
        reports = [r for r in reports if r.when != phase] + [failed]
        if phase != "teardown":
            # Close the test case: JUnit XML writes it, and its properties, on teardown.
            reports.append(pytest.TestReport(item.nodeid, item.location, keywords, "passed", None,  # type: ignore[arg-type]
                                             "teardown", user_properties=properties))
        return reports

    def _fork_one(self, item: pytest.Item) -> ChildResult:
        """Run one test in a child of its own (setup, call, teardown)."""
        config = item.config

        def body(send):
            from _pytest.runner import runtestprotocol
            for rep in runtestprotocol(item, log=False, nextitem=None):
                send(marshal.dumps(config.hook.pytest_report_to_serializable(config=config, report=rep)))

        return self._fork(item.nodeid, body)

    def pytest_sessionfinish(self) -> None:
        self.stop_runner()

    @pytest.hookimpl(specname="pytest_make_collect_report", tryfirst=True)
    def pytest_make_collect_report_forked(self, collector: pytest.Collector):
        # (pytest registers only attributes named pytest_*; specname names the hook.)
        """Import a test module in a child first: a fault at import fails
        its collection instead of ending the session."""
        if not self.settings.forked or self._distributing or not isinstance(collector, pytest.Module):
            return None

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
                what = f"crashed ({_signal_name(report['signal']) if report.get('signal') else 'exit'}), no guard fault report"  # type: ignore[index,union-attr]
            else:
                what = describe(report)  # type: ignore[arg-type]
            terminalreporter.line(f"{nodeid} ({phase}): {what}")
        if self.template and self._owned_template and self.settings.report_dir:
            terminalreporter.line(f"JSON reports: {os.path.dirname(self.template)}")


def _trim_traceback(text: str) -> str:
    """faulthandler's output without the frames of pytest's machinery below
    the test (the innermost frames come first) and the extension list."""
    kept = []
    skipping = False
    for line in text.strip().splitlines():
        if line.startswith("Extension modules:"):
            continue
        frame = line.lstrip().startswith("File ")
        if frame and any(part in line for part in ("/_pytest/", "/pluggy/", PLUGIN_DIR)):
            if not skipping:
                kept.append("  ... (pytest's and guardalloc's frames)")
            skipping = True
            continue
        if not frame:
            skipping = False
        elif skipping:
            continue    # the session's frames below pytest's
        kept.append(line)
    return "\n".join(kept).strip()


def _wants_fork(item: pytest.Item) -> bool:
    # pytest-benchmark keeps its results in the session process.
    if "benchmark" in getattr(item, "fixturenames", ()):
        return False
    marker = item.get_closest_marker("guardalloc")
    return marker is None or marker.kwargs.get("forked", True) is not False


def _import_guardalloc_numpy(what: str):
    try:
        import guardalloc.hooks.numpy as guarded_numpy
    except ImportError as exc:
        raise pytest.UsageError(f"{what} needs numpy: {exc}") from None
    return guarded_numpy


# -- the marker ----------------------------------------------------------------

def marker_settings(item: pytest.Item, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether guarding is on for this test and the pool options it asks for
    (``@pytest.mark.guardalloc(False)`` / ``(uaf=True, alignment=1)``).

    Raises:
        TypeError: the marker has an unknown option, more than one argument
            or a bad ``pymem`` value.
    """
    marker = item.get_closest_marker("guardalloc")
    options = settings.pool_options()
    if marker is None:
        return True, options
    if len(marker.args) > 1 or any(not isinstance(a, bool) for a in marker.args):
        raise TypeError(f"@pytest.mark.guardalloc takes one True/False argument, not {marker.args!r}")
    known = (*MARKER_OPTIONS, "pymem", "forked")
    unknown = set(marker.kwargs) - set(known)
    if unknown:
        raise TypeError(f"@pytest.mark.guardalloc: unknown option(s) {sorted(unknown)}; "
                        f"known: {', '.join(known)}")
    marker_pymem_rate(marker)    # checked here, where every marked test passes
    options.update({k: v for k, v in marker.kwargs.items() if k in MARKER_OPTIONS})
    return (marker.args[0] if marker.args else True), options


def marker_pymem_rate(marker: pytest.Mark) -> int | None:
    """The PyMem sample rate a marker asks for: ``pymem=RATE`` (0 or False:
    off, True: the default rate), 0 for ``guardalloc(False)``, None to keep
    the session's.

    Raises:
        TypeError: ``pymem`` is neither a bool nor an int >= 0.
    """
    if "pymem" not in marker.kwargs:
        return 0 if marker.args and marker.args[0] is False else None
    value = marker.kwargs["pymem"]
    if value is True:
        return DEFAULT_PYMEM_RATE
    if value is False:
        return 0
    if not isinstance(value, int) or value < 0:
        raise TypeError(f"@pytest.mark.guardalloc: pymem must be a sample rate (an int >= 0, "
                        f"0: off) or True/False, not {value!r}")
    return value


def switch_pymem(rate: int, uaf: bool):
    """Make PyMem sampling guard one allocation in ``rate`` (0: none) and
    return a function that puts back what was there, or None when nothing
    changes. Blocks guarded before stay valid either way: the hooks free
    each pointer by who owns it (``guardalloc.pymem.uninstall()`` keeps them
    installed, forwarding, while guarded blocks are live).

    Raises:
        RuntimeError: another allocator hook sits on guardalloc's (tracemalloc).
    """
    from guardalloc.hooks import pymem
    before = pymem.stats()
    sampling = before["state"] == "sampling"
    domains: Any = tuple(name for name in pymem.DOMAIN_NAMES if before[name]["sampling"]) or pymem.DOMAIN_NAMES
    if rate == (before["sample_rate"] if sampling else 0):
        return None
    if rate == 0:
        pymem.uninstall()
    else:
        pymem.install(sample_rate=rate, domains=domains, uaf=uaf)

    def restore() -> None:
        if sampling:
            pymem.install(sample_rate=before["sample_rate"], domains=domains,
                          random=before["random"], uaf=uaf)
        else:
            pymem.uninstall()
    return restore


class _MarkerScope:
    """What a marked test changes, from setup to teardown: numpy's handler
    (the marker's options, or numpy's own allocator for guardalloc(False))
    and the PyMem sample rate (``pymem=``)."""

    _saved: dict[str, list] = {}

    @classmethod
    def enter(cls, item: pytest.Item, settings: Settings) -> None:
        marker = item.get_closest_marker("guardalloc")
        if marker is None:
            return
        enabled, options = marker_settings(item, settings)
        restores = cls._saved[item.nodeid] = []
        rate = marker_pymem_rate(marker)
        if rate is not None:
            restore = switch_pymem(rate, settings.uaf)
            if restore is not None:
                restores.append(restore)
        if not (settings.numpy or enabled) or "numpy" not in sys.modules:
            return      # nothing to hand arrays out for
        guarded_numpy = _import_guardalloc_numpy("@pytest.mark.guardalloc")
        from guardalloc.hooks import _numpy_handler  # type: ignore[attr-defined]
        if enabled:
            context = guarded_numpy.guarded(**options)
            context.__enter__()
            restores.append(lambda: context.__exit__(None, None, None))
        else:
            previous = _numpy_handler.set_handler(guarded_numpy._default_handler())
            restores.append(lambda: _numpy_handler.set_handler(previous))

    @classmethod
    def exit(cls, item: pytest.Item) -> None:
        for restore in reversed(cls._saved.pop(item.nodeid, ())):
            restore()


# -- plugin entry points ---------------------------------------------------------

PLUGIN_NAME = "guardalloc-session"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "guardalloc(enabled=True, *, uaf=..., alignment=..., align=..., guard_pages=..., pymem=RATE, "
        "forked=True): guardalloc options for this test's numpy arrays and guard_pool, its PyMem "
        "sample rate (pymem=False: off); guardalloc(False) opts out of numpy and PyMem guarding; "
        "forked=False runs it in the session process under --guardalloc-forked")
    settings = settings_from(config)
    if not settings.active:
        return
    plugin = GuardallocPlugin(config, settings)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    plugin.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is not None:
        plugin.stop()
        config.pluginmanager.unregister(plugin)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the fixtures: their arrays get the marker's options too. Also
    # without --guardalloc: a marked test asks for guarding.
    plugin = item.config.pluginmanager.get_plugin(PLUGIN_NAME)
    _MarkerScope.enter(item, plugin.settings if plugin is not None else Settings())


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item):
    try:
        yield
    finally:
        _MarkerScope.exit(item)


# -- fixtures -------------------------------------------------------------------

def _session_settings(request: pytest.FixtureRequest) -> Settings:
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin.settings if plugin is not None else Settings()


@pytest.fixture
def guard_pool(request: pytest.FixtureRequest) -> Iterator[guardalloc.Pool]:
    """A fresh :class:`guardalloc.Pool` for this test, with the session's and
    the test's ``guardalloc`` marker options; closed after the test (left
    open when the test still exports its buffers)."""
    _, options = marker_settings(request.node, _session_settings(request))
    pool = guardalloc.Pool(**options)
    yield pool
    try:
        pool.close()
    except BufferError:
        pass    # a memoryview or array outlives the test; the pool stays mapped


@pytest.fixture
def guarded_numpy(request: pytest.FixtureRequest):
    """numpy arrays made during the test get guarded data (the session's and
    the marker's options); yields the :class:`guardalloc.numpy.Handler`."""
    pytest.importorskip("numpy")
    guarded = _import_guardalloc_numpy("the guarded_numpy fixture")
    _, options = marker_settings(request.node, _session_settings(request))
    with guarded.guarded(**options) as handler:
        yield handler

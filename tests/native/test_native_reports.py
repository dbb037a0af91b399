"""The native library's JSON reports (log_path, docs/report-schema.json)
under ``guardalloc exec`` and ``run --native``, its native_stacks option,
and the faulting instruction when faulthandler sits above its handler."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from native_support import CORPUS, build, functions, python_argv, run_preloaded, symbolized  # noqa: F401 (build: a fixture)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from test_reports_json import validate  # noqa: E402

OVERFLOW = os.path.join(CORPUS, "overflow_write.c")
# A Python program whose malloc() block (under the library) overflows into
# the guard: 100 bytes, 16-byte aligned, end at 112.
MALLOC_OVERFLOW = """import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(100)
ctypes.memset(p + 112, 0, 1)
"""


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    env.pop("GUARDALLOC_OPTIONS", None)
    return env


def _one_report(directory, pid: int | None = None) -> dict:
    """The one JSON report in directory, named for its pid (%p expanded;
    pid, when given, must be that pid)."""
    names = os.listdir(directory)
    assert len(names) == 1, names
    pid = pid if pid is not None else int(names[0].split(".")[1])
    assert names == [f"report.{pid}.json"], names
    with open(os.path.join(directory, names[0])) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    validate(report)
    assert report["pid"] == pid
    return report


def _exec(argv, env=None):
    """guardalloc exec in a child (which runs the program as its own child and
    dies as it died): (the launcher's pid, its status, its stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "guardalloc", "exec", *argv],
                            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    return proc.pid, proc.returncode, err


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_exec_writes_a_json_report(build, tmp_path, how):
    program = build(OVERFLOW)
    template = str(tmp_path / "report.%p.json")
    env = _env()
    if how == "flag":
        argv = ["--sample-rate", "1", "--alignment", "1", "--log-path", template, "--", program]
    else:
        env["GUARDALLOC_OPTIONS"] = f"log_path='{template}'"
        argv = ["--sample-rate", "1", "--alignment", "1", "--", program]   # exec's own options keep the user's
    pid, status, stderr = _exec(argv, env)
    assert status == -signal.SIGSEGV, stderr   # exec dies as its program died
    assert "heap-buffer-overflow WRITE" in stderr
    report = _one_report(tmp_path)
    assert report["pid"] != pid   # the program ran as exec's child
    assert report["kind"] == "heap-buffer-overflow" and report["access"] == "WRITE"
    assert report["signal"] == "SIGSEGV" and report["si_code"] == "SEGV_MAPERR"
    # exec prints the report symbolized; the JSON keeps the raw frames.
    assert symbolized(report["text"]) in stderr
    # The program's own function, in the allocation stack and at the fault.
    assert "main" in functions(report["stacks"]["allocated_native"]), report
    assert functions([report["faulting_instruction"]])[-1] in ("trigger", "main")


def _run_native(tmp_path, source: str, expected: int) -> dict:
    """``guardalloc run --native 1 --log-path`` on a Python program that dies
    of signal `expected`; its one JSON report."""
    script = tmp_path / "prog.py"
    script.write_text(source)
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "guardalloc", "run", "--native", "1",
                             "--log-path", str(reports / "report.%p.json"), str(script)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -expected, stderr
    report = _one_report(reports)
    assert report["pid"] != proc.pid   # run --native runs the program as its child
    return report


def test_run_native_writes_a_json_report(tmp_path):
    report = _run_native(tmp_path, MALLOC_OVERFLOW, signal.SIGSEGV)
    assert report["kind"] == "heap-buffer-overflow"
    assert report["stacks"]["allocated_native"]
    assert "libc.so" in report["faulting_instruction"]


def test_native_stacks_off(build):
    program = build(OVERFLOW)
    result = run_preloaded([program], "sample_rate=1:alignment=1:native_stacks=0")
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "allocated at: (not recorded: native_stacks=0 in GUARDALLOC_OPTIONS)" in result.stderr
    assert re.search(r"  WRITE of size 1 by thread \d+ .*:\n    #0 0x", result.stderr)   # from the signal context, not a recorded stack


def test_native_stacks_option_string():
    from guardalloc import native

    assert native.options_string(native_stacks=False) == "native_stacks=0"
    with pytest.raises(TypeError, match="native_stacks"):
        native.options_string(native_stacks=1)


def test_faulting_instruction_under_the_library_with_faulthandler(tmp_path):
    """-X faulthandler installs faulthandler after the library's handler (its
    constructor runs first): faulthandler dumps the Python traceback and
    raise()s; the report still names the faulting instruction."""
    script = tmp_path / "prog.py"
    script.write_text(MALLOC_OVERFLOW)
    lines = []
    for extra in ((), ("-X", "faulthandler")):
        proc = run_preloaded(python_argv(*extra, str(script)), "sample_rate=1")
        assert proc.returncode == -signal.SIGSEGV, proc.stderr
        # The size too: read from the fault's own signal frame when faulthandler passed it on.
        match = re.search(r"  WRITE( of size \d+(?: \([^)]*\))?) by thread \d+ .*:\n    #0 0x[0-9a-f]+ (.*)\n", proc.stderr)
        assert match, proc.stderr
        lines.append(match.group(1, 2))
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert "raised again" not in proc.stderr   # the plumbing stays out of the text (JSON: si_code)
    assert lines[0] == lines[1] and "libc.so" in lines[0][1], lines


# -- the reports of a free (double, invalid, damaged slack): kind, slot, stacks, pid --

# corpus program -> (kind, offset, size) of its report
BAD_FREES = {
    "double_free.c": ("double-free", 0, 24),
    "invalid_free.c": ("invalid-free", 8, 24),
    "slack_overflow.c": ("heap-buffer-overflow", 13, 13),
}
# An invalid free inside the heap's reservation but past every arena.
OUTSIDE_EVERY_ARENA = r"""
#include <stdlib.h>
__attribute__((noinline)) void trigger(char *p) { free(p + (64 << 20)); }
int main(void) { char *p = malloc(24); trigger(p); return 0; }
"""


@pytest.mark.parametrize("name", sorted(BAD_FREES))
def test_a_bad_free_writes_a_json_report(build, tmp_path, name):
    kind, offset, size = BAD_FREES[name]
    program = build(os.path.join(CORPUS, name))
    pid, status, stderr = _exec(["--sample-rate", "1", "--log-path", str(tmp_path / "report.%p.json"),
                                 "--", program])
    assert status == -signal.SIGABRT, stderr
    report = _one_report(tmp_path)   # validated against docs/report-schema.json
    assert report["schema_version"] == 6
    assert (report["kind"], report["access"], report["offset"], report["size"]) == (kind, "free", offset, size)
    assert report["slot"] is not None and report["arena"]["slots"] >= 1
    assert int(report["address"], 16) - int(report["buffer"], 16) == offset
    assert report["tid"] == report["pid"] != pid   # the program's one thread, exec's child
    assert (report["signal"], report["si_code"], report["on_fault"]) == (None, None, "abort")
    assert report["faulting_instruction"] is None
    assert symbolized(report["text"]) in stderr
    stacks = report["stacks"]
    assert "main" in functions(stacks["allocated_native"])
    if name == "slack_overflow.c":
        assert report["damaged"] == 3
        assert stacks["freed_native"] == stacks["this_free_native"]   # this free freed it
        assert "main" in functions(stacks["this_free_native"])
    else:
        assert "damaged" not in report
        assert "trigger" in functions(stacks["this_free_native"])
    if name == "double_free.c":
        assert "main" in functions(stacks["freed_native"])   # the first free, in main()
        assert "trigger" not in functions(stacks["freed_native"])
        assert "first freed at:" in report["text"]
    elif name == "invalid_free.c":
        assert stacks["freed_native"] is None   # the block is live


def test_an_invalid_free_outside_every_arena(build, tmp_path):
    source = tmp_path / "outside.c"
    source.write_text(OUTSIDE_EVERY_ARENA)
    program = build(str(source))
    reports = tmp_path / "reports"
    reports.mkdir()
    pid, status, stderr = _exec(["--sample-rate", "1", "--log-path", str(reports / "report.%p.json"),
                                 "--", program])
    assert status == -signal.SIGABRT, stderr
    assert "inside the guarded heap but in no slot" in stderr
    report = _one_report(reports)
    assert (report["kind"], report["access"], report["arena"], report["slot"]) == ("invalid-free", "free", None, None)
    assert "trigger" in functions(report["stacks"]["this_free_native"])
    assert report["stacks"]["allocated_native"] is None


def test_a_bad_free_with_on_fault_continue(build, tmp_path):
    """on_fault=continue: the report says so, and the program goes on."""
    program = build(os.path.join(CORPUS, "double_free.c"))
    pid, status, stderr = _exec(["--sample-rate", "1", "--on-fault", "continue",
                                 "--log-path", str(tmp_path / "report.%p.json"), "--", program])
    assert status == 0, stderr
    report = _one_report(tmp_path)
    assert (report["kind"], report["on_fault"]) == ("double-free", "continue")


def test_a_bad_free_without_native_stacks(build, tmp_path):
    program = build(os.path.join(CORPUS, "double_free.c"))
    pid, status, stderr = _exec(["--sample-rate", "1", "--no-native-stacks",
                                 "--log-path", str(tmp_path / "report.%p.json"), "--", program])
    assert status == -signal.SIGABRT, stderr
    stacks = _one_report(tmp_path)["stacks"]
    assert stacks["allocated_native"] is stacks["freed_native"] is stacks["this_free_native"] is None
    assert "this free: (no stack recorded)" in stderr


def test_run_native_double_free_through_ctypes(tmp_path):
    report = _run_native(tmp_path, "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.malloc.restype = ctypes.c_void_p\n"
                         "libc.free.argtypes = [ctypes.c_void_p]\np = libc.malloc(100)\nlibc.free(p)\nlibc.free(p)\n",
                         signal.SIGABRT)
    assert (report["kind"], report["size"], report["offset"]) == ("double-free", 100, 0)
    assert report["stacks"]["freed_native"] and report["stacks"]["this_free_native"]

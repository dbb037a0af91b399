"""The one report format (issue 21): every report opens with ==PID==, names
the thread, carries the stack of the access, ends with a SUMMARY line; each
report is written whole (reports of processes sharing one log_path never
interleave); a log_path that cannot be written is said once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import run_child

OVERFLOW_IN_A_NAMED_THREAD = """
import ctypes, sys, threading, guardalloc
guardalloc.enable_reports()
libc = ctypes.CDLL(None)
def run():
    libc.prctl(15, b"worker-7", 0, 0, 0)   # PR_SET_NAME
    arena = guardalloc.Arena(slot_size=4096, slots=4)
    buf = arena.alloc(4096)
    ctypes.memset(buf.address + 4096, 0, 1)
t = threading.Thread(target=run)
t.start()
t.join()
"""


def test_fault_report_opens_with_the_pid_names_the_thread_and_ends_with_a_summary():
    proc = run_child(OVERFLOW_IN_A_NAMED_THREAD)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("==", "  ", "SUMMARY"))]
    assert re.match(rf"=={proc.args and ''}\d+== guardalloc: heap-buffer-overflow WRITE at 0x", lines[0])
    access = next(i for i, line in enumerate(lines) if " by thread " in line)
    # The size of libc's store: which one depends on the CPU (a masked vector store says its full width).
    title = r"  WRITE of size \d+(?: \([^)]*\))? by thread \d+ \(worker-7\)"
    assert re.match(title + ":$", lines[access]), lines
    # The access's Python frames, then its native ones under "(native)": each
    # numbered from #0, innermost (the faulting instruction) first.
    def frames_after(i):
        frames = []
        for line in lines[i + 1:]:
            if not line.startswith("    #"):
                break
            frames.append(line)
        return frames
    python = frames_after(access)
    assert python and all(f.startswith(f"    #{i} in ") for i, f in enumerate(python))
    assert re.match(r"    #0 in run <string>:\d+", python[0]), python
    native = access + 1 + len(python)
    assert re.match(title + r" \(native\):$", lines[native]), lines
    frames = frames_after(native)
    assert frames and all(f.startswith(f"    #{i} 0x") for i, f in enumerate(frames))
    # No native frame is the program's (libc, libffi): the summary names its Python line.
    assert re.match(r"SUMMARY: guardalloc: heap-buffer-overflow run <string>:\d+$", lines[-1]), lines


def test_bad_free_and_slack_reports_open_with_the_pid(tmp_path):
    """The PyMem hooks' double free and damaged slack: ==PID== first,
    SUMMARY last."""
    proc = run_child("""
        import ctypes, gc
        from guardalloc import pymem
        pymem.install(sample_rate=1, domains=("raw",), native_stacks=True)
        api = ctypes.pythonapi
        api.PyMem_RawMalloc.restype = ctypes.c_void_p
        api.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
        api.PyMem_RawFree.argtypes = [ctypes.c_void_p]
        p = api.PyMem_RawMalloc(13)
        ctypes.memset(p + 13, 0x41, 2)   # into the slack
        api.PyMem_RawFree(p)
    """)
    reports = re.split(r"(?m)^(?===\d+== )", proc.stderr)
    slack = [r for r in reports if "heap corruption" in r]
    assert slack, proc.stderr
    assert re.match(r"==\d+== guardalloc: heap corruption: 2 slack byte\(s\)", slack[0])
    assert re.search(r"\n  in thread \d+ \(\S+\)\n", slack[0])
    assert re.search(r"\nSUMMARY: guardalloc: heap-buffer-overflow", slack[0])


MANY_REPORTS = """
import ctypes, sys, guardalloc
from guardalloc import faults
guardalloc.enable_reports()
faults.set_report_path(sys.argv[1])
faults.set_report_test("t.py::test_" + "x" * 1000 + sys.argv[2], "call")   # a long report
arena = guardalloc.Arena(slot_size=4096, slots=64, on_fault="continue")
for i in range(30):
    buf = arena.alloc(4096)
    ctypes.memset(buf.address + 4096, 0, 1)
"""


def test_json_reports_of_processes_sharing_a_log_path_never_interleave(tmp_path):
    """Six processes append 30 reports each (over 2 KiB each) to one file,
    no %p: every line is one whole report."""
    log = tmp_path / "shared.json"
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    from conftest import PACKAGE_PARENT, TESTS_DIR
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT, TESTS_DIR])
    procs = [subprocess.Popen([sys.executable, "-c", MANY_REPORTS, str(log), str(i)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(6)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 6 * 30
    reports = [json.loads(line) for line in lines]
    assert all(len(line) > 2048 for line in lines)
    assert {r["test"]["nodeid"][-1] for r in reports} == {str(i) for i in range(6)}


def test_a_log_path_whose_directory_is_missing_is_said_at_once(tmp_path):
    """exec (the malloc library) says it on stderr, set_report_path() with a
    RuntimeWarning; a writable path says nothing."""
    env = dict(os.environ)
    env.pop("GUARDALLOC_OPTIONS", None)
    missing = tmp_path / "missing" / "r.%p.json"
    proc = subprocess.run([sys.executable, "-m", "guardalloc", "exec", "--sample-rate", "1", "--log-path",
                           str(missing), "--", "/bin/true"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0
    assert proc.stderr.count("its directory does not exist") == 1, proc.stderr
    proc = run_child(f"""
        import warnings
        from guardalloc import faults
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            faults.set_report_path({str(tmp_path / "missing" / "r.json")!r})
            faults.set_report_path({str(tmp_path / "r.json")!r})
        print([str(w.message) for w in seen])
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("its directory does not exist") == 1, proc.stdout

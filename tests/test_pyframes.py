"""Python frames in reports: the walker the package registers with the core
(pyframes.pyx, pyframes_walk.h), the Python line of a bad access, the
frames the malloc library records per block in a Python process, and the
merged stacks of the symbolizer (symbolize/merge.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PACKAGE_PARENT, run_child
from guardalloc import pyframes
from guardalloc.symbolize.frames import Location, RawFrame, Symbolized
from guardalloc.symbolize.merge import Omitted, PyFrame, merge, merged_json, merged_lines
from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import symbolize_text

HAS_SYMBOLIZER = Symbolizer().backend is not None


# -- the walker ------------------------------------------------------------------

def _inner(checked):
    return pyframes.stack(checked)


def _outer(checked):
    return _inner(checked)


@pytest.mark.parametrize("checked", [False, True])
def test_stack_is_innermost_first_with_lines(checked):
    frames = _outer(checked)
    here = os.path.abspath(__file__)
    assert [f[:2] for f in frames[:3]] == [("_inner", here), ("_outer", here),
                                          ("test_stack_is_innermost_first_with_lines", here)]
    assert frames[0][2] == _inner.__code__.co_firstlineno + 1
    assert frames[1][2] == _outer.__code__.co_firstlineno + 1
    assert not frames[0][3] and not frames[1][3]


def test_checked_and_plain_reads_agree():
    assert _outer(True) == _outer(False)


def test_a_python_function_called_from_c_is_an_entry_frame():
    seen = []

    def key(x):
        seen.append(pyframes.stack())
        return x

    def sort():
        return sorted([2, 1], key=key)      # C (sorted) calls key
    sort()
    frames = seen[0]
    assert frames[0][0].endswith("key") and frames[0][3] is True
    assert frames[1][0].endswith("sort") and frames[1][3] is False   # called by Python


def test_qualified_names_and_a_method():
    class Shape:
        def area(self):
            return pyframes.stack()
    frames = Shape().area()
    assert frames[0][0] == "test_qualified_names_and_a_method.<locals>.Shape.area"


def test_stack_is_cut_at_sixteen_frames():
    def deep(n):
        return pyframes.stack() if n == 0 else deep(n - 1)
    frames = deep(40)
    assert len(frames) == 16 and all(f[0].endswith("deep") for f in frames)


def test_stop_at_refuses_what_is_not_code():
    with pytest.raises(TypeError, match="code objects"):
        pyframes._stop_at([len])


# -- merging ---------------------------------------------------------------------

def _native(*functions):
    return [Symbolized(RawFrame(0x1000 + i), (Location(function, "f.c", 1),)) for i, function in enumerate(functions)]


def test_merge_puts_each_python_run_at_its_eval_frame():
    native = _native("memset", "ffi_call", "_PyEval_EvalFrameDefault", "closure", "qsort", "ffi_call",
                     "_PyEval_EvalFrameDefault", "PyEval_EvalCode", "main")
    python = [PyFrame("cb", "a.py", 3, True), PyFrame("sort_it", "a.py", 9), PyFrame("helper", "a.py", 12),
              PyFrame("<module>", "a.py", 20, True)]
    merged = merge(native, python)
    names = [f.function if isinstance(f, PyFrame) else f.locations[0].function for f in merged]
    assert names == ["memset", "ffi_call", "cb", "closure", "qsort", "ffi_call", "sort_it", "helper", "<module>",
                     "PyEval_EvalCode", "main"]
    lines = merged_lines(merged)
    assert lines[2] == "    #2 in cb a.py:3" and lines[8] == "    #8 in <module> a.py:20"
    assert [int(re.match(r"\s*#(\d+)", line).group(1)) for line in lines] == list(range(len(lines)))


def test_merge_appends_python_frames_a_short_native_stack_did_not_reach():
    merged = merge(_native("free", "_PyEval_EvalFrameDefault"),
                   [PyFrame("release", "a.py", 5), PyFrame("<module>", "a.py", 9, True), PyFrame("outer", "b.py", 2)])
    assert [getattr(f, "function", None) for f in merged[1:]] == ["release", "<module>", "outer"]


def test_merge_ends_at_the_program_when_the_python_frames_end_at_the_launcher():
    """The outermost Python frame marked launcher_below: the native frames
    outside the interpreter frame that runs it are the launcher's, counted
    in one line (inlined functions: one each), not printed."""
    native = _native("free", "_PyEval_EvalFrameDefault", "_PyEval_Vector", "builtin_exec",
                     "_PyEval_EvalFrameDefault", "pymain_run_module", "_start")
    native[2] = Symbolized(native[2].raw, (Location("_PyEval_EvalFrame", "f.c", 1),) + native[2].locations)
    python = [PyFrame("release", "a.py", 5), PyFrame("<module>", "a.py", 9, True, launcher=True)]
    merged = merge(native, python)
    assert merged[-1] == Omitted(6)
    lines = merged_lines(merged)
    assert lines[1:] == ["    #1 in release a.py:5", "    #2 in <module> a.py:9", "    ... 6 launcher frames not shown"]
    assert merged_json(merged)[-1] == {"omitted": 6, "launcher": True}
    # Nothing outside: no line.
    assert not any(isinstance(f, Omitted) for f in merge(native[:2], python))
    # Without the mark (plain `python script.py`, an embedding host) every native frame stays.
    kept = merge(native, [PyFrame("release", "a.py", 5), PyFrame("<module>", "a.py", 9, True)])
    assert not any(isinstance(f, Omitted) for f in kept) and len(kept) == len(native) + 1


def test_the_launcher_mark_reads_back_from_text():
    frame = PyFrame.parse("    #2 in <module> /tmp/a.py:9 (called from C) (launcher below)")
    assert frame == PyFrame("<module>", "/tmp/a.py", 9, True, True)
    assert frame.text(2) == "    #2 in <module> /tmp/a.py:9 (called from C) (launcher below)"
    assert PyFrame.from_json({"function": "f", "file": "a.py", "line": 1, "entry": True,
                              "launcher_below": True}) == PyFrame("f", "a.py", 1, True, True)


def test_no_merge_without_an_interpreter_frame():
    assert merge(_native("free", "ffi_call"), [PyFrame("f", "a.py", 1)]) is None
    assert merge(_native("_PyEval_EvalFrameDefault"), []) is None


def test_text_without_a_symbolizer_answer_keeps_both_blocks(tmp_path):
    """A report whose native frames cannot be symbolized keeps its Python
    frames and its native ones under their own titles, unchanged."""
    text = textwrap.dedent("""\
        ==1== guardalloc: double-free of 0x10
          this free:
            #0 in release /tmp/a.py:5
            #1 in <module> /tmp/a.py:9 (called from C)
          this free (native):
            #0 0x7f0000001000 (/nonexistent/libx.so+0x1000)
        SUMMARY: guardalloc: double-free (/nonexistent/libx.so+0x1000)""")
    out = symbolize_text(text, Symbolizer(cache_dir=tmp_path))
    assert "    #0 in release /tmp/a.py:5\n    #1 in <module> /tmp/a.py:9 (called from C)\n" \
           "  this free (native):\n    #0 0x7f0000001000" in out
    assert out.endswith("SUMMARY: guardalloc: double-free release /tmp/a.py:5")


# -- reports of a Python process -------------------------------------------------

OVERFLOW = """
import ctypes, sys, guardalloc
arena = guardalloc.Arena(4096, 4, alignment=1)
buf = arena.alloc(16)

def poke(b, past):
    ctypes.memset(b.address + 16 - 1 + past, 1, 1)

def main():
    poke(buf, int(sys.argv[1]))

main()
"""


def _block(text: str, title: str) -> list[str]:
    """The frame lines under the first line that is title."""
    lines = text.splitlines()
    start = lines.index(title)
    out = []
    for line in lines[start + 1:]:
        if not line.startswith(("    #", "    ... ")):
            break
        out.append(line)
    return out


def _python_lines(text: str, title: str) -> list[str]:
    """The Python frame lines under the first title line that starts with title."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title) and line.endswith(":"))
    out = []
    for line in lines[start + 1:]:
        if PyFrame.parse(line) is None:
            break
        out.append(line.strip())
    return out


def test_arena_overflow_names_the_python_line_of_the_access():
    result = run_child(OVERFLOW, "1")
    assert result.returncode == -signal.SIGSEGV
    frames = _python_lines(result.stderr, "  WRITE ")
    assert frames[:3] == ["#0 in poke <string>:7", "#1 in main <string>:10",
                          "#2 in <module> <string>:12 (called from C)"]   # no launcher: no mark
    assert re.search(r"  WRITE [^\n]*by thread \d+ \(\S+\) \(native\):\n    #0 0x", result.stderr)


def test_arena_overflow_twin_runs_silently():
    result = run_child(OVERFLOW, "0")
    assert (result.returncode, result.stderr) == (0, "")


def _launch(tmp_path, *args, code=OVERFLOW, env=None):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(code))
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, child_env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "guardalloc", "run", *args[:-1], str(script), args[-1]],
                          capture_output=True, text=True, env=child_env, timeout=120, cwd=tmp_path), str(script)


def test_run_names_the_python_line_of_the_access_and_dies_of_the_signal(tmp_path):
    result, script = _launch(tmp_path, "--pymem", "0", "1")
    assert result.returncode == -signal.SIGSEGV
    text = result.stderr
    assert f"in poke {script}:7" in text and f"in main {script}:10" in text
    assert "_run_program" not in text and "runpy" not in text   # the launcher's frames are left out
    if HAS_SYMBOLIZER:   # the launcher symbolized the child's report
        assert text.rstrip().endswith(f"SUMMARY: guardalloc: heap-buffer-overflow poke {script}:7")


def test_run_without_a_symbolizer_runs_the_program_in_process_with_raw_reports(tmp_path):
    result, script = _launch(tmp_path, "--pymem", "0", "1", env={"PATH": str(tmp_path / "nothing")})
    assert result.returncode == -signal.SIGSEGV
    assert f"    #0 in poke {script}:7\n" in result.stderr
    assert re.search(r"\(native\):\n    #0 0x[0-9a-f]+ \(\S+\+0x", result.stderr)   # raw native frames
    # The handler's own summary: no native frame is the program's, so its Python line.
    assert result.stderr.rstrip().endswith(f"SUMMARY: guardalloc: heap-buffer-overflow poke {script}:7")


def test_run_twin_runs_silently(tmp_path):
    result, _ = _launch(tmp_path, "--pymem", "0", "0")
    assert (result.returncode, result.stderr) == (0, "")


def test_run_keeps_the_exit_status(tmp_path):
    result, _ = _launch(tmp_path, "3", code="import sys\nsys.exit(int(sys.argv[1]))\n")
    assert result.returncode == 3


PLUGIN_TEST = """
import ctypes, guardalloc

def write_past(buf):
    ctypes.memset(buf.address + len(buf), 0, 1)

def test_overflow():
    arena = guardalloc.Arena(4096, 2, alignment=1)
    write_past(arena.alloc(8))

def test_fine():
    arena = guardalloc.Arena(4096, 2, alignment=1)
    arena.alloc(8)[7] = 1
"""


def test_pytest_plugin_report_names_the_python_line(pytester):
    pytester.makepyfile(test_pyline=PLUGIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str() + result.stderr.str()
    assert re.search(r"#0 in write_past \S*test_pyline.py:4\n", out), out
    assert re.search(r"#1 in test_overflow \S*test_pyline.py:8( \(called from C\))?\n", out), out


# -- the malloc library in a Python process ---------------------------------------

DOUBLE_FREE = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def allocate():
    return libc.malloc(64)

def release(p):
    libc.free(p)

def main(twice):
    p = allocate()
    release(p)
    if twice:
        release(p)

main(sys.argv[1] == "1")
"""


def test_ctypes_double_free_under_run_native_names_both_frees_and_the_allocation(tmp_path):
    result, script = _launch(tmp_path, "--native", "1", "1", code=DOUBLE_FREE)
    assert result.returncode == -signal.SIGABRT, result.stderr
    text = result.stderr
    assert "== guardalloc: double-free of 0x" in text
    events = {}
    for title in ("  this free:", "  allocated at:", "  first freed at:"):
        events[title] = [m.group(1) for line in _block(text, title)
                         for m in [re.match(r"^    #\d+ in (\S+ \S+)", line)] if m]
    assert events["  this free:"][:3] == [f"release {script}:11", f"main {script}:17", f"<module> {script}:19"]
    assert events["  allocated at:"][:2] == [f"allocate {script}:8", f"main {script}:14"]
    assert events["  first freed at:"][:2] == [f"release {script}:11", f"main {script}:15"]
    if HAS_SYMBOLIZER:   # one merged stack per event: the interpreter's frame is replaced
        # The interpreter frame that ran them is replaced (the launcher's own, further out, stay).
        assert "this free (native)" not in text
        for title in ("  this free:", "  allocated at:", "  first freed at:"):
            lines = _block(text, title)
            first_python = next(i for i, line in enumerate(lines) if re.match(r"    #\d+ in ", line))
            assert not any("_PyEval_EvalFrameDefault" in line for line in lines[:first_python]), lines
            # The merged stack ends at the program: the launcher's interpreter frames are counted, not shown.
            assert re.fullmatch(r"    #\d+ in <module> \S+:19", lines[-2]), lines
            assert re.fullmatch(r"    \.\.\. \d+ launcher frames not shown", lines[-1]), lines
        assert text.rstrip().endswith(f"SUMMARY: guardalloc: double-free release {script}:11")
    assert "pymain_run_module" not in text and "__libc_start_main" not in text
    if not HAS_SYMBOLIZER:   # raw: the mark says where the program's frames end
        assert f"<module> {script}:19 (called from C) (launcher below)" in text


def test_ctypes_double_free_twin_runs_silently(tmp_path):
    result, _ = _launch(tmp_path, "--native", "1", "0", code=DOUBLE_FREE)
    assert (result.returncode, result.stderr) == (0, "")


def test_json_report_keeps_raw_python_frames(tmp_path):
    log = tmp_path / "r.%p.json"
    result, script = _launch(tmp_path, "--native", "1", "--log-path", str(log), "1", code=DOUBLE_FREE)
    assert result.returncode == -signal.SIGABRT
    [path] = list(tmp_path.glob("r.*.json"))
    report = json.loads(path.read_text().splitlines()[0])
    assert report["schema_version"] == 6
    stacks = report["stacks"]
    assert stacks["this_free_python"][0] == {"function": "release", "file": script, "line": 11, "entry": False,
                                             "launcher_below": False}
    assert stacks["allocated_python"][0]["function"] == "allocate"
    assert stacks["freed_python"][1] == {"function": "main", "file": script, "line": 15, "entry": False,
                                         "launcher_below": False}
    assert stacks["this_free_python"][2]["entry"] is True    # <module>, run by C
    assert stacks["this_free_python"][2]["launcher_below"] is True and len(stacks["this_free_python"]) == 3
    if HAS_SYMBOLIZER:   # symbolized: one merged stack per event, the raw stacks kept
        from guardalloc.symbolize.reports import symbolize_report

        done = symbolize_report(report)
        assert done["stacks"] == report["stacks"]
        merged = done["symbolized"]["merged"]["this_free"]
        python = [(f["function"], f["line"]) for f in merged if f.get("python")]
        assert python[:3] == [("release", 11), ("main", 17), ("<module>", 19)]
        first_python = next(i for i, f in enumerate(merged) if f.get("python"))
        assert not any(loc["function"] == "_PyEval_EvalFrameDefault"
                       for f in merged[:first_python] for loc in f["locations"])
        assert merged[-1]["launcher"] is True and merged[-1]["omitted"] > 0   # the launcher's frames
        assert merged[-2] == {"python": True, "function": "<module>", "file": script, "line": 19}
        assert len(done["symbolized"]["stacks"]["this_free_native"]) > len(merged) - 3   # kept in the raw stacks
        assert done["symbolized"]["location"] == f"release {script}:11"


NUMPY_OVERFLOW = """
import sys
import numpy as np
import guardalloc.numpy

def load():
    return np.zeros(1000)

def scale(a):
    view = np.lib.stride_tricks.as_strided(a, shape=(1100,))
    view[1050 if sys.argv[1] == "1" else 10] = 2.0

with guardalloc.numpy.guarded(tracebacks=True):
    a = load()
scale(a)
"""


@pytest.mark.skipif(not HAS_SYMBOLIZER, reason="no llvm-symbolizer/addr2line: nothing merges")
def test_plain_run_merged_allocation_stack_ends_at_the_program(tmp_path):
    """Plain `run` (a symbolized child): the numpy allocation's native stack
    (recorded by the handler) merged with its Python frames ends at
    <module>, the launcher's interpreter frames counted."""
    pytest.importorskip("numpy")
    result, script = _launch(tmp_path, "1", code=NUMPY_OVERFLOW)
    assert result.returncode == -signal.SIGSEGV, result.stderr
    lines = _block(result.stderr, "  allocated at:")
    assert re.fullmatch(rf"    #\d+ in load {re.escape(script)}:7", lines[-3]), lines
    assert re.fullmatch(rf"    #\d+ in <module> {re.escape(script)}:14", lines[-2]), lines
    assert re.fullmatch(r"    \.\.\. \d+ launcher frames not shown", lines[-1]), lines
    assert "_PyEval_EvalFrameDefault" not in result.stderr and "Py_RunMain" not in result.stderr


def test_plain_run_numpy_twin_runs_silently(tmp_path):
    pytest.importorskip("numpy")
    result, _ = _launch(tmp_path, "0", code=NUMPY_OVERFLOW)
    assert (result.returncode, result.stderr) == (0, "")


# The same program through CPython's PyMem API (the hooks of `run --pymem`).
PYMEM_DOUBLE_FREE = (DOUBLE_FREE.replace("ctypes.CDLL(None)", "ctypes.pythonapi")
                     .replace("libc.malloc", "libc.PyMem_Malloc").replace("libc.free", "libc.PyMem_Free"))


def _python_frames(text: str, title: str) -> list[str]:
    """"FUNCTION FILE:LINE" of the Python frames under title (merged or not)."""
    return [m.group(1) for line in _block(text, title) for m in [re.match(r"^    #\d+ in (\S+ \S+)", line)] if m]


def test_pymem_hooks_record_the_python_frames_of_each_allocation_and_free(tmp_path):
    """The PyMem hooks keep each block's Python frames (inside CPython's
    allocation calls): a double free names the allocation's and the first
    free's lines, not only this free's."""
    result, script = _launch(tmp_path, "--pymem", "1", "1", code=PYMEM_DOUBLE_FREE)
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert _python_frames(result.stderr, "  this free:")[:2] == [f"release {script}:11", f"main {script}:17"]
    assert _python_frames(result.stderr, "  allocated at:")[:2] == [f"allocate {script}:8", f"main {script}:14"]
    assert _python_frames(result.stderr, "  first freed at:")[:2] == [f"release {script}:11", f"main {script}:15"]


def test_pymem_double_free_twin_runs_silently(tmp_path):
    result, _ = _launch(tmp_path, "--pymem", "1", "0", code=PYMEM_DOUBLE_FREE)
    assert (result.returncode, result.stderr) == (0, "")


def test_numpy_handler_records_the_python_frames_of_an_allocation(tmp_path):
    """`run --numpy` (the handler's C path, no tracebacks=True): an
    overflow's report names the Python line that allocated the array."""
    pytest.importorskip("numpy")
    code = NUMPY_OVERFLOW.replace("with guardalloc.numpy.guarded(tracebacks=True):\n    a = load()", "a = load()")
    result, script = _launch(tmp_path, "--numpy", "1", code=code)
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert _python_frames(result.stderr, "  allocated at:")[:2] == [f"load {script}:7", f"<module> {script}:13"]


def test_numpy_handler_twin_runs_silently(tmp_path):
    pytest.importorskip("numpy")
    code = NUMPY_OVERFLOW.replace("with guardalloc.numpy.guarded(tracebacks=True):\n    a = load()", "a = load()")
    result, _ = _launch(tmp_path, "--numpy", "0", code=code)
    assert (result.returncode, result.stderr) == (0, "")


CALLBACK = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
block = libc.malloc(3000)
libc.free(block)

def compare(a, b):
    if sys.argv[1] == "1":
        libc.free(block)           # a double free, from Python called by C
    return a[0] - b[0]

def sort_it():
    values = (ctypes.c_int * 2)(2, 1)
    libc.qsort(values, 2, ctypes.sizeof(ctypes.c_int), CMP(compare))

sort_it()
"""


def test_merged_stack_of_a_python_callback_called_by_c(tmp_path):
    """Python -> C (qsort) -> Python (compare): the callback's frame takes
    the place of the innermost interpreter frame, and sort_it comes after
    every native frame of the callback's run (qsort's, when the stack
    reaches it)."""
    result, script = _launch(tmp_path, "--native", "1", "1", code=CALLBACK)
    assert result.returncode == -signal.SIGABRT, result.stderr
    text = result.stderr
    lines = _block(text, "  this free:")
    compare = next(i for i, line in enumerate(lines) if f"in compare {script}:12" in line)
    sort_it = next(i for i, line in enumerate(lines) if f"in sort_it {script}:17" in line)
    assert compare < sort_it
    if HAS_SYMBOLIZER:
        assert not any("_PyEval_EvalFrameDefault" in line for line in lines[:compare])
        qsort = [i for i, line in enumerate(lines) if " in qsort" in line or "msort" in line]
        assert all(compare < i < sort_it for i in qsort)
    else:
        assert "(called from C)" in lines[compare]


def test_callback_twin_runs_silently(tmp_path):
    result, _ = _launch(tmp_path, "--native", "1", "0", code=CALLBACK)
    assert (result.returncode, result.stderr) == (0, "")


def test_reports_of_a_python_process_group_by_their_python_frames():
    """The native frames of a ctypes free are libffi's and the interpreter's
    for every bug; the Python frames tell the bugs apart."""
    from guardalloc.symbolize.group import signature

    def report(function, line):
        native = [{"frame": "0x7f01 (/lib/libffi.so.8+0x6f79)", "locations": [], "problem": None}]
        return {"kind": "double-free", "access": "free",
                "stacks": {"this_free_native": ["0x7f01 (/lib/libffi.so.8+0x6f79)"],
                           "this_free_python": [{"function": function, "file": "/src/app.py", "line": line,
                                                 "entry": False}]},
                "symbolized": {"stacks": {"this_free_native": native}}}
    first, again, other = report("release", 10), report("release", 10), report("drop", 20)
    assert signature(first) == signature(again) == ("double-free", "free", "this_free_native", (("release", "app.py"),))
    assert signature(other) != signature(first)
    new_traceback = {"kind": "use-after-free", "access": "READ",
                     "stacks": {"allocated": "    #0 in make /src/app.py:3\n    #1 in <module> /src/app.py:9\n"}}
    assert signature(new_traceback) == ("use-after-free", "access", "allocated",
                                        (("make", "app.py"), ("<module>", "app.py")))


GONE = """
import ctypes, gc, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
made = {}
exec(compile("def make():\\n    return libc.malloc(3000)\\n", "<gone>", "exec"), {"libc": libc}, made)
p = made["make"]()
del made                      # the function and its code object are freed
gc.collect()
junk = [compile(f"x = {i}", "<junk>", "exec") for i in range(200)]   # their memory may be reused
libc.free(p)
if sys.argv[1] == "1":
    libc.free(p)
"""


def test_a_freed_code_object_prints_a_placeholder_not_a_fault(tmp_path):
    result, script = _launch(tmp_path, "--native", "1", "1", code=GONE)
    assert result.returncode == -signal.SIGABRT, result.stderr
    allocated = [line.strip() for line in _block(result.stderr, "  allocated at:") if " in " in line
                 and " 0x" not in line.split(" in ")[0]]
    first = next(line for line in allocated if re.match(r"#\d+ in ", line))
    # Freed, or its memory now holds another code object (which is named): never a crash.
    assert re.fullmatch(r"#\d+ in \?\? \(code object 0x[0-9a-f]+ freed\)|#\d+ in <module> <junk>:1", first), first
    assert any(f"in <module> {script}:8" in line for line in allocated), allocated


def test_freed_code_twin_runs_silently(tmp_path):
    result, _ = _launch(tmp_path, "--native", "1", "0", code=GONE)
    assert (result.returncode, result.stderr) == (0, "")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.booleans()), min_size=1, max_size=12))
def test_the_location_table_decoder_agrees_with_the_interpreter(lines):
    """Every line the walker decodes from a code object's location table
    (short, one-line, no-column and long entries; backward deltas in loops)
    is the one the interpreter gives the same frame."""
    body = ["def probe(stack, sys):", "    seen = []"]
    for gap, in_loop in lines:
        body.extend([""] * gap)
        if in_loop:
            body.extend(["    for _ in range(2):", "        seen.append((stack()[0][2], sys._getframe().f_lineno))"])
        else:
            body.append("    seen.append((stack(True)[0][2], sys._getframe().f_lineno))")
    body.append("    return seen")
    namespace: dict = {}
    exec(compile("\n".join(body), "<probe>", "exec"), namespace)
    seen = namespace["probe"](pyframes.stack, sys)
    assert seen and all(ours == theirs for ours, theirs in seen), seen


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_a_hostile_location_table_gives_a_line_or_none(table):
    """Any bytes as a code object's location table: the decoder reads
    within them and answers a line or nothing (None), never faults."""
    def victim():
        return pyframes.stack(True)
    hostile = types.FunctionType(victim.__code__.replace(co_linetable=table), {"pyframes": pyframes})
    function, file, line, _ = hostile()[0]
    assert function.endswith("victim") and file == __file__
    assert line is None or isinstance(line, int)

"""Native allocation and free stacks outside the malloc library: Pool arenas
with ``native_stacks=True`` (the numpy handler, the PyMem hooks), numpy's
``tracebacks=True``, and the faulting instruction when faulthandler sits
above guardalloc's handler. Every fault runs in a child process whose
report text (and JSON report) is checked."""

from __future__ import annotations

import json
import re
import signal

import pytest

import guardalloc
from guardalloc import pymem

from test_reports_json import reports_in, validate

FRAME = r"    #\d+ 0x[0-9a-f]+ \((\S+)\+0x[0-9a-f]+\)"


def frames_under(text: str, title: str) -> list[str]:
    """The native '#N 0x...' lines of an event: right under its title line
    ("  allocated at:"), or under "  allocated at (native):" when the event
    also has Python frames, which come first under the plain title."""
    native = title[:-1] + " (native):"
    lines = text.split((native if native + "\n" in text else title) + "\n", 1)[1].splitlines()
    out = []
    for line in lines:
        if not re.match(FRAME, line):
            break
        out.append(line)
    return out


# ---------------------------------------------------------------------------
# Pool(native_stacks=...)

def test_pool_native_stacks_option():
    with guardalloc.Pool(max_bytes=1 << 20, native_stacks=False) as pool:
        assert pool.native_stacks is False
    with guardalloc.Pool(max_bytes=1 << 20) as pool:   # on by default
        assert pool.native_stacks is True
        buf = pool.alloc(100)        # Python callers: no native stack, and no crash
        buf[99] = 1
        pool.free(buf)
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="native_stacks"):
            guardalloc.Pool(max_bytes=1 << 20, native_stacks=bad)


def test_pool_c_interface_with_native_stacks_stays_correct():
    from helpers import alloc_free_pairs, pool_stress

    with guardalloc.Pool(max_bytes=64 << 20, native_stacks=True) as pool:
        assert pool_stress(pool, 5_000, 7) == 0
        assert alloc_free_pairs(pool, 1_000, 64) == 0
        assert pool.stats()["arenas"] >= 1


def test_native_stack_tables_add_no_vma_per_arena():
    """The stack table lives in each arena's own mapping: a pool with native
    stacks has as many VMAs in its reservation as one without."""
    from guardalloc.bench.timing import vmas_in_range

    counts = []
    for stacks in (False, True):
        with guardalloc.Pool(max_bytes=64 << 20, native_stacks=stacks) as pool:
            blocks = [pool.alloc_raw(n) for n in (64, 5000, 20000, 70000)]
            counts.append(vmas_in_range(pool.address, pool.address + pool.reserved))
            for address in blocks:
                pool.free(address)
    assert counts[0] == counts[1], counts


# ---------------------------------------------------------------------------
# numpy

def numpy_or_skip():
    return pytest.importorskip("numpy")


OVERFLOW_NUMPY = """
import sys, numpy as np, guardalloc, guardalloc.numpy as gnp
guardalloc.set_report_path(sys.argv[2])
options = eval(sys.argv[1])
def make():
    return np.zeros(1000)
with gnp.guarded(**options):
    a = make()
np.lib.stride_tricks.as_strided(a, shape=(1100,))[1050]
"""


def test_numpy_overflow_shows_the_native_allocation_stack(child, tmp_path):
    numpy_or_skip()
    proc = child(OVERFLOW_NUMPY, "{'native_stacks': True}", str(tmp_path / "r.%p.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "heap-buffer-overflow READ" in proc.stderr
    frames = frames_under(proc.stderr, "  allocated at:")
    # Innermost first: numpy's own C code called the handler; guardalloc's
    # frames (handler, pool, core) are left out.
    assert frames and "_multiarray_umath" in frames[0], proc.stderr
    assert not any("guardalloc" in line for line in frames), proc.stderr
    assert "(not recorded" not in proc.stderr
    [report] = reports_in(tmp_path)
    validate(report)
    # With native stacks on, the handler's C path records the Python frames too.
    assert report["pid"] > 0 and "in make <string>:6" in report["stacks"]["allocated"]
    native = report["stacks"]["allocated_native"]
    assert native and "_multiarray_umath" in native[0]
    assert [f"    #{i} {frame}" for i, frame in enumerate(native)] == frames
    assert report["stacks"]["freed_native"] is None
    assert report["faulting_instruction"] and "_multiarray_umath" in report["faulting_instruction"]


def test_numpy_records_native_stacks_by_default(child, tmp_path):
    numpy_or_skip()
    proc = child(OVERFLOW_NUMPY, "{}", str(tmp_path / "r.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    frames = frames_under(proc.stderr, "  allocated at:")
    assert frames and "_multiarray_umath" in frames[0], proc.stderr
    [report] = reports_in(tmp_path)
    validate(report)
    assert report["stacks"]["allocated_native"]


def test_numpy_native_stacks_off_records_none_and_says_how(child, tmp_path):
    numpy_or_skip()
    proc = child(OVERFLOW_NUMPY, "{'native_stacks': False}", str(tmp_path / "r.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "allocated at: (not recorded: " in proc.stderr
    assert "tracebacks=True" in proc.stderr and "native_stacks=False" in proc.stderr
    [report] = reports_in(tmp_path)
    validate(report)
    assert report["stacks"]["allocated_native"] is None


def test_numpy_tracebacks_true_records_python_and_native_stacks(child, tmp_path):
    numpy_or_skip()
    proc = child(OVERFLOW_NUMPY, "{'tracebacks': True, 'native_stacks': True}", str(tmp_path / "r.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert re.search(r'  allocated at:\n    #0 in make <string>:6\n'
                     r'    #1 in <module> <string>:8( \(called from C\))?\n  allocated at \(native\):\n' + FRAME,
                     proc.stderr), proc.stderr
    [report] = reports_in(tmp_path)
    validate(report)
    assert report["stacks"]["allocated"].startswith("    #0 in make <string>:6\n")
    assert report["stacks"]["allocated_native"]


UAF_NUMPY = """
import ctypes, sys, numpy as np, guardalloc.numpy as gnp
options = eval(sys.argv[1])
def make():
    return np.zeros(10)
def drop(b):
    del b[:]
with gnp.guarded(uaf=True, **options):
    box = [make()]
address = box[0].ctypes.data
drop(box)
ctypes.c_char.from_address(address).value
"""


def test_numpy_use_after_free_shows_both_stacks_with_tracebacks(child):
    numpy_or_skip()
    proc = child(UAF_NUMPY, "{'tracebacks': True, 'native_stacks': True}")
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "use-after-free READ" in proc.stderr
    assert re.search(r'  allocated at:\n    #0 in make <string>:5\n'
                     r'    #1 in <module> <string>:9( \(called from C\))?\n',
                     proc.stderr), proc.stderr
    assert re.search(r'  freed at:\n    #0 in drop <string>:7\n    #1 in <module> <string>:11( \(called from C\))?\n'
                     r'  freed at \(native\):\n' + FRAME, proc.stderr), proc.stderr
    assert "_multiarray_umath" in frames_under(proc.stderr, "  freed at (native):")[0]


def test_numpy_tracebacks_alone_follow_enable_tracebacks(child):
    numpy_or_skip()
    proc = child("""
        import numpy as np, guardalloc, guardalloc.numpy as gnp
        guardalloc.enable_tracebacks()
        with gnp.guarded(native_stacks=False):
            a = np.zeros(1000)
        np.lib.stride_tricks.as_strided(a, shape=(1100,))[1050]
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert re.search(r'  allocated at:\n    #0 in <module> <string>:5( \(called from C\))?\n', proc.stderr), proc.stderr
    assert "allocated at (native)" not in proc.stderr


def test_numpy_tracebacks_keep_the_exception_in_flight():
    numpy_ = numpy_or_skip()
    import sys

    import guardalloc.numpy as gnp

    with gnp.guarded(tracebacks=True, native_stacks=True) as h:
        before = h.stats()["malloc"] + h.stats()["calloc"]
        try:
            raise KeyError("in flight")
        except KeyError:
            arrays = [numpy_.zeros(n) for n in (1, 100, 10_000)]
            arrays.append(arrays[-1].copy())
            arrays[0].resize(50, refcheck=False)
            assert sys.exc_info()[0] is KeyError
        del arrays
        assert h.stats()["malloc"] + h.stats()["calloc"] > before
        assert h.stats()["bad_free"] == 0


def test_run_numpy_traceback_records_both(tmp_path):
    numpy_or_skip()
    from test_launcher import launch, write

    script = write(tmp_path / "prog.py", """
        import numpy as np

        def load():
            return np.zeros(1000)

        a = load()
        np.lib.stride_tricks.as_strided(a, shape=(1100,))[1050]
    """)
    proc = launch("--numpy", "--traceback", script, cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    # Under the launcher the report comes back symbolized: the Python frames and the
    # native ones in one stack when the interpreter's frame is among the native ones.
    block = proc.stderr.split("  allocated at:\n")[1]
    load, module = f"in load {script}:5\n", f"in <module> {script}:7"
    assert load in block and module in block and block.index(load) < block.index(module), proc.stderr
    assert "_multiarray_umath" in block.split(f"in <module> {script}:7")[0] or "allocated at (native)" in block


# ---------------------------------------------------------------------------
# The PyMem hooks

PYMEM_FAULT = """
import ctypes, sys, guardalloc, guardalloc.pymem as pymem
guardalloc.set_report_path(sys.argv[3])
api = ctypes.pythonapi
api.PyMem_RawMalloc.restype = ctypes.c_void_p
api.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
api.PyMem_RawFree.argtypes = [ctypes.c_void_p]
kind = sys.argv[1]
pymem.install(1, domains=("raw",), uaf=kind == "uaf", native_stacks=eval(sys.argv[2]),
              max_bytes=64 << 20)
p = api.PyMem_RawMalloc(100)
assert pymem.pool().owns(p)
if kind == "uaf":
    api.PyMem_RawFree(p)
    ctypes.c_char.from_address(p).value
else:
    ctypes.memset(p + 100 + 12, 0, 1)    # past the 16-byte aligned end: the guard
"""


@pytest.mark.parametrize("kind", ["overflow", "uaf"])
def test_pymem_fault_shows_native_stacks(child, tmp_path, kind):
    proc = child(PYMEM_FAULT, kind, "True", str(tmp_path / "r.%p.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert ("use-after-free READ" if kind == "uaf" else "heap-buffer-overflow WRITE") in proc.stderr
    allocated = frames_under(proc.stderr, "  allocated at:")
    # The hooks' own frames are left out: the stack starts at the caller of
    # PyMem_RawMalloc (which tail-calls the hook): ctypes' libffi here.
    assert allocated and "libffi" in allocated[0], proc.stderr
    assert not any("guardalloc" in line for line in allocated), proc.stderr
    [report] = reports_in(tmp_path)
    validate(report)
    assert "libffi" in report["stacks"]["allocated_native"][0]
    if kind == "uaf":
        freed = frames_under(proc.stderr, "  freed at:")
        assert freed and "libffi" in freed[0], proc.stderr
        assert report["stacks"]["freed_native"] == [line.split(" ", 5)[-1] for line in freed]


DEEP_FAULT = """
import ctypes, sys, guardalloc
from guardalloc import pymem
guardalloc.set_report_path(sys.argv[1])
api = ctypes.pythonapi
api.PyMem_RawMalloc.restype = ctypes.c_void_p
api.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
pymem.install(1, domains=("raw",), native_stacks=True, max_bytes=64 << 20)

def down(n):   # every level goes through C (map's iterator calls it)
    return list(map(down, [n - 1]))[0] if n else api.PyMem_RawMalloc(100)

p = down(40)
assert pymem.pool().owns(p)
ctypes.memset(p + 100 + 12, 0, 1)
"""


def test_deep_stacks_keep_their_innermost_frames_and_count_the_rest(child, tmp_path):
    """A stack deeper than a slot's budget keeps well over 32 of its
    innermost frames (the caller first) and says how many it left out."""
    proc = child(DEEP_FAULT, str(tmp_path / "r.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    allocated = frames_under(proc.stderr, "  allocated at:")
    assert len(allocated) >= 40, proc.stderr
    assert "libffi" in allocated[0], proc.stderr
    after = proc.stderr.split(allocated[-1] + "\n", 1)[1].splitlines()[0]
    assert re.fullmatch(r"    \.\.\. \d+ or more outer frames not kept", after), proc.stderr
    [report] = reports_in(tmp_path)
    assert len(report["stacks"]["allocated_native"]) == len(allocated)


def test_pymem_without_native_stacks(child, tmp_path):
    proc = child(PYMEM_FAULT, "overflow", "False", str(tmp_path / "r.json"))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "allocated at: (not recorded: " in proc.stderr


def test_pymem_native_stacks_are_on_at_every_rate(child):
    proc = child("""
        import guardalloc.pymem as pymem
        for rate, stacks in ((1, None), (999, None), (5000, None), (1, False)):
            pymem.install(rate, domains=("raw",), max_bytes=64 << 20, native_stacks=stacks)
            print(rate, pymem.pool().native_stacks)
            pymem.uninstall()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["1 True", "999 True", "5000 True", "1 False"]
    assert not hasattr(pymem, "NATIVE_STACKS_MIN_RATE")
    with pytest.raises(TypeError, match="native_stacks"):
        pymem.install(5000, native_stacks="yes")


# ---------------------------------------------------------------------------
# The faulting instruction with faulthandler above or below guardalloc's handler

FAULTHANDLER_ORDER = """
import ctypes, faulthandler, sys, guardalloc
guardalloc.set_report_path(sys.argv[2])
arena = guardalloc.Arena(4096, 4, alignment=1)    # installs guardalloc's handler
if sys.argv[1] == "after":
    faulthandler.enable()                         # on top of guardalloc's
buf = arena.alloc(100)
ctypes.memset(buf.address + 100, 0, 1)
"""


def _faulting_line(stderr: str) -> str:
    match = re.search(r"  \w+(?: of size \d+(?: \([^)]*\))?)? by thread \d+ .*:\n    #0 0x[0-9a-f]+ (.*)\n", stderr)
    assert match, stderr
    return match.group(1)


def test_faulting_instruction_whichever_handler_comes_first(child, tmp_path):
    lines = {}
    for order, python_args in (("none", ()), ("before", ("-X", "faulthandler")), ("after", ())):
        path = tmp_path / f"{order}.json"
        proc = child(FAULTHANDLER_ORDER, order, str(path), python_args=python_args)
        assert proc.returncode == -signal.SIGSEGV, proc.stderr
        assert "heap-buffer-overflow WRITE" in proc.stderr
        if order != "none":
            assert "Fatal Python error: Segmentation fault" in proc.stderr   # faulthandler still ran
        lines[order] = _faulting_line(proc.stderr)
        [report] = [json.loads(line) for line in path.read_text().splitlines()]
        validate(report)
        # Passed on by faulthandler's raise(): said in the JSON, not in the text.
        assert (report["si_code"] == "passed-on") == (order == "after")
        assert "raised again" not in proc.stderr
        assert report["faulting_instruction"].split(" ", 1)[1] == lines[order]
    # The same instruction (memset's store in libc), found from the signal
    # context or, with faulthandler on top, from the fault's signal frame.
    assert lines["none"] == lines["before"] == lines["after"], lines


def test_numpy_handler_call_without_the_gil_drops_stale_tracebacks(child):
    """A handler call made without the GIL (ctypes releases it) records no
    Python traceback, and the slot does not keep the traceback of the block
    that was in it before: the report shows the native stack instead."""
    numpy_or_skip()
    proc = child("""
        import ctypes, numpy as np, guardalloc.numpy as gnp
        h = gnp.handler(tracebacks=True, native_stacks=True)
        with gnp.guarded(tracebacks=True, native_stacks=True):
            a = np.zeros(1000)                 # a Python traceback in its slot
        address = a.ctypes.data
        del a
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.py_object, ctypes.c_char_p]
        struct = get(h.capsule, b"mem_handler")
        ctx, malloc = ctypes.c_void_p.from_address(struct + 128).value, \\
            ctypes.c_void_p.from_address(struct + 136).value
        p = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(malloc)(ctx, 8000)
        assert p == address, (p, address)      # the same slot again
        ctypes.memset(p + 8000, 0, 1)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "heap-buffer-overflow WRITE" in proc.stderr
    assert not re.search(r"  allocated at:\n    #\d+ in ", proc.stderr), proc.stderr   # no Python frames recorded
    frames = frames_under(proc.stderr, "  allocated at:")
    assert frames and "libffi" in frames[0], proc.stderr


def test_pool_c_interface_with_native_stacks_from_threads():
    import threading

    from helpers import pool_stress

    with guardalloc.Pool(max_bytes=256 << 20, native_stacks=True) as pool:
        failures = []
        threads = [threading.Thread(target=lambda seed=seed: failures.append(pool_stress(pool, 3_000, seed)))
                   for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == [0, 0, 0, 0]

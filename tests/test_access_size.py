"""The size of a faulting access (issue 21): the handler decodes the
faulting instruction, so a report says "WRITE of size 8 by thread ..." and
its JSON carries access_size and the instruction's bytes. Each fault in a
child process: an Arena overflow by one instruction of each size
(tests/c/access_stores.c, inline assembly), a rep string instruction, and
libc's memset and memcpy (whatever vector path this CPU selects, checked
against objdump's reading of the faulting bytes); each with a bug-free twin
that must run silently."""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_child
from fuzz_replay import system_compiler
from test_insn_decode import disassemble_bytes

ROOT = Path(__file__).resolve().parent.parent
STORES_C = ROOT / "tests" / "c" / "access_stores.c"

pytestmark = pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                                reason="the decoder reads x86-64 instructions")


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    """access_stores.c built as a shared library."""
    command = system_compiler()
    if command is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    out = tmp_path_factory.mktemp("stores") / "libstores.so"
    proc = subprocess.run([*command, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                           str(STORES_C), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


CALL_AT = """
import ctypes, sys, guardalloc
from guardalloc import faults
guardalloc.enable_reports()
faults.set_report_path(sys.argv[1])
lib = ctypes.CDLL(sys.argv[2])
arena = guardalloc.Arena(slot_size=4096, slots=4)
buf = arena.alloc(4096)
args = [ctypes.c_void_p(buf.address + int(sys.argv[4]))] + [ctypes.c_uint64(int(a)) for a in sys.argv[5:]]
getattr(lib, sys.argv[3])(*args)
print("survived")
"""

# function, bytes of one access, access, what the report adds after the size, CPU flag needed
STORES = [
    ("store1", 1, "WRITE", "", None),
    ("store2", 2, "WRITE", "", None),
    ("store4", 4, "WRITE", "", None),
    ("store8", 8, "WRITE", "", None),
    ("load8", 8, "READ", "", None),
    ("add4", 4, "WRITE", "", None),
    ("store16", 16, "WRITE", " (a vector access)", None),
    ("store32", 32, "WRITE", " (a vector access)", "avx"),
    ("store64_masked", 64, "WRITE", " (a masked vector access: its full width)", "avx512bw"),
]


def _json_report(log: Path) -> dict:
    """The one JSON report in log, checked against docs/report-schema.json."""
    from test_reports_json import validate
    [line] = log.read_text().splitlines()
    report = json.loads(line)
    validate(report)
    return report


@pytest.mark.parametrize("function,size,access,kind,cpu", STORES, ids=[s[0] for s in STORES])
def test_an_overflow_by_one_instruction_names_its_size(stores, tmp_path, function, size, access, kind, cpu):
    if cpu is not None and cpu not in _cpu_flags():
        pytest.skip(f"this CPU has no {cpu}")
    log = tmp_path / "r.json"
    proc = run_child(CALL_AT, str(log), str(stores), function, "4096")
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert f"guardalloc: heap-buffer-overflow {access} at 0x" in proc.stderr
    assert re.search(rf"\n  {access} of size {size}{re.escape(kind)} by thread \d+ \(\S+\):\n", proc.stderr), \
        proc.stderr
    report = _json_report(log)
    assert (report["access"], report["access_size"]) == (access, size)
    insn = report["instruction"]
    assert insn["decoded"] and insn["vector"] == (size >= 16) and insn["masked"] == ("masked" in function)
    assert (insn["reads"], insn["writes"]) == (function in ("load8", "add4"), access == "WRITE")
    # The bytes are the function's own instruction (the first access in it).
    code = bytes.fromhex(insn["bytes"])
    lib = ctypes.CDLL(str(stores))
    body = ctypes.string_at(ctypes.cast(getattr(lib, function), ctypes.c_void_p).value, 64)
    assert code in body


@pytest.mark.parametrize("function,size,access,kind,cpu", STORES, ids=[s[0] for s in STORES])
def test_the_same_access_inside_the_buffer_is_silent(stores, tmp_path, function, size, access, kind, cpu):
    if cpu is not None and cpu not in _cpu_flags():
        pytest.skip(f"this CPU has no {cpu}")
    log = tmp_path / "r.json"
    proc = run_child(CALL_AT, str(log), str(stores), function, str(4096 - size))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "survived\n", "")
    assert not log.exists()


def test_a_rep_string_overflow_names_the_element_size(stores, tmp_path):
    """rep stosq of 513 quadwords from the start of a 4096-byte buffer."""
    log = tmp_path / "r.json"
    proc = run_child(CALL_AT, str(log), str(stores), "rep_stos8", "0", "513")
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert re.search(r"\n  WRITE of size 8 \(one element of a rep string instruction\) by thread ", proc.stderr)
    insn = _json_report(log)["instruction"]
    assert (insn["string"], insn["rep"], insn["bytes"]) == (True, True, "f3 48 ab")
    twin = run_child(CALL_AT, str(log), str(stores), "rep_stos8", "0", "512")
    assert (twin.returncode, twin.stderr) == (0, "")


LIBC_OVERFLOW = """
import ctypes, sys, guardalloc
from guardalloc import faults
guardalloc.enable_reports()
faults.set_report_path(sys.argv[1])
arena = guardalloc.Arena(slot_size=16384, slots=4, alignment=1)
buf = arena.alloc(int(sys.argv[3]))
n = int(sys.argv[4])
if sys.argv[2] == "memset":
    ctypes.memset(buf.address, 0x41, n)
else:
    src = ctypes.create_string_buffer(n)
    ctypes.memmove(buf.address, src, n)
print("survived")
"""


@pytest.mark.parametrize("function", ["memset", "memcpy"])
@pytest.mark.parametrize("length", [100, 3000, 16384])
def test_libc_overflows_name_the_size_of_the_instruction_that_faulted(tmp_path, function, length):
    """libc picks its own path by length and CPU (vector stores, rep movsb,
    rep stosb): the size in the report is the one objdump reads in the
    faulting bytes, and a rep string instruction is said to be one."""
    log = tmp_path / "r.json"
    proc = run_child(LIBC_OVERFLOW, str(log), function, str(length), str(length + 1))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    report = _json_report(log)
    insn = report["instruction"]
    assert insn is not None and insn["decoded"], report
    seen = disassemble_bytes(bytes.fromhex(insn["bytes"]), tmp_path)
    assert report["access"] == "WRITE" and insn["writes"]
    assert report["access_size"] == seen.size, (insn, seen)
    assert insn["rep"] == (seen.rep and seen.mnemonic in ("movs", "stos")), (insn, seen)
    size_line = re.search(r"\n  WRITE of size (\d+)( \([^)]*\))? by thread ", proc.stderr)
    assert size_line and int(size_line.group(1)) == seen.size, proc.stderr
    twin = run_child(LIBC_OVERFLOW, str(log), function, str(length), str(length))
    assert (twin.returncode, twin.stdout, twin.stderr) == (0, "survived\n", "")


def test_a_fault_in_code_that_cannot_be_read_leaves_the_size_out(tmp_path):
    """Executing a guard page (EXEC): no instruction to read at the PC, so no
    size, and the JSON says null rather than a guess."""
    log = tmp_path / "r.json"
    proc = run_child("""
        import ctypes, sys, guardalloc
        from guardalloc import faults
        guardalloc.enable_reports()
        faults.set_report_path(sys.argv[1])
        arena = guardalloc.Arena(slot_size=4096, slots=4)
        buf = arena.alloc(4096)
        ctypes.CFUNCTYPE(None)(buf.address + 4096)()
    """, str(log))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert re.search(r"\n  EXEC by thread \d+", proc.stderr), proc.stderr
    report = _json_report(log)
    assert (report["access"], report["access_size"], report["instruction"]) == ("EXEC", None, None)

"""The heap bug classes of one default `guardalloc exec` run
(tests/native/corpus/classes): frees of memory no allocator made (bad-free),
mismatched allocation families (alloc-dealloc-mismatch), underwrites found at
free (heap-buffer-underflow), realloc of a freed block (double-free) and
over-reads past a block's size-based alignment. Each program is built
without -rdynamic, as most programs are, and again with -DTWIN: its bug-free
twin, which must run silently."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from native_support import CLASSES, PROGRAMS, build, run_preloaded, symbolized  # noqa: F401 (build: a fixture)

CASES = sorted(glob.glob(os.path.join(CLASSES, "*.c")) + glob.glob(os.path.join(CLASSES, "*.cc")))
CASES = [c for c in CASES if os.path.basename(c) != "overread.c"]
OVERREAD = os.path.join(CLASSES, "overread.c")


def expectations(source: str):
    """(signal, [expected report fragments]) from the file's header: the
    "expect:" line and the "and:" lines after it."""
    with open(source) as file:
        text = file.read()
    expect = re.search(r"expect: (SIG\w+)(.*)", text)
    quoted = expect.group(2) + "".join(re.findall(r"^ \* and:(.*)$", text, re.M))
    return getattr(signal, expect.group(1)), re.findall(r'"([^"]*)"', quoted)


def guardalloc_exec(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name in ("PYTHONFAULTHANDLER", "LD_PRELOAD", "GUARDALLOC_OPTIONS"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "guardalloc", "exec", *args], capture_output=True,
                          text=True, timeout=300, env=env, **kwargs)


def ids(sources):
    return [os.path.basename(s) for s in sources]


@pytest.mark.parametrize("source", CASES, ids=ids(CASES))
def test_class_is_reported(build, source):
    program = build(source, rdynamic=False)
    sig, fragments = expectations(source)
    result = guardalloc_exec("--sample-rate", "1", "--", program)
    assert result.returncode == -sig, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    # The stacks name the program's frames, symbolized by exec (no -rdynamic).
    assert re.search(r"#\d+ 0x[0-9a-f]+ in .* \S*" + re.escape(os.path.basename(source)) + r":\d+",
                     result.stderr), result.stderr


@pytest.mark.parametrize("source", CASES + [OVERREAD], ids=ids(CASES + [OVERREAD]))
def test_twin_runs_silently(build, source):
    program = build(source, "-DTWIN", rdynamic=False)
    result = guardalloc_exec("--sample-rate", "1", "--", program)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip()


def _alignment(n: int) -> int:
    """alignment=auto: the smallest power of two >= n, at most 16."""
    a = 1
    while a < n and a < 16:
        a *= 2
    return a


@pytest.mark.parametrize("n", range(1, 18))
@pytest.mark.parametrize("k", range(1, 16))
def test_overread_past_the_padding_faults(build, n, k):
    """Reading k bytes past an n-byte block faults at the access when the
    byte lies past the block's padding; inside it the read is unseen (a read
    does not change the pattern). Blocks of 1, 2, 4, 8 and 16 bytes have
    none."""
    program = build(OVERREAD, rdynamic=False)
    result = run_preloaded([program, str(n), str(k)], "sample_rate=1")
    padded = -(-n // _alignment(n)) * _alignment(n)
    if n + k - 1 >= padded:
        assert result.returncode == -signal.SIGSEGV, result.stderr
        assert "heap-buffer-overflow READ" in result.stderr
        assert f"{n + k - 1 - n} bytes past the end of a {n}-byte buffer" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


@pytest.mark.parametrize("n", range(1, 18))
def test_overread_byte_exact_always_faults(build, n):
    program = build(OVERREAD, rdynamic=False)
    result = run_preloaded([program, str(n), "1"], "sample_rate=1:alignment=1")
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert f"0 bytes past the end of a {n}-byte buffer" in result.stderr


def test_bad_free_is_found_at_any_sampling(build):
    """A free of memory no allocator made is checked whatever was sampled."""
    program = build(os.path.join(CLASSES, "free_stack_array.c"), rdynamic=False)
    result = guardalloc_exec("--sample-rate", "5000", "--", program)
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert "bad-free" in result.stderr


def test_bad_free_continue_leaves_the_memory_alone(build):
    program = build(os.path.join(CLASSES, "free_global.c"), rdynamic=False)
    result = run_preloaded([program], "sample_rate=1:on_fault=continue")
    assert result.returncode == 0, result.stderr
    assert "bad-free" in result.stderr and result.stdout == "global\n"


def test_mismatch_check_can_be_turned_off(build):
    program = build(os.path.join(CLASSES, "new_array_free.cc"), rdynamic=False)
    result = run_preloaded([program], "sample_rate=1:alloc_dealloc_mismatch=0")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_mismatch_continue_frees_the_block(build):
    program = build(os.path.join(CLASSES, "malloc_delete.cc"), rdynamic=False)
    result = run_preloaded([program], "sample_rate=1:on_fault=continue")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("== guardalloc: alloc-dealloc-mismatch") == 1   # one report


@pytest.mark.parametrize("options", ["sample_rate=1", "sample_rate=1:alignment=1", "sample_rate=1:uaf=1",
                                     "sample_rate=1:align=left"])
def test_every_cxx_operator_form(build, options):
    """new/new[]/delete/delete[], sized, aligned and nothrow: guarded, aligned,
    freed silently; a request too big for any allocator throws bad_alloc."""
    program = build(os.path.join(PROGRAMS, "operators.cc"))
    result = run_preloaded([program], options)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


# corpus program -> what its JSON report says
JSON_CASES = {
    "free_stack_array.c": {"kind": "bad-free", "freed_by": "free"},
    "free_string_literal.c": {"kind": "bad-free", "freed_by": "free"},
    "free_mapping.c": {"kind": "bad-free", "freed_by": "free"},
    "new_array_free.cc": {"kind": "alloc-dealloc-mismatch", "allocated_by": "operator new []",
                          "freed_by": "free", "size": 40, "offset": 0},
    "underwrite_8.c": {"kind": "heap-buffer-underflow", "damaged": 8, "offset": -8, "size": 32},
}
MEMORY = {"free_stack_array.c": "stack", "free_string_literal.c": "read-only", "free_mapping.c": "mapping"}


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_json_report_of_each_class(build, tmp_path, name):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from test_reports_json import validate

    program = build(os.path.join(CLASSES, name), rdynamic=False)
    proc = subprocess.Popen([sys.executable, "-m", "guardalloc", "exec", "--sample-rate", "1",
                             "--log-path", str(tmp_path / "report.%p.json"), "--", program],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "GUARDALLOC_OPTIONS"})
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGABRT, stderr
    [path] = tmp_path.glob("report.*.json")   # written by exec's child
    [line] = path.read_text().splitlines()
    report = json.loads(line)
    validate(report)
    assert path.name == f"report.{report['pid']}.json" and report["pid"] != proc.pid
    assert report["schema_version"] == 6 and report["access"] == "free"
    assert report["signal"] is None and symbolized(report["text"]) in stderr
    for key, value in JSON_CASES[name].items():
        assert report[key] == value, (key, report)
    assert report["stacks"]["this_free_native"]
    if report["kind"] == "bad-free":
        memory = report["memory"]
        assert memory["kind"] == MEMORY[name]
        assert int(memory["start"], 16) <= int(report["address"], 16) < int(memory["end"], 16)
        assert (memory["thread"] == report["pid"]) == (name == "free_stack_array.c")
        assert report["arena"] is None and report["slot"] is None
    else:
        assert report["stacks"]["allocated_native"] and report["arena"]["slots"] >= 1


@pytest.mark.parametrize("options", ["sample_rate=5000", "sample_rate=3", "sample_rate=1"])
def test_glibc_blocks_are_never_taken_for_bad_frees(build, options):
    """brk heap, thread arenas, mmapped and memalign'd chunks, freed across
    threads: all handed back to glibc without a report."""
    program = build(os.path.join(PROGRAMS, "glibc_blocks.c"))
    result = run_preloaded([program], options)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")

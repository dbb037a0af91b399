"""The corpus of heap bugs (tests/native/corpus), each in a child under the
library: the child dies with the expected signal and report, stacks included;
built with -DTWIN, its bug-free twin runs silently."""

from __future__ import annotations

import glob
import os
import re
import signal

import pytest

from native_support import CORPUS, build, run_preloaded, symbolized  # noqa: F401 (build: a fixture)

SOURCES = sorted(glob.glob(os.path.join(CORPUS, "*.c")) + glob.glob(os.path.join(CORPUS, "*.cc")))


def expectations(source: str):
    """(signal, [expected report fragments], options) from the file's header."""
    with open(source) as file:
        text = file.read()
    expect = re.search(r"expect: (SIG\w+)(.*)", text)
    options = re.search(r"options:(.*)", text).group(1).strip()
    fragments = re.findall(r'"([^"]*)"', expect.group(2))
    return getattr(signal, expect.group(1)), fragments, options


@pytest.mark.parametrize("source", SOURCES, ids=[os.path.basename(s) for s in SOURCES])
def test_corpus_case_is_caught(build, source):
    program = build(source)
    sig, fragments, options = expectations(source)
    result = run_preloaded([program], "sample_rate=1" + (":" + options if options else ""))
    assert result.returncode == -sig, result.stderr
    text = symbolized(result.stderr)   # as exec prints it
    for fragment in fragments:
        assert fragment in text, text
    # Native stacks: the allocation stack names the program's functions.
    assert "allocated at:" in text
    assert re.search(r"#0 0x[0-9a-f]+ in \w", text), text
    if sig == signal.SIGSEGV:
        # The stack of the access, walked from the signal context: the
        # faulting instruction, then its callers.
        access = re.search(r"  \w+(?: of size \d+(?: \([^)]*\))?)? by thread \d+ \(\w+\):\n((?:    #\d+ .*\n)+)", text)
        assert access, text
        frames = access.group(1).splitlines()
        if "strcpy" not in source:
            assert re.search(r" in trigger(\(|\s)", frames[0]), text   # C++: demangled, trigger(int*, int)
        else:
            assert "strcpy" in frames[0] or "libc" in frames[0], text   # inside strcpy itself
            assert re.search(r" in trigger(\(|\s)", frames[1]), text   # its caller, the user's function
        assert any(" in main " in f for f in frames), text
        assert re.search(r"\nSUMMARY: guardalloc: \S+ trigger", text), text


@pytest.mark.parametrize("source", SOURCES, ids=[os.path.basename(s) for s in SOURCES])
def test_corpus_twin_runs_silently(build, source):
    """Each case built with -DTWIN is its bug-free twin (bench --peers runs
    both under every peer): silent under the options that catch the bug."""
    program = build(source, "-DTWIN")
    _, _, options = expectations(source)
    result = run_preloaded([program], "sample_rate=1" + (":" + options if options else ""))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


@pytest.mark.parametrize("name", ["overflow_write.c", "posix_memalign_overflow.c"])
def test_default_alignment_finds_slack_overflow_at_free(build, name):
    """With the default 16-byte alignment a one-byte overflow past a 13-byte
    block stays in the padding: reported at free with the allocation stack."""
    program = build(os.path.join(CORPUS, name))
    result = run_preloaded([program], "sample_rate=1")
    if name == "overflow_write.c":
        assert result.returncode == -signal.SIGABRT, result.stderr
        assert "slack byte(s) after the block" in result.stderr
        assert "allocated at:" in result.stderr and " in main " in symbolized(result.stderr)
    else:
        # 128 bytes at 64: ends at the guard whatever the alignment.
        assert result.returncode == -signal.SIGSEGV, result.stderr


def test_on_fault_continue_reports_and_goes_on(build):
    program = build(os.path.join(CORPUS, "overflow_write.c"))
    result = run_preloaded([program], "sample_rate=1:alignment=1:on_fault=continue")
    assert result.returncode == 0, result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr
    assert "the program goes on" in result.stderr


def test_unsampled_bug_is_not_reported(build):
    program = build(os.path.join(CORPUS, "overflow_write.c"))
    result = run_preloaded([program], "sample_rate=0")
    assert result.returncode == 0
    assert "guardalloc" not in result.stderr


def test_align_random_places_blocks_both_ways(build):
    """align=random: an overflow and an underflow are each caught at the
    access in some runs (each block goes left or right)."""
    over = build(os.path.join(CORPUS, "overflow_write.c"))
    under = build(os.path.join(CORPUS, "underflow.c"))
    for program in (over, under):
        codes = {run_preloaded([program], "sample_rate=1:alignment=1:align=random").returncode
                 for _ in range(12)}
        assert -signal.SIGSEGV in codes, codes

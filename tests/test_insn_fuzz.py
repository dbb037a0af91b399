"""The x86-64 decoder's fuzz corpus in CI: every file of tests/fuzz/insn_corpus
through the fuzz target (tests/fuzz/insn_fuzz.c, which checks the decoder's
contract: lengths, sizes, flags, no byte used past the instruction), linked
with tests/fuzz/replay.c instead of libFuzzer -- built with the system C
compiler, and again with AddressSanitizer and UndefinedBehaviorSanitizer
(tests/fuzz_replay.py, as for the other fuzz targets)."""

from __future__ import annotations

import os
from pathlib import Path

from fuzz_replay import corpus, replay_plain, replay_sanitized

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "insn_corpus"
SOURCES = [FUZZ_DIR / "insn_fuzz.c", C_DIR / "insn_decode.c", C_DIR / "insn_tables.c"]
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]


def test_corpus_replays(tmp_path):
    replay_plain(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_replays_under_sanitizers(tmp_path):
    """Every read inside the input (the target hands the decoder a heap copy
    of exactly the input's bytes), no undefined arithmetic."""
    replay_sanitized(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_is_small():
    """Checked in as a regression corpus, kept minimal (libFuzzer -merge=1)."""
    files = corpus(CORPUS)
    assert len(files) <= 600
    assert sum(os.path.getsize(f) for f in files) <= 64 * 1024

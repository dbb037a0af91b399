"""The GUARDALLOC_OPTIONS parser's fuzz corpus in CI: every file of
tests/fuzz/options_corpus through the fuzz target (tests/fuzz/options_fuzz.c,
which checks the parser's contract, not only that it survives), linked with
tests/fuzz/replay.c instead of libFuzzer -- built with the system C compiler,
and again with AddressSanitizer and UndefinedBehaviorSanitizer (clang when
installed, else the system compiler if it has them)."""

from __future__ import annotations

import os
from pathlib import Path

from fuzz_replay import corpus, replay_plain, replay_sanitized

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "options_corpus"
SOURCES = [FUZZ_DIR / "options_fuzz.c", C_DIR / "options.c"]
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]


def test_corpus_replays(tmp_path):
    """Every corpus file through the target, built with the system compiler."""
    replay_plain(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_replays_under_sanitizers(tmp_path):
    """The same, under ASan and UBSan: out-of-bounds reads of the option text
    or the message buffer, overflowing arithmetic in the number parsing."""
    replay_sanitized(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_is_small():
    """Checked in as a regression corpus, kept minimal (libFuzzer -merge=1)."""
    files = corpus(CORPUS)
    assert len(files) <= 400
    assert sum(os.path.getsize(f) for f in files) <= 256 * 1024

"""The x86-64 decoder's fuzz corpus in CI: every file of tests/fuzz/insn_corpus
through the fuzz target (tests/fuzz/insn_fuzz.c, which checks the decoder's
contract: lengths, sizes, flags, no byte used past the instruction), linked
with tests/fuzz/replay.c instead of libFuzzer -- built with the system C
compiler, and again with AddressSanitizer and UndefinedBehaviorSanitizer
(as tests/test_options_fuzz.py does for the options parser)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_options_fuzz import CFLAGS, SANITIZE, _system_compiler

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "insn_corpus"
SOURCES = [FUZZ_DIR / "insn_fuzz.c", FUZZ_DIR / "replay.c", C_DIR / "insn_decode.c", C_DIR / "insn_tables.c"]


def _corpus() -> list[str]:
    files = sorted(str(p) for p in CORPUS.iterdir() if p.is_file())
    assert files, f"{CORPUS} is empty"
    return files


def _build_and_replay(compiler: list[str], flags: list[str], out: Path) -> subprocess.CompletedProcess | None:
    """Build the replay program; None when the compiler refuses the flags,
    else the finished replay over the corpus."""
    proc = subprocess.run([*compiler, *CFLAGS, *flags, *map(str, SOURCES), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        assert flags, proc.stderr   # a plain build must work
        return None
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    env.pop("LD_PRELOAD", None)
    return subprocess.run([str(out), *_corpus()], capture_output=True, text=True, timeout=300, env=env)


def test_corpus_replays(tmp_path):
    if not (FUZZ_DIR / "insn_fuzz.c").exists():   # pragma: no cover - an sdist without tests/
        pytest.skip("tests/fuzz is not here")
    compiler = _system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    proc = _build_and_replay(compiler, [], tmp_path / "replay")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_corpus_replays_under_sanitizers(tmp_path):
    """Every read inside the input (the target hands the decoder a heap copy
    of exactly the input's bytes), no undefined arithmetic."""
    candidates = [[name] for name in ("clang-19", "clang") if shutil.which(name)]
    system = _system_compiler()
    if system is not None:
        candidates.append(system)
    for compiler in candidates:
        proc = _build_and_replay(compiler, SANITIZE, tmp_path / "replay-sanitized")
        if proc is not None:
            break
    else:
        pytest.skip("no compiler builds with -fsanitize=address,undefined")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_corpus_is_small():
    """Checked in as a regression corpus, kept minimal (libFuzzer -merge=1)."""
    files = _corpus()
    assert len(files) <= 600
    assert sum(os.path.getsize(f) for f in files) <= 64 * 1024

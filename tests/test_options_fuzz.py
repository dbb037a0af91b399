"""The GUARDALLOC_OPTIONS parser's fuzz corpus in CI: every file of
tests/fuzz/options_corpus through the fuzz target (tests/fuzz/options_fuzz.c,
which checks the parser's contract, not only that it survives), linked with
tests/fuzz/replay.c instead of libFuzzer -- built with the system C compiler,
and again with AddressSanitizer and UndefinedBehaviorSanitizer (clang when
installed, else the system compiler if it has them)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "options_corpus"
SOURCES = [FUZZ_DIR / "options_fuzz.c", FUZZ_DIR / "replay.c", C_DIR / "options.c"]
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _system_compiler() -> list[str] | None:
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if command and shutil.which(command[0]):
        return command
    return ["cc"] if shutil.which("cc") else None


def _corpus() -> list[str]:
    files = sorted(str(p) for p in CORPUS.iterdir() if p.is_file())
    assert files, f"{CORPUS} is empty"
    return files


def _build(compiler: list[str], flags: list[str], out: Path, sources: list[Path]) -> subprocess.CompletedProcess:
    """Link a fuzz target's sources with replay.c into out."""
    return subprocess.run([*compiler, *CFLAGS, *flags, *map(str, sources), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)


def _replay(program: Path, corpus: list[str]) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    env.pop("LD_PRELOAD", None)
    env.pop("GUARDALLOC_OPTIONS", None)
    proc = subprocess.run([str(program), *corpus], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def replay_plain(sources: list[Path], corpus: list[str], tmp_path: Path) -> None:
    """Every corpus file through the fuzz target (sources, with replay.c),
    built with the system compiler: it exits 0 and prints nothing. Skips
    without a compiler or without tests/fuzz. Shared by the fuzz targets'
    tests (tests/test_insn_fuzz.py)."""
    if not (FUZZ_DIR / "replay.c").exists():   # pragma: no cover - an sdist without tests/
        pytest.skip("tests/fuzz is not here")
    compiler = _system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    proc = _build(compiler, [], tmp_path / "replay", sources)
    assert proc.returncode == 0, proc.stderr
    _replay(tmp_path / "replay", corpus)


def replay_sanitized(sources: list[Path], corpus: list[str], tmp_path: Path) -> None:
    """The same under ASan and UBSan (clang-19, clang or the system compiler,
    the first that builds with them); skips when none does."""
    candidates = [[name] for name in ("clang-19", "clang") if shutil.which(name)]
    system = _system_compiler()
    if system is not None:
        candidates.append(system)
    reasons = []
    for compiler in candidates:
        proc = _build(compiler, SANITIZE, tmp_path / "replay-sanitized", sources)
        if proc.returncode == 0:
            break
        reasons.append(f"{compiler[0]}: {proc.stderr.strip().splitlines()[-1:]}")
    else:
        pytest.skip("no compiler builds with -fsanitize=address,undefined "
                    f"({'; '.join(reasons) or 'no C compiler'})")
    _replay(tmp_path / "replay-sanitized", corpus)


def test_corpus_replays(tmp_path):
    """Every corpus file through the target, built with the system compiler."""
    replay_plain(SOURCES, _corpus(), tmp_path)


def test_corpus_replays_under_sanitizers(tmp_path):
    """The same, under ASan and UBSan: out-of-bounds reads of the option text
    or the message buffer, overflowing arithmetic in the number parsing."""
    replay_sanitized(SOURCES, _corpus(), tmp_path)


def test_corpus_is_small():
    """Checked in as a regression corpus, kept minimal (libFuzzer -merge=1)."""
    files = _corpus()
    assert len(files) <= 400
    assert sum(os.path.getsize(f) for f in files) <= 256 * 1024

"""Replaying a checked-in fuzz corpus (tests/fuzz/*_corpus) through its fuzz
target linked with tests/fuzz/replay.c instead of libFuzzer: built with the
system C compiler, and again under AddressSanitizer and
UndefinedBehaviorSanitizer (clang when installed, else the system compiler
if it has them). Shared by tests/test_options_fuzz.py,
tests/test_stack_codec.py and tests/test_insn_fuzz.py; compile_c also
builds the C programs of tests/test_insn_decode.py and tests/test_stack_codec.py."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
REPLAY = FUZZ_DIR / "replay.c"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def system_compiler() -> list[str] | None:
    """$CC, else the compiler Python was built with, else cc; None if none runs."""
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if command and shutil.which(command[0]):
        return command
    return ["cc"] if shutil.which("cc") else None


def compile_c(flags: list[str], sources: list[Path], out: Path, timeout: float = 300) -> Path:
    """Build sources with the system compiler into out and return out; skips
    without a compiler, fails on a compiler error."""
    compiler = system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    proc = subprocess.run([*compiler, *flags, *map(str, sources), "-o", str(out)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return out


def corpus(directory: Path) -> list[str]:
    """The corpus files, sorted; fails when there are none."""
    files = sorted(str(p) for p in directory.iterdir() if p.is_file())
    assert files, f"{directory} is empty"
    return files


def build(compiler: list[str], flags: list[str], sources: list[Path], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*compiler, *flags, *map(str, [*sources, REPLAY]), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)


def replay(program: Path, files: list[str]) -> None:
    """Every file through the program: exit status 0 and nothing on stderr."""
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    env.pop("LD_PRELOAD", None)
    env.pop("GUARDALLOC_OPTIONS", None)
    proc = subprocess.run([str(program), *files], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def replay_plain(flags: list[str], sources: list[Path], files: list[str], tmp_path: Path) -> None:
    """Build with the system compiler and replay; skips without a compiler."""
    if not REPLAY.exists():   # pragma: no cover - an sdist without tests/
        pytest.skip("tests/fuzz is not here")
    compiler = system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    proc = build(compiler, flags, sources, tmp_path / "replay")
    assert proc.returncode == 0, proc.stderr
    replay(tmp_path / "replay", files)


def replay_sanitized(flags: list[str], sources: list[Path], files: list[str], tmp_path: Path) -> None:
    """Build under ASan and UBSan with the first compiler that can, and
    replay; skips, naming why, when none can."""
    candidates = [[name] for name in ("clang-19", "clang") if shutil.which(name)]
    system = system_compiler()
    if system is not None:
        candidates.append(system)
    reasons = []
    for compiler in candidates:
        proc = build(compiler, [*flags, *SANITIZE], sources, tmp_path / "replay-sanitized")
        if proc.returncode == 0:
            break
        reasons.append(f"{compiler[0]}: {proc.stderr.strip().splitlines()[-1:]}")
    else:
        pytest.skip("no compiler builds with -fsanitize=address,undefined "
                    f"({'; '.join(reasons) or 'no C compiler'})")
    replay(tmp_path / "replay-sanitized", files)

"""The source layout: no hand-written source file in the package grows past
MAX_LINES (one concern per file, docs/design.md's file table)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "guardalloc"
MAX_LINES = 700
SUFFIXES = {".c", ".h", ".pyx", ".pxd", ".pxi", ".py"}

# Files still over MAX_LINES while they are being split (paths relative to
# src/guardalloc). Shrink-only: delete an entry when its file is split; a
# stale entry (the file is gone or short now) fails the test.
OVER_LIMIT = {
    "arena.pyx",
    "pool.pyx",
    "pytest_plugin.py",
}


def _hand_written() -> dict[str, int]:
    """Line count of each hand-written source file, by path under the package
    (the .c files Cython generates beside their .pyx are left out)."""
    counts = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.suffix == ".c" and path.with_suffix(".pyx").exists():
            continue
        with path.open("rb") as f:
            counts[path.relative_to(PACKAGE).as_posix()] = sum(1 for _ in f)
    return counts


@pytest.fixture(scope="module")
def line_counts() -> dict[str, int]:
    if not PACKAGE.is_dir():   # pragma: no cover - tests run without the source tree
        pytest.skip("src/guardalloc is not here")
    return _hand_written()


def test_no_source_file_is_over_the_limit(line_counts):
    over = {name: n for name, n in line_counts.items() if n > MAX_LINES and name not in OVER_LIMIT}
    assert not over, f"over {MAX_LINES} lines (split by concern): {over}"


def test_the_allowlist_only_shrinks(line_counts):
    stale = sorted(name for name in OVER_LIMIT if line_counts.get(name, 0) <= MAX_LINES)
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): delete from OVER_LIMIT: {stale}"


def test_the_count_sees_the_c_core(line_counts):
    """The walk finds the hand-written C and skips Cython's output."""
    assert "_c/core.c" in line_counts and "_c/layout.h" in line_counts
    generated = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.c") if p.with_suffix(".pyx").exists()}
    assert "arena.pyx" in line_counts and not generated & line_counts.keys()

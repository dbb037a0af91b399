"""The programs that turn (module, offset) into functions and lines.

llvm-symbolizer first, binutils' addr2line when it is missing (elfutils'
eu-addr2line last): docs/design.md, "Symbolization", says why and what they
cost. Each backend takes a whole batch, one child process per batch (and
addr2line one per module), so that a report costs one start-up, not one per
frame.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Iterable, Optional, Sequence

from guardalloc.symbolize.frames import Location

# Oldest first is wrong: the newest LLVM knows the newest DWARF.
_LLVM_NAMES = ["llvm-symbolizer"] + [f"llvm-symbolizer-{v}" for v in range(30, 13, -1)]
_TIMEOUT = 120.0   # seconds for one batch: a huge libxul-sized module takes a while, a hang does not


class SymbolizerError(RuntimeError):
    """The backend could not be run or answered something unreadable."""


class Backend:
    """Symbolizes batches of (module path, offset) pairs."""
    name = "none"

    def __init__(self, program: str):
        self.program = program

    def symbolize(self, queries: Sequence[tuple[str, int]]) -> list[tuple[Location, ...]]:
        """One tuple of locations per query (innermost inlined function
        first; empty when nothing is known). Raises SymbolizerError when the
        program fails."""
        raise NotImplementedError

    def _run(self, argv: list[str], stdin: str, ok_codes: tuple = (0,)) -> str:
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT,
                                  errors="replace")
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SymbolizerError(f"{self.program}: {exc}") from None
        if done.returncode not in ok_codes:
            raise SymbolizerError(f"{self.program} exited with {done.returncode}: {done.stderr.strip()[:200]}")
        return done.stdout


def _quoted(path: str) -> Optional[str]:
    """path in llvm-symbolizer's input syntax, or None when it cannot be
    written there (a double quote or a line break in it)."""
    if '"' in path or "\n" in path:
        return None
    return f'"{path}"'


class LlvmSymbolizer(Backend):
    """llvm-symbolizer: one process for every module of a batch, JSON out."""
    name = "llvm-symbolizer"

    def symbolize(self, queries: Sequence[tuple[str, int]]) -> list[tuple[Location, ...]]:
        answers: list[tuple[Location, ...]] = [()] * len(queries)
        lines, asked = [], []
        for i, (path, offset) in enumerate(queries):
            q = _quoted(path)
            if q is not None:
                lines.append(f"{q} 0x{offset:x}\n")
                asked.append(i)
        if not asked:
            return answers
        out = self._run([self.program, "--output-style=JSON", "--inlines", "--demangle"],
                        "".join(lines)).splitlines()
        if len(out) != len(asked):
            raise SymbolizerError(f"{self.program}: {len(out)} answers to {len(asked)} questions")
        for i, line in zip(asked, out):
            try:
                answer = json.loads(line)
            except ValueError:
                raise SymbolizerError(f"{self.program}: not JSON: {line[:100]!r}") from None
            answers[i] = tuple(_llvm_location(s) for s in answer.get("Symbol", ()) if _llvm_known(s))
        return answers


def _llvm_known(symbol: dict) -> bool:
    function = symbol.get("FunctionName")
    return bool(function and function != "??") or bool(symbol.get("FileName"))


def _llvm_location(symbol: dict) -> Location:
    name = symbol.get("FunctionName") or None
    return Location(name if name != "??" else None, symbol.get("FileName") or None,
                    symbol.get("Line") or None, symbol.get("Column") or None)


class Addr2line(Backend):
    """binutils' addr2line (or elfutils' eu-addr2line): one process per module."""
    name = "addr2line"

    def symbolize(self, queries: Sequence[tuple[str, int]]) -> list[tuple[Location, ...]]:
        answers: list[tuple[Location, ...]] = [()] * len(queries)
        by_module: dict[str, list[int]] = {}
        for i, (path, _) in enumerate(queries):
            by_module.setdefault(path, []).append(i)
        for path, which in by_module.items():
            if not os.path.isfile(path):
                continue
            # eu-addr2line exits with 1 when some address has no answer, and still answers.
            out = self._run([self.program, "-a", "-f", "-C", "-i", "-e", path],
                            "".join(f"0x{queries[i][1]:x}\n" for i in which), ok_codes=(0, 1))
            parsed = list(_parse_addr2line(out))
            if len(parsed) != len(which):
                raise SymbolizerError(f"{self.program}: {len(parsed)} answers to {len(which)} questions")
            for i, locs in zip(which, parsed):
                answers[i] = locs
        return answers


def _parse_addr2line(out: str) -> Iterable[tuple[Location, ...]]:
    """addr2line -a -f -i's answers: an address line, then function and
    file:line pairs (several when inlined)."""
    current: Optional[list[Location]] = None
    lines = out.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("0x"):
            if current is not None:
                yield tuple(current)
            current = []
            i += 1
            continue
        function = lines[i]
        where = lines[i + 1] if i + 1 < len(lines) else "??:0"
        i += 2
        file, line, column = _file_line_column(where.split(" (discriminator")[0])
        loc = Location(None if function == "??" else function, file, line, column)
        if current is not None and (loc.function or loc.file):
            current.append(loc)
    if current is not None:
        yield tuple(current)


def _file_line_column(where: str) -> tuple[Optional[str], Optional[int], Optional[int]]:
    """"file:line" (binutils) or "file:line:column" (elfutils); "??:0", "??:?": unknown."""
    file, _, last = where.rpartition(":")
    line, column = last, ""
    head, _, before = file.rpartition(":")
    if before.isdigit() and last.isdigit():
        file, line, column = head, before, last
    number = int(line) if line.isdigit() and line != "0" else None
    return (None if file in ("??", "") else file), number, (int(column) if column.isdigit() and column != "0" else None)


def find_backend(preferred: Optional[str] = None) -> Optional[Backend]:
    """The best symbolizer installed: ``preferred`` (a program name or path,
    e.g. from $GUARDALLOC_SYMBOLIZER) when given, else llvm-symbolizer
    (any version on PATH), addr2line, eu-addr2line. None when none is
    installed. Raises SymbolizerError when ``preferred`` is not a program."""
    if preferred:
        path = shutil.which(preferred)
        if path is None:
            raise SymbolizerError(f"symbolizer not found: {preferred!r}")
        base = os.path.basename(path)
        return LlvmSymbolizer(path) if "llvm-symbolizer" in base else Addr2line(path)
    for name in _LLVM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return LlvmSymbolizer(path)
    for name in ("addr2line", "eu-addr2line"):
        path = shutil.which(name)
        if path is not None:
            return Addr2line(path)
    return None

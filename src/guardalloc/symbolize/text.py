"""Rewriting text reports: raw frame lines become symbolized ones (renumbered
as inlined functions add lines), an event's Python and native frames become
one merged stack (symbolize/merge.py), and the SUMMARY line names the first
frame of the report's first stack that is in the user's code (a Python
frame when no native frame is)."""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional

from guardalloc.symbolize.frames import RAW_FRAME, RawFrame, Symbolized, is_user_location
from guardalloc.symbolize.merge import PyFrame, merge, merged_lines, native_title
from guardalloc.symbolize.symbolizer import Symbolizer

# "==1234== guardalloc: ..." opens a report.
REPORT_START = re.compile(r"^==\d+== ?(?:ERROR: )?guardalloc: ")
SUMMARY = re.compile(r"^(?P<indent>\s*)SUMMARY: guardalloc: (?P<kind>\S+)(?P<rest>.*)$")
# One raw frame after a label ("  faulting instruction: 0x... (prog+0x..)").
SINGLE_FRAME = re.compile(r"^(?P<prefix>\s*[A-Za-z][\w ]*: )(?P<body>0x[0-9a-fA-F]+ \(.*\))\s*$")
# A frame line already symbolized ("#0 0x... in function ...").
SYMBOLIZED_FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-fA-F]+ in ")
# The title of a stack: "  allocated at:", "  WRITE by thread 12 (python):".
TITLE = re.compile(r"^\s+\S.*:$")


def summary_line(kind: str, stack: list[Symbolized], indent: str = "",
                 python: Optional[list[PyFrame]] = None) -> Optional[str]:
    """``SUMMARY: guardalloc: KIND FUNCTION FILE:LINE`` naming the innermost
    location of stack in the user's code (frames.is_user_location), else the
    innermost Python frame of the same event (python), else the first
    location known; None when no frame has one."""
    known = [(f, loc) for f in stack for loc in f.locations]
    user = next(((f, loc) for f, loc in known if is_user_location(f, loc)), None)
    if user is None and python:
        return f"{indent}SUMMARY: guardalloc: {kind} {python[0].function or '??'} {python[0].where()}"
    if not known:
        return None
    frame, loc = user or known[0]
    where = loc.where() or (f"({frame.raw.module}+0x{frame.raw.offset:x})" if frame.raw.module else "")
    return f"{indent}SUMMARY: guardalloc: {kind} {loc.function or '??'} {where}".rstrip()


def user_location(stack: list[Symbolized]) -> Optional[str]:
    """"FUNCTION FILE:LINE" of the innermost location of stack in the user's
    code, or None when no frame is the user's."""
    for frame in stack:
        for loc in frame.locations:
            if is_user_location(frame, loc):
                return f"{loc.function or '??'} {loc.where() or ''}".rstrip()
    return None


class TextRewriter:
    """Feeds lines of text (reports mixed with anything else) and yields
    them with every raw stack symbolized; other lines pass unchanged."""

    def __init__(self, symbolizer: Symbolizer):
        self.symbolizer = symbolizer
        self._stack: list[tuple[str, RawFrame]] = []   # raw frame lines waiting for the stack's end
        self._first_stack: Optional[list[Symbolized]] = None   # the current report's first stack
        self._first_python: Optional[list[PyFrame]] = None     # its Python frames
        # A stack's title held back with the Python frames under it, until
        # it is known whether native frames of the same event follow.
        self._title: Optional[str] = None
        self._python: list[str] = []
        self._merging = False   # the native frames now read follow self._title's Python frames

    def feed(self, line: str) -> Iterator[str]:
        """The output lines for one input line (without line ends)."""
        m = RAW_FRAME.match(line)
        if m is not None:
            if m.group("num") == "0" and self._stack:
                yield from self._flush()
            if not self._stack and not self._merging:
                yield from self._release()
            frame = RawFrame.parse(line)
            assert frame is not None   # RAW_FRAME matched
            self._stack.append((m.group("indent"), frame))
            return
        yield from self._flush()
        if self._title is not None and PyFrame.parse(line) is not None:
            self._python.append(line)
            return
        if TITLE.match(line):
            if self._title is not None and self._python and line == native_title(self._title):
                self._merging = True
                return
            yield from self._release()
            self._title = line
            return
        yield from self._release()
        single = SINGLE_FRAME.match(line)
        if single is not None:
            frame = RawFrame.parse(single.group("body"))
            if frame is not None:
                [done] = self.symbolizer.symbolize([frame])
                if done.locations:
                    yield single.group("prefix") + done.lines(0, "")[0].split(" ", 1)[1]
                    return
        if REPORT_START.match(line):
            self._first_stack = None
            self._first_python = None
        s = SUMMARY.match(line)
        if s is not None and (self._first_stack is not None or self._first_python):
            better = summary_line(s.group("kind"), self._first_stack or [], s.group("indent"), self._first_python)
            if better is not None:
                yield better
                return
        yield line

    def close(self) -> Iterator[str]:
        """The lines still held (a stack at the very end of the input)."""
        yield from self._flush()
        yield from self._release()

    def _held_python(self) -> list[PyFrame]:
        frames = [PyFrame.parse(line) for line in self._python]
        return [f for f in frames if f is not None]

    def _release(self) -> Iterator[str]:
        """The held title and its Python frames, as they came."""
        if self._title is None:
            return
        if self._python and self._first_python is None:
            self._first_python = self._held_python()
        yield self._title
        yield from self._python
        self._title, self._python, self._merging = None, [], False

    def _flush(self) -> Iterator[str]:
        if not self._stack:
            return
        held, self._stack = self._stack, []
        frames = self.symbolizer.symbolize([frame for _, frame in held])
        if self._first_stack is None:
            self._first_stack = frames
        indent = held[0][0]
        if self._merging:
            assert self._title is not None   # set with _merging
            title, python = self._title, self._held_python()
            merged = merge(frames, python)
            if merged is not None:
                if self._first_python is None:
                    self._first_python = python
                self._title, self._python, self._merging = None, [], False
                yield title
                yield from merged_lines(merged, indent)
                return
            yield from self._release()
            yield native_title(title)
        number = 0
        for (indent, _), frame in zip(held, frames):
            out = frame.lines(number, indent)
            number += len(out)
            yield from out


def symbolize_text(text: str, symbolizer: Optional[Symbolizer] = None) -> str:
    """text with every raw stack symbolized and SUMMARY lines naming the
    user's frame. Lines that are not raw frames are left as they are."""
    rewriter = TextRewriter(symbolizer or Symbolizer())
    out: list[str] = []
    lines: Iterable[str] = text.split("\n")
    for line in lines:
        out.extend(rewriter.feed(line))
    out.extend(rewriter.close())
    return "\n".join(out)

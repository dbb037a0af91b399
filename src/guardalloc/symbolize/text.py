"""Rewriting text reports: raw frame lines become symbolized ones (renumbered
as inlined functions add lines), and the SUMMARY line names the first frame
of the report's first stack that is in the user's code."""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional

from guardalloc.symbolize.frames import RAW_FRAME, RawFrame, Symbolized, is_user_location
from guardalloc.symbolize.symbolizer import Symbolizer

# "==1234== guardalloc: ..." opens a report.
REPORT_START = re.compile(r"^==\d+== ?(?:ERROR: )?guardalloc: ")
SUMMARY = re.compile(r"^(?P<indent>\s*)SUMMARY: guardalloc: (?P<kind>\S+)(?P<rest>.*)$")
# One raw frame after a label ("  faulting instruction: 0x... (prog+0x..)").
SINGLE_FRAME = re.compile(r"^(?P<prefix>\s*[A-Za-z][\w ]*: )(?P<body>0x[0-9a-fA-F]+ \(.*\))\s*$")
# A frame line already symbolized ("#0 0x... in function ...").
SYMBOLIZED_FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-fA-F]+ in ")


def summary_line(kind: str, stack: list[Symbolized], indent: str = "") -> Optional[str]:
    """``SUMMARY: guardalloc: KIND FUNCTION FILE:LINE`` naming the innermost
    location of stack in the user's code (frames.is_user_location), else the
    first location known; None when no frame has one."""
    known = [(f, loc) for f in stack for loc in f.locations]
    if not known:
        return None
    frame, loc = next(((f, loc) for f, loc in known if is_user_location(f, loc)), known[0])
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

    def feed(self, line: str) -> Iterator[str]:
        """The output lines for one input line (without line ends)."""
        m = RAW_FRAME.match(line)
        if m is not None:
            if m.group("num") == "0" and self._stack:
                yield from self._flush()
            frame = RawFrame.parse(line)
            assert frame is not None   # RAW_FRAME matched
            self._stack.append((m.group("indent"), frame))
            return
        yield from self._flush()
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
        s = SUMMARY.match(line)
        if s is not None and self._first_stack is not None:
            better = summary_line(s.group("kind"), self._first_stack, s.group("indent"))
            if better is not None:
                yield better
                return
        yield line

    def close(self) -> Iterator[str]:
        """The lines still held (a stack at the very end of the input)."""
        yield from self._flush()

    def _flush(self) -> Iterator[str]:
        if not self._stack:
            return
        held, self._stack = self._stack, []
        frames = self.symbolizer.symbolize([frame for _, frame in held])
        if self._first_stack is None:
            self._first_stack = frames
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

"""One stack from a native stack and the Python frames of the same event.

A report of a Python process prints, for the access, the allocation and a
free, the Python frames (innermost first, ``#0 in FUNCTION FILE:LINE``, the
first frame a call of the interpreter from C runs marked ``(called from
C)``) and then the native frames under the same title plus ``(native)``.
Every native ``_PyEval_EvalFrameDefault`` frame runs Python frames: the
innermost one runs the Python frames up to the first entry frame, the next
one those up to the next entry frame, and so on (3.11's ``is_entry``; 3.12+
a frame whose caller is the C stack's shim frame). Merging replaces each
such native frame by the Python frames it runs, as py-spy and memray do;
Python frames left over (the native stack was cut shorter) follow the last
native frame. When the Python frames end at a launcher (the outermost one
marked ``(launcher below)``: ``guardalloc run``'s own runpy frames were not
walked), the native frames outside the interpreter frame that runs it are the
launcher's interpreter: the merged stack ends there, with a line saying how
many were left out (the raw stacks keep them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from guardalloc.symbolize.frames import Symbolized

# "    #2 in main /tmp/app.py:14 (called from C)"
PY_FRAME = re.compile(r"^(?P<indent>\s*)#(?P<num>\d+) in (?P<function>\S+) (?P<where>.*?)"
                      r"(?P<entry> \(called from C\))?(?P<launcher> \(launcher below\))?\s*$")
ENTRY_MARK = " (called from C)"
LAUNCHER_MARK = " (launcher below)"
# The interpreter's function that runs Python frames.
EVAL_FUNCTION = "_PyEval_EvalFrameDefault"


@dataclass(frozen=True)
class PyFrame:
    """One Python frame of a report."""
    function: Optional[str]
    file: Optional[str]
    line: Optional[int]
    entry: bool = False
    launcher: bool = False   # the program's outermost frame; the launcher's frames are outside it

    @classmethod
    def parse(cls, text: str) -> Optional["PyFrame"]:
        """The Python frame of a report line, or None when it is not one."""
        m = PY_FRAME.match(text)
        if m is None or m.group("where").startswith("0x"):
            return None
        where = m.group("where")
        file, _, line = where.rpartition(":")
        if not file or not line.isdigit():
            file, line = where, ""
        return cls(m.group("function"), file or None, int(line) if line and line != "0" else None,
                   bool(m.group("entry")), bool(m.group("launcher")))

    @classmethod
    def from_json(cls, frame: dict) -> "PyFrame":
        """A frame of a JSON report's stacks.*_python."""
        line = frame.get("line")
        return cls(frame.get("function"), frame.get("file"), line if isinstance(line, int) else None,
                   frame.get("entry") is True, frame.get("launcher_below") is True)

    def where(self) -> str:
        """"FILE:LINE", or what of it is known: FILE alone when the line is
        not (the core's placeholder for a freed code object reads as one)."""
        if self.line is None and self.file is not None:
            return self.file
        return f"{self.file or '??'}:{self.line or 0}"

    def text(self, number: int, indent: str = "    ", mark_entry: bool = True) -> str:
        """The frame's report line."""
        tail = (ENTRY_MARK if self.entry else "") + (LAUNCHER_MARK if self.launcher else "") if mark_entry else ""
        return f"{indent}#{number} in {self.function or '??'} {self.where()}{tail}"

    def as_json(self) -> dict:
        """The frame as a merged stack's entry ("python")."""
        return {"python": True, "function": self.function, "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Omitted:
    """The launcher's native frames a merged stack leaves out."""
    frames: int   # report lines (a native frame with inlined functions is one per function)

    def text(self, indent: str = "    ") -> str:
        """The line standing for them."""
        return f"{indent}... {self.frames} launcher frame{'s' if self.frames != 1 else ''} not shown"

    def as_json(self) -> dict:
        """The merged stack's entry standing for them."""
        return {"omitted": self.frames, "launcher": True}


def _runs_python(frame: Symbolized) -> bool:
    return any(loc.function == EVAL_FUNCTION for loc in frame.locations)


def merge(native: Sequence[Symbolized], python: Sequence[PyFrame]) -> Optional[list]:
    """The merged stack, innermost first: Symbolized frames and PyFrames,
    ending with an Omitted when the Python frames end at a launcher and
    native frames of it follow; None when no native frame runs Python (the
    interpreter's symbols are unknown, or the stacks are not of one event):
    then there is nothing to merge them at."""
    if not python or not any(_runs_python(f) for f in native):
        return None
    out: list = []
    i = 0
    for k, frame in enumerate(native):
        if not _runs_python(frame) or i >= len(python):
            out.append(frame)
            continue
        while i < len(python):
            out.append(python[i])
            i += 1
            if python[i - 1].entry:
                break
        if python[i - 1].launcher:
            rest = sum(max(1, len(f.locations)) for f in native[k + 1:])
            if rest:
                out.append(Omitted(rest))
            return out
    out.extend(python[i:])
    return out


def merged_lines(stack: Sequence, indent: str = "    ") -> list[str]:
    """A merged stack's report lines, renumbered (a native frame with
    inlined functions takes one line per function)."""
    lines: list[str] = []
    for frame in stack:
        if isinstance(frame, Omitted):
            lines.append(frame.text(indent))
        elif isinstance(frame, PyFrame):
            lines.append(frame.text(len(lines), indent, mark_entry=False))
        else:
            lines.extend(frame.lines(len(lines), indent))
    return lines


def merged_json(stack: Sequence) -> list[dict]:
    """A merged stack as JSON: native frames as the "symbolized" stacks hold
    them ({"frame", "locations", "problem"}), Python frames as
    {"python": true, "function", "file", "line"}, the launcher's frames left
    out as {"omitted": N, "launcher": true}."""
    return [frame.as_json() for frame in stack]


def native_title(title: str) -> str:
    """The title of an event's native frames after its Python frames:
    "  allocated at:" -> "  allocated at (native):"."""
    return title[:-1] + " (native):"

"""Frames: the raw form the fault handler writes (no symbol lookup in a
dying process), and the symbolized form a report is rewritten into.

A raw frame, in a text report and in a JSON report's stacks, is what
AddressSanitizer prints unsymbolized, so the tools that read those read
these::

    #3 0x55c3f0a0f218 (/tmp/prog+0x1218) (BuildId: 8a7f...)

pc is the address of the instruction (a return address less one: the call);
the offset is pc less the module's load bias, the address the module's own
symbol tables and DWARF use. A symbolized frame prints as ASan's do, one line
per inlined function, innermost first::

    #3 0x55c3f0a0f218 in shapes::Grid::poke(int, int) /src/grid.cpp:6:40
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

# "#3 0x55c3f0a0f218 (/tmp/prog+0x1218) (BuildId: 8a7f...)", "#0 0x1234 (<unknown module>)"
RAW_FRAME = re.compile(
    r"^(?P<indent>\s*)#(?P<num>\d+) (?P<pc>0x[0-9a-fA-F]+) +\((?:(?P<module>.+)\+(?P<offset>0x[0-9a-fA-F]+)"
    r"|(?P<unknown><unknown module>))\)(?: \(BuildId: (?P<build_id>[0-9a-fA-F]+)\))?\s*$")
# A raw frame without its number (JSON stacks hold these).
RAW_FRAME_BODY = re.compile(
    r"^(?P<pc>0x[0-9a-fA-F]+) +\((?:(?P<module>.+)\+(?P<offset>0x[0-9a-fA-F]+)|(?P<unknown><unknown module>))\)"
    r"(?: \(BuildId: (?P<build_id>[0-9a-fA-F]+)\))?$")


@dataclass(frozen=True)
class RawFrame:
    """One code address as the handler recorded it."""
    pc: int
    module: Optional[str] = None      # path of the ELF file, None when no module holds pc
    offset: Optional[int] = None      # pc less the module's load bias
    build_id: Optional[str] = None    # lowercase hex, None when the module has none

    @classmethod
    def parse(cls, text: str) -> Optional["RawFrame"]:
        """The raw frame in ``text`` (with or without its ``#N``), or None when
        it is not one (an already symbolized frame, another line)."""
        m = RAW_FRAME.match(text) or RAW_FRAME_BODY.match(text.strip())
        if m is None:
            return None
        if m.group("unknown"):
            return cls(int(m.group("pc"), 16))
        bid = m.group("build_id")
        return cls(int(m.group("pc"), 16), m.group("module"), int(m.group("offset"), 16),
                   bid.lower() if bid else None)

    def body(self) -> str:
        """The raw frame's text without its number."""
        if self.module is None or self.offset is None:
            return f"0x{self.pc:x} (<unknown module>)"
        tail = f" (BuildId: {self.build_id})" if self.build_id else ""
        return f"0x{self.pc:x} ({self.module}+0x{self.offset:x}){tail}"


@dataclass(frozen=True)
class Location:
    """One function a code address is in (several when calls were inlined)."""
    function: Optional[str] = None   # demangled
    file: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None

    def where(self) -> Optional[str]:
        """"file:line[:column]", or None without a file."""
        if not self.file:
            return None
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")

    def as_json(self) -> dict:
        """The location as a JSON object (docs/report-schema.json, "symbolized")."""
        return {"function": self.function, "file": self.file, "line": self.line, "column": self.column}


@dataclass(frozen=True)
class Symbolized:
    """A raw frame and what it means: its locations, innermost inlined
    function first (empty when nothing is known), or why there are none."""
    raw: RawFrame
    locations: tuple = field(default=())
    problem: Optional[str] = None    # e.g. "build-id differs: the file changed since the report"

    def lines(self, first_number: int, indent: str = "    ") -> list[str]:
        """The frame as ASan prints it, one numbered line per location
        (the raw frame's line when nothing is known)."""
        if not self.locations:
            return [f"{indent}#{first_number} {self.raw.body()}"]
        out = []
        for i, loc in enumerate(self.locations):
            text = f"{indent}#{first_number + i} 0x{self.raw.pc:x} in {loc.function or '??'}"
            where = loc.where()
            if where is not None:
                text += f" {where}"
            elif self.raw.module is not None and self.raw.offset is not None:
                text += f" ({self.raw.module}+0x{self.raw.offset:x})"
            out.append(text)
        return out

    def as_json(self) -> dict:
        """The frame in a JSON report's "symbolized" stacks."""
        return {"frame": self.raw.body(), "locations": [loc.as_json() for loc in self.locations],
                "problem": self.problem}


# Libraries of the runtime, never "the user's code" in a SUMMARY line.
_RUNTIME = re.compile(r"^(libc|libm|libpthread|libdl|ld-linux[^/]*|libstdc\+\+|libgcc_s|libffi|libpython[0-9.]*[dm]?"
                      r"|libguardalloc[^/]*|python[0-9.]*)(\.so.*|)$")
# guardalloc's own extension modules and preload library.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SYSTEM_FILES = ("/usr/include/", "./nptl/", "../sysdeps/", "./string/", "./malloc/", "../string/")


def is_user_location(frame: Symbolized, location: Optional[Location] = None) -> bool:
    """False for code of the runtime (libc, the C++ runtime, the dynamic
    loader, libffi, the interpreter, guardalloc and its extension modules)
    or of a system header or libc source file; True otherwise."""
    module = frame.raw.module
    if module is None:
        return False
    if (_RUNTIME.match(os.path.basename(module)) or module.startswith(_PACKAGE_DIR)
            or "/lib-dynload/" in module):   # the interpreter's own extension modules (_ctypes)
        return False
    return not (location is not None and location.file and location.file.startswith(_SYSTEM_FILES))

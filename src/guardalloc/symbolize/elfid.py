"""The GNU build-id of an ELF file: what a raw frame's module is checked
against before it is symbolized (a library rebuilt or upgraded since the
report was written must not lend its lines to the old code)."""

from __future__ import annotations

import struct
from typing import Optional

_NT_GNU_BUILD_ID = 3
_PT_NOTE = 4


def build_id(path: str) -> Optional[str]:
    """The build-id of the ELF file at ``path`` as lowercase hex, or None
    when the file cannot be read, is not a 64- or 32-bit ELF file, or has no
    build-id note. Never raises for a bad or missing file."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            wide = ident[4] == 2
            end = "<" if ident[5] == 1 else ">"
            if wide:
                phoff, = struct.unpack_from(end + "Q", ident, 32)
                phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
            else:
                phoff, = struct.unpack_from(end + "I", ident, 28)
                phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
            if phnum == 0 or phnum > 4096 or phentsize < (56 if wide else 32):
                return None
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                entry = table[i * phentsize:(i + 1) * phentsize]
                if len(entry) < phentsize:
                    return None
                if wide:
                    ptype, _, offset, _, _, filesz = struct.unpack_from(end + "IIQQQQ", entry)
                else:
                    ptype, offset, _, _, filesz = struct.unpack_from(end + "IIIII", entry)
                if ptype != _PT_NOTE or filesz > 1 << 20:
                    continue
                f.seek(offset)
                found = _build_id_in_notes(f.read(filesz), end)
                if found is not None:
                    return found
    except OSError:
        return None
    return None


def _build_id_in_notes(notes: bytes, end: str) -> Optional[str]:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from(end + "III", notes, pos)
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        pos = desc_at + ((descsz + 3) & ~3)
        if pos > len(notes):
            return None
        if ntype == _NT_GNU_BUILD_ID and notes[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
            return notes[desc_at:desc_at + descsz].hex()
    return None

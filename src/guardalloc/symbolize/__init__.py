"""Symbolization outside the dying process.

The fault handler writes raw frames (module, offset, build-id: no symbol
lookup, no lock, in a process that is dying); this package turns them into
functions, files and lines, inlined frames and demangled C++ names, in a
process that is not: the ``exec`` launcher, the pytest plugin's session,
and ``python -m guardalloc symbolize`` / ``report``.

- frames: the raw and the symbolized frame, and which frames are the user's
- elfid: a file's build-id
- backends: llvm-symbolizer, addr2line (docs/design.md, "Symbolization")
- cache: answers kept by build-id
- symbolizer: the Symbolizer (build-id checks, cache, batches)
- text, reports: rewriting text and JSON reports
"""

from guardalloc.symbolize.backends import SymbolizerError, find_backend
from guardalloc.symbolize.frames import Location, RawFrame, Symbolized
from guardalloc.symbolize.reports import symbolize_report
from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import symbolize_text

__all__ = ["Location", "RawFrame", "Symbolized", "Symbolizer", "SymbolizerError", "find_backend",
           "symbolize_report", "symbolize_text"]

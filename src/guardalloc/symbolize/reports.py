"""Symbolizing JSON reports (docs/report-schema.json): the raw frames stay,
the symbolized ones are added under "symbolized", and "text" is rewritten
as the text report would be."""

from __future__ import annotations

from typing import Optional

from guardalloc.symbolize.frames import RawFrame
from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import summary_line, symbolize_text, user_location

# The stacks whose frames are raw frames; the first present is the one a
# SUMMARY line names (the access, this free, else the allocation).
NATIVE_STACKS = ("access_native", "this_free_native", "allocated_native", "freed_native")


def raw_stacks(report: dict) -> dict[str, list[RawFrame]]:
    """The report's native stacks as raw frames, by name (stacks.*_native;
    the pre-version-3 "faulting_instruction" as a one-frame "access_native"
    when the report has no access stack). Frames that are not raw (a report
    written before version 3: "0x..: function+0x.. (library)") are left out."""
    stacks = report.get("stacks") or {}
    found: dict[str, list[RawFrame]] = {}
    for name in NATIVE_STACKS:
        frames = stacks.get(name) if isinstance(stacks, dict) else None
        if isinstance(frames, list):
            parsed = [RawFrame.parse(f) for f in frames if isinstance(f, str)]
            found[name] = [f for f in parsed if f is not None]
    pc = report.get("faulting_instruction")
    if "access_native" not in found and isinstance(pc, str):
        frame = RawFrame.parse(pc)
        if frame is not None:
            found["access_native"] = [frame]
    return found


def symbolize_report(report: dict, symbolizer: Optional[Symbolizer] = None) -> dict:
    """A copy of report with "symbolized" added: {"symbolizer": the backend's
    name, "stacks": {name: [{"frame", "locations": [{"function", "file",
    "line", "column"}, innermost first], "problem"}]}, "summary": the SUMMARY
    line or null, "location": "FUNCTION FILE:LINE" of the first frame in the
    user's code or null}, and "text" symbolized. A report that is not a JSON object
    raises TypeError."""
    if not isinstance(report, dict):
        raise TypeError(f"a report is a JSON object, not {type(report).__name__}")
    symbolizer = symbolizer or Symbolizer()
    stacks = raw_stacks(report)
    flat = [f for frames in stacks.values() for f in frames]
    done = iter(symbolizer.symbolize(flat))
    symbolized = {name: [next(done) for _ in frames] for name, frames in stacks.items()}
    first = next((symbolized[n] for n in NATIVE_STACKS if symbolized.get(n)), [])
    out = dict(report)
    out["symbolized"] = {
        "symbolizer": symbolizer.backend.name if symbolizer.backend is not None else None,
        "stacks": {name: [f.as_json() for f in frames] for name, frames in symbolized.items()},
        "summary": summary_line(str(report.get("kind")), first),
        "location": user_location(first),
    }
    if isinstance(report.get("text"), str):
        out["text"] = symbolize_text(report["text"], symbolizer)
    return out

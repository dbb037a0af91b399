"""Symbolizing JSON reports (docs/report-schema.json): the raw frames stay,
the symbolized ones are added under "symbolized", and "text" is rewritten
as the text report would be."""

from __future__ import annotations

from typing import Optional

from guardalloc.symbolize.frames import RawFrame, Symbolized
from guardalloc.symbolize.merge import PyFrame, merge, merged_json
from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import summary_line, symbolize_text, user_location

# The stacks whose frames are raw frames; the first present is the one a
# SUMMARY line names (the access, this free, else the allocation).
NATIVE_STACKS = ("access_native", "this_free_native", "allocated_native", "freed_native")
# The events whose native and Python frames are merged: EVENT_native + EVENT_python.
EVENTS = ("access", "this_free", "allocated", "freed")


def python_stacks(report: dict) -> dict[str, list[PyFrame]]:
    """The report's Python frames by event (stacks.EVENT_python, innermost
    first; an Arena's rendered "allocated"/"freed" traceback when the event
    has no such list)."""
    stacks = report.get("stacks") or {}
    found: dict[str, list[PyFrame]] = {}
    if not isinstance(stacks, dict):
        return found
    for event in EVENTS:
        frames = stacks.get(f"{event}_python")
        if isinstance(frames, list):
            found[event] = [PyFrame.from_json(f) for f in frames if isinstance(f, dict)]
        elif isinstance(stacks.get(event), str):
            parsed = [PyFrame.parse(line) for line in stacks[event].splitlines()]
            found[event] = [f for f in parsed if f is not None]
    return {event: frames for event, frames in found.items() if frames}


def merged_stacks(symbolized: dict[str, list[Symbolized]], python: dict[str, list[PyFrame]]) -> dict:
    """Each event's merged stack (merge.merged_json) where it has both kinds
    of frame and a native frame that runs Python."""
    out = {}
    for event in EVENTS:
        merged = merge(symbolized.get(f"{event}_native") or [], python.get(event) or [])
        if merged is not None:
            out[event] = merged_json(merged)
    return out


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
    "line", "column"}, innermost first], "problem"}]}, "merged": {event:
    the event's native and Python frames as one stack, innermost first
    (merge.merged_json)}, "summary": the SUMMARY line or null, "location":
    "FUNCTION FILE:LINE" of the first frame in the user's code or null}, and
    "text" symbolized. The raw native and Python stacks stay as they were.
    A report that is not a JSON object raises TypeError."""
    if not isinstance(report, dict):
        raise TypeError(f"a report is a JSON object, not {type(report).__name__}")
    symbolizer = symbolizer or Symbolizer()
    stacks = raw_stacks(report)
    flat = [f for frames in stacks.values() for f in frames]
    done = iter(symbolizer.symbolize(flat))
    symbolized = {name: [next(done) for _ in frames] for name, frames in stacks.items()}
    first_name = next((n for n in NATIVE_STACKS if symbolized.get(n)), None)
    first = symbolized[first_name] if first_name is not None else []
    python = python_stacks(report)
    first_python = python.get(first_name[:-len("_native")]) if first_name is not None else None
    if first_python is None:
        first_python = next((python[e] for e in EVENTS if python.get(e)), None)
    out = dict(report)
    location = user_location(first)
    if location is None and first_python:
        location = f"{first_python[0].function or '??'} {first_python[0].where()}"
    out["symbolized"] = {
        "symbolizer": symbolizer.backend.name if symbolizer.backend is not None else None,
        "stacks": {name: [f.as_json() for f in frames] for name, frames in symbolized.items()},
        "merged": merged_stacks(symbolized, python),
        "summary": summary_line(str(report.get("kind")), first, "", first_python),
        "location": location,
    }
    if isinstance(report.get("text"), str):
        out["text"] = symbolize_text(report["text"], symbolizer)
    return out

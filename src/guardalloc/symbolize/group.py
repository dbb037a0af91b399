"""Grouping many processes' JSON reports by signature: the bug kind and the
top frames of the stack that names where it happened, so that a hundred
reports of one bug (pytest-xdist workers, CI shards, a fleet's log_path)
read as one."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from guardalloc.symbolize.merge import PyFrame
from guardalloc.symbolize.reports import NATIVE_STACKS, python_stacks, symbolize_report
from guardalloc.symbolize.symbolizer import Symbolizer


@dataclass
class Group:
    """Reports that share a signature; the first one stands for them all."""
    signature: tuple
    reports: list = field(default_factory=list)   # symbolized reports, in the order read
    sources: list = field(default_factory=list)   # "file:line" of each

    @property
    def representative(self) -> dict:
        return self.reports[0]


def read_reports(paths: Iterable[str]) -> Iterator[tuple[str, dict]]:
    """("file:line", report) for every guardalloc JSON report in the files
    and directories (recursively, every regular file) given. Lines that are
    not guardalloc reports are skipped. Raises OSError for a path that
    cannot be read."""
    for path in paths:
        if os.path.isdir(path):
            files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
        else:
            files = [path]
        for name in files:
            if os.path.isdir(path) and not os.path.isfile(name):
                continue
            with open(name, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if not line.lstrip().startswith("{"):
                        continue
                    try:
                        report = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(report, dict) and report.get("tool") == "guardalloc":
                        yield f"{name}:{number}", report


def _python_top(frames: list[PyFrame], depth: int) -> tuple:
    return tuple((f.function, os.path.basename(f.file or "")) for f in frames[:depth])


def signature(report: dict, depth: int = 3) -> tuple:
    """(kind, access, frames): the top ``depth`` frames of the report's first
    native stack (symbolized: function and file; raw: module and offset) --
    of that event's Python frames when it has some (in a Python process the
    native ones are the interpreter's and libffi's, alike for every bug) --
    or of its Python traceback when it has no native stack."""
    kind = (report.get("kind"), "free" if report.get("access") == "free" else "access")
    stacks = (report.get("symbolized") or {}).get("stacks") or {}
    python = python_stacks(report)
    for name in NATIVE_STACKS:
        frames = stacks.get(name)
        event = name[:-len("_native")]
        if frames and python.get(event):
            return (*kind, name, _python_top(python[event], depth))
        if frames:
            top: list[tuple] = []
            for frame in frames:
                locs = frame.get("locations") or []
                if locs:
                    top.extend((loc.get("function"), os.path.basename(loc.get("file") or "")) for loc in locs)
                else:
                    top.append((frame.get("frame", "").split(" ", 1)[-1].split(" (BuildId")[0],))
                if len(top) >= depth:
                    break
            return (*kind, name, tuple(top[:depth]))
    traceback = (report.get("stacks") or {}).get("allocated")
    if isinstance(traceback, str) and "File " in traceback:   # before schema version 6: oldest frame first
        lines = [line.strip() for line in traceback.splitlines() if line.strip().startswith("File ")]
        return (*kind, "allocated", tuple(lines[-depth:]))
    for event in ("access", "this_free", "allocated", "freed"):
        if python.get(event):
            return (*kind, event, _python_top(python[event], depth))
    return (*kind, None, ())


def group_reports(reports: Iterable[tuple[str, dict]], symbolizer: Optional[Symbolizer] = None,
                  depth: int = 3) -> list[Group]:
    """The reports symbolized and grouped by signature, largest group first
    (ties: the order their first report was read)."""
    symbolizer = symbolizer or Symbolizer()
    groups: dict[tuple, Group] = {}
    for source, report in reports:
        done = symbolize_report(report, symbolizer)
        key = signature(done, depth)
        group = groups.setdefault(key, Group(key))
        group.reports.append(done)
        group.sources.append(source)
    return sorted(groups.values(), key=lambda g: -len(g.reports))

"""``python -m guardalloc report FILES|DIR``: JSON reports from many
processes, symbolized and grouped by signature; each group's count and one
report that stands for it."""

from __future__ import annotations

import argparse
import sys

from guardalloc.cli.main import int_at_least
from guardalloc.symbolize.backends import SymbolizerError
from guardalloc.symbolize.cli import add_symbolizer_arguments, make_symbolizer
from guardalloc.symbolize.group import group_reports, read_reports


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("the reports of a pytest --guardalloc-report-dir run, grouped by bug", "guardalloc-reports/"),
    ("signatures of the top 5 frames, from two runs' files", "--frames 5 run1.json run2.json"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report command's arguments."""
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="JSON report files (log_path) or directories holding them")
    parser.add_argument("--frames", type=int_at_least(1, maximum=64), default=3, metavar="N",
                        help="top frames that make a signature (default 3)")
    add_symbolizer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the groups, largest first. Returns 0 (1 when no report was
    found), or 2 with one line when a path cannot be read."""
    try:
        symbolizer = make_symbolizer(args)
    except SymbolizerError as exc:
        print(f"guardalloc report: {exc}", file=sys.stderr)
        return 2
    try:
        groups = group_reports(read_reports(args.paths), symbolizer, args.frames)
    except OSError as exc:
        print(f"guardalloc report: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if not groups:
        print("guardalloc report: no guardalloc report found in " + ", ".join(args.paths), file=sys.stderr)
        return 1
    total = sum(len(g.reports) for g in groups)
    print(f"{total} report(s), {len(groups)} distinct")
    for i, group in enumerate(groups, 1):
        rep = group.representative
        pids = sorted({int(r["pid"]) for r in group.reports if isinstance(r.get("pid"), int)})
        tests = sorted({str((r.get("test") or {}).get("nodeid")) for r in group.reports
                        if (r.get("test") or {}).get("nodeid") is not None})
        summary = rep.get("symbolized", {}).get("summary") or f"SUMMARY: guardalloc: {rep.get('kind')}"
        print()
        print(f"#{i}: {len(group.reports)} report(s) -- {summary.replace('SUMMARY: guardalloc: ', '')}")
        print(f"  processes: {len(pids)} ({', '.join(map(str, pids[:8]))}{', ...' if len(pids) > 8 else ''})")
        if tests:
            print(f"  tests: {', '.join(tests[:5])}{', ...' if len(tests) > 5 else ''}")
        print(f"  first: {group.sources[0]}")
        for line in str(rep.get("text", "")).rstrip("\n").splitlines():
            print("  | " + line)
    for error in symbolizer.errors:
        print(f"guardalloc report: {error}", file=sys.stderr)
    return 0

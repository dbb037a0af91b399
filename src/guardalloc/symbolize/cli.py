"""``python -m guardalloc symbolize [FILE...]``: a filter that symbolizes
the raw frames of text and JSON reports (from files, or stdin), passing
every other line through."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterable, Optional, TextIO

from guardalloc.symbolize.backends import SymbolizerError, find_backend
from guardalloc.symbolize.reports import symbolize_report
from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import TextRewriter


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("a saved text report, frames as functions and lines", "crash.txt"),
    ("JSON reports with addr2line; each gets a \"symbolized\" member", "--symbolizer addr2line reports.1234.json"),
)


def add_symbolizer_arguments(parser: argparse.ArgumentParser) -> None:
    """--symbolizer and --no-cache (shared with the report command)."""
    parser.add_argument("--symbolizer", metavar="PROGRAM",
                        help="llvm-symbolizer or addr2line to use (default: $GUARDALLOC_SYMBOLIZER, else "
                             "llvm-symbolizer, else addr2line)")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not read or write the symbol cache ($GUARDALLOC_CACHE_DIR, "
                             "default ~/.cache/guardalloc/symbols)")


def make_symbolizer(args: argparse.Namespace) -> Symbolizer:
    """The Symbolizer the arguments ask for. Raises SymbolizerError when
    --symbolizer names no program."""
    backend = find_backend(args.symbolizer) if args.symbolizer else None
    return Symbolizer(backend, cache_dir=None) if args.no_cache else Symbolizer(backend)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The symbolize command's arguments."""
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="text or JSON-lines reports (default, or '-': standard input)")
    add_symbolizer_arguments(parser)


def _json_report(line: str) -> Optional[dict]:
    if not line.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("tool") == "guardalloc" else None


def symbolize_stream(lines: Iterable[str], out: TextIO, symbolizer: Symbolizer) -> None:
    """Write lines to out with text reports' raw stacks symbolized and JSON
    reports (one per line) given their "symbolized" member."""
    rewriter = TextRewriter(symbolizer)
    for raw in lines:
        line = raw.rstrip("\n")
        report = _json_report(line)
        if report is not None:
            for held in rewriter.close():
                out.write(held + "\n")
            out.write(json.dumps(symbolize_report(report, symbolizer)) + "\n")
        else:
            for done in rewriter.feed(line):
                out.write(done + "\n")
        out.flush()
    for held in rewriter.close():
        out.write(held + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    """Symbolize the files (or stdin) to stdout. Returns 0, or 2 (one line
    on stderr) when a file cannot be read or the symbolizer is not found."""
    try:
        symbolizer = make_symbolizer(args)
    except SymbolizerError as exc:
        print(f"guardalloc symbolize: {exc}", file=sys.stderr)
        return 2
    if symbolizer.backend is None:
        print("guardalloc symbolize: no symbolizer installed (llvm-symbolizer or addr2line): "
              "frames stay raw", file=sys.stderr)
    for name in args.files or ["-"]:
        try:
            if name == "-":
                symbolize_stream(sys.stdin, sys.stdout, symbolizer)
            else:
                with open(name, encoding="utf-8", errors="replace") as f:
                    symbolize_stream(f, sys.stdout, symbolizer)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, as filters do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except OSError as exc:
            print(f"guardalloc symbolize: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    for error in symbolizer.errors:
        print(f"guardalloc symbolize: {error}", file=sys.stderr)
    return 1 if symbolizer.errors else 0

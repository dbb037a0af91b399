"""``guardalloc exec``: run any program under the preloadable malloc library.

    guardalloc exec [--sample-rate N] [--uaf] [...] -- PROGRAM [ARGS...]

The flags are the library's options (``cli/native_flags.py``, made from its
table); a ``GUARDALLOC_OPTIONS`` already in the environment is kept, the
flags after it. A bad option, from either, is refused in one line with exit
status 2 before the program starts. The program runs as a child whose
reports come back symbolized (``guardalloc.symbolize.child``); exec ends as
the program ended (its status, or the signal that killed it).
"""

from __future__ import annotations

import argparse
import os
import sys

from guardalloc import faults
from guardalloc.cli import native_flags
from guardalloc.hooks import preload


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("every malloc of a C or C++ program guarded", "-- ./myprog --its-flag"),
    ("one in 100, for a long run; freed blocks stay guarded", "--sample-rate 100 --uaf -- make check"),
    ("JSON reports in a file per process, frames left raw", "--log-path reports.%p.json --no-symbolize -- ./myprog"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    native_flags.add_arguments(parser)
    parser.add_argument("--no-symbolize", dest="symbolize", action="store_false",
                        help="print reports' frames raw (module+offset); python -m guardalloc "
                             "symbolize turns them into functions and lines later")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    # "usage: guardalloc exec " comes before the flags.
    flags = native_flags.usage(start=len(f"usage: {parser.prog} "), indent=7)
    parser.usage = f"%(prog)s {flags}\n       [--no-symbolize] -- PROGRAM [ARGS...]"
    parser.epilog = ("Runs the program as a child and writes its reports symbolized (function, file:line, "
                     "inlined frames) with llvm-symbolizer or addr2line; dies as the program died (its "
                     f"exit status, or the signal that killed it). {preload.OPTIONS_ENV}=help=1 makes the "
                     "library list its options at start.")


def _sample_rate_given() -> bool:
    """Whether GUARDALLOC_OPTIONS in the environment sets sample_rate.

    Raises:
        ValueError: it is bad (the library's one-line message).
    """
    text = os.environ.get(preload.OPTIONS_ENV, "")
    faults.parse_options(text)
    return any(part.split("=", 1)[0].strip() == "sample_rate"
               for part in text.replace(",", ":").replace(" ", ":").split(":"))


def run(args: argparse.Namespace) -> int:
    """Run the program under the library as a child, its reports symbolized:
    its exit status (killed by a signal: this process dies of it too); 2 for
    a bad option or no program, 127 when it cannot run."""
    prog = getattr(args, "prog", "guardalloc exec")
    program = list(args.program)
    if program[:1] == ["--"]:
        program = program[1:]
    if not program:
        print(f"{prog}: no program given ({prog} [options] -- PROGRAM [ARGS...])", file=sys.stderr)
        return 2
    options = native_flags.given(args)
    try:
        # A debugging command: every allocation guarded, unless --sample-rate
        # or GUARDALLOC_OPTIONS says otherwise.
        if "sample_rate" not in options and not _sample_rate_given():
            options["sample_rate"] = preload.EXEC_SAMPLE_RATE
        env = preload.environment(**options)
    except (TypeError, ValueError, FileNotFoundError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    problem = preload.unguardable(program[0], env)
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    from guardalloc.symbolize.child import run_symbolized
    try:
        return run_symbolized(program, env, symbolize=getattr(args, "symbolize", True))
    except OSError as exc:
        print(f"{prog}: cannot run {program[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127

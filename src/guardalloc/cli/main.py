"""Command line: ``guardalloc COMMAND`` or ``python -m guardalloc COMMAND``.

Each command lives in the module of its concern and exposes
``add_arguments(parser)``, ``run(args) -> int`` and ``EXAMPLES`` (the
"examples:" of its help: pairs of what an example does and its arguments
after the command name); this file only routes,
and imports the module of the command being run only (``bench`` pulls in
the benchmark toolkit, which the other commands do not need).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import textwrap
from typing import Iterable

from guardalloc import __version__

# command -> (module, one-line help)
COMMANDS = {
    "demo": ("guardalloc.cli.demo", "build the same arena with madvise and mprotect guards, catch an overflow"),
    "bench": ("guardalloc.bench.guard_costs", "compare guardalloc with mprotect guards and no guards: table, plots, report"),
    "maps": ("guardalloc.cli.maps", "a process's VMAs with the guard pages inside them, which /proc/PID/maps hides"),
    "run": ("guardalloc.cli.run", "run a script or module (-m) with guarding on; exits with its status"),
    "exec": ("guardalloc.cli.exec", "run any program under the preloadable malloc library; exits with its status"),
    "symbolize": ("guardalloc.symbolize.cli", "turn the raw frames of text and JSON reports (files or stdin) into functions and lines"),
    "report": ("guardalloc.symbolize.report_cli", "group JSON reports from many processes by bug, symbolized, with counts"),
}

DESCRIPTION = ("Guard pages between the slots of one mapping (MADV_GUARD_INSTALL): "
               "try them, measure them, run a program with them.")
EPILOG = "Each command's --help lists its options and examples."


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that a description or epilog keeps its
    paragraphs (separated by blank lines), and a paragraph with indented
    lines -- the examples -- keeps its lines: a comment too long for the terminal goes on
    in another comment, a command on the next line after a backslash, as a
    shell reads it."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if not any(line.startswith(" ") for line in paragraph.splitlines()):
                paragraphs.append(super()._fill_text(paragraph, width, indent))
                continue
            lines: list[str] = []
            for line in paragraph.splitlines():
                lead = indent + line[:len(line) - len(line.lstrip())]
                comment = line.lstrip().startswith("#")
                pieces = textwrap.wrap(line.strip(), width - len(lead) - 6, break_long_words=False,
                                       break_on_hyphens=False) or [""]
                for i, piece in enumerate(pieces):
                    more = i + 1 < len(pieces)
                    if comment:
                        lines.append(lead + ("# " if i else "") + piece)
                    else:
                        lines.append(lead + ("    " if i else "") + piece + (" \\" if more else ""))
            paragraphs.append("\n".join(lines))
        return "\n\n".join(paragraphs)


def examples_epilog(examples: Iterable[tuple[str, str]], epilog: str | None = None) -> str:
    """An epilog (after ``epilog``, if any) of the "examples:" paragraph:
    each example's comment, then ``%(prog)s ARGUMENTS`` (argparse puts the
    command's program name there)."""
    lines = ["examples:"]
    for comment, arguments in examples:
        lines.append(f"  # {comment}".replace("%", "%%"))
        lines.append(f"  %(prog)s {arguments}".rstrip().replace("%", "%%").replace("%%(prog)s", "%(prog)s"))
    return (epilog + "\n\n" if epilog else "") + "\n".join(lines)


def int_at_least(minimum: int, shown: str | None = None, maximum: int | None = None):
    """An argparse ``type=``: an integer of at least ``minimum`` (said as
    ``shown`` in the error, e.g. ``"0 (off)"``) and, when given, at most
    ``maximum``. A bad value raises argparse.ArgumentTypeError naming it."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {shown or minimum} and {maximum}, not {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {shown or minimum} or more, not {value}")
        return value
    return parse


def program_name(argv0: str | None = None) -> str:
    """The program as the user invoked it: ``guardalloc`` (the console
    script) or ``python -m guardalloc``."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0)
    return name if name.startswith("guardalloc") else "python -m guardalloc"


def _command_in(argv: list[str]) -> str | None:
    """The command named in argv (its first word that is a command), if any."""
    for word in argv:
        if word == "--":
            break
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None   # an unknown command: argparse says so
    return None


def _unknown_option_before_command(argv: list[str]) -> str | None:
    """The first word before the command that is an option the top-level
    parser does not know (a typo such as ``--verison``), or None."""
    for word in argv:
        if word == "--" or not word.startswith("-"):
            return None
        if word.split("=", 1)[0] not in ("-h", "--help", "--version"):
            return word
    return None


def build_parser(argv: list[str], prog: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """The top-level parser and, for the command named in argv, its module
    and subparser (only that command's module is imported)."""
    parser = argparse.ArgumentParser(prog=prog or program_name(), description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _command_in(argv)
    found = {}
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
            subparser.epilog = examples_epilog(module.EXAMPLES, subparser.epilog)
            found = {"module": module, "parser": subparser}
    return parser, found


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (``guardalloc demo | head -3``): end
    like a Unix tool, silently, by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    return 128 + signal.SIGPIPE   # not reached


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse the command line and run the command; its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, found = build_parser(argv, prog)
    unknown = _unknown_option_before_command(argv)
    if unknown is not None:
        parser.error(f"unrecognized option: {unknown}")   # not "COMMAND is required"
    args, extra = parser.parse_known_args(argv)
    if extra:
        # The command's own usage, not the top-level one.
        found["parser"].error(f"unrecognized arguments: {' '.join(extra)}")
    args.prog = found["parser"].prog
    try:
        status = found["module"].run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        if args.command == "run":
            raise   # the program's own stdout: its business, as under python
        return _quiet_broken_pipe()
    return status


if __name__ == "__main__":
    sys.exit(main())

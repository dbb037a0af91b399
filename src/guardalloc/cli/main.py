"""Command line: ``guardalloc COMMAND`` or ``python -m guardalloc COMMAND``.

Each command lives in the module of its concern and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only routes,
and imports the module of the command being run only (``bench`` pulls in
the benchmark toolkit, which the other commands do not need).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

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


def int_at_least(minimum: int, shown: str | None = None):
    """An argparse ``type=``: an integer of at least ``minimum`` (said as
    ``shown`` in the error, e.g. ``"0 (off)"``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
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
    parser = argparse.ArgumentParser(prog=prog or program_name(), description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _command_in(argv)
    found = {}
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
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

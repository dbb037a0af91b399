"""Command line: ``python -m guardalloc COMMAND``.

Each command lives in the module of its concern and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only routes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS = {
    "demo": ("guardalloc.demo", "build the same arena with madvise and mprotect guards, catch an overflow"),
    "bench": ("guardalloc.benchmark", "compare guardalloc with mprotect guards and no guards: table, plots, report"),
    "maps": ("guardalloc.maps_cli", "a process's VMAs with the guard pages inside them, which /proc/PID/maps hides"),
    "run": ("guardalloc.launcher", "run a script or module (-m) with guarding on; exits with its status"),
    "exec": ("guardalloc.native", "run any program under the preloadable malloc library; exits with its status"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m guardalloc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())

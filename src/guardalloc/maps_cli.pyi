"""``python -m guardalloc maps [PID] [--all]``."""

import argparse
from typing import TextIO

RUNS_SHOWN: int

def add_arguments(parser: argparse.ArgumentParser) -> None: ...
def render(pid: int | str, show_all: bool = False, out: TextIO = ..., terminal: bool | None = None) -> None: ...
def run(args: argparse.Namespace) -> int: ...

"""The "examples:" of every command's --help: each is there, fits the
terminal, and is a command line the command accepts (the cheap ones run)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from guardalloc.cli import main as cli

from conftest import PACKAGE_PARENT

COLUMNS = 80
PREFIX = ["python", "-m", "guardalloc"]


def _help(command: str) -> str:
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "COLUMNS": str(COLUMNS)}
    result = subprocess.run([sys.executable, "-m", "guardalloc", command, "--help"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _examples(help_text: str) -> list[str]:
    """The example command lines of a help text, continuation lines joined."""
    assert "\nexamples:\n" in help_text
    lines, joined = help_text.split("\nexamples:\n", 1)[1].splitlines(), []
    pending = ""
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pending += text
        if pending.endswith("\\"):
            pending = pending[:-1]
        else:
            joined.append(pending)
            pending = ""
    assert not pending, "an example ends in a continuation"
    return joined


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_shows_examples_that_parse(command):
    text = _help(command)
    assert all(len(line) <= COLUMNS for line in text.splitlines()), \
        [line for line in text.splitlines() if len(line) > COLUMNS]
    examples = _examples(text)
    assert 2 <= len(examples) <= 4, examples
    for example in examples:
        words = shlex.split(example)
        assert words[:4] == [*PREFIX, command], example
        argv = words[3:]
        parser, found = cli.build_parser(argv, prog="python -m guardalloc")
        args, extra = parser.parse_known_args(argv)   # a bad value: SystemExit(2) here
        assert args.command == command and not extra, example


def _run_example(example: str, cwd) -> subprocess.CompletedProcess:
    argv = shlex.split(example)[3:]
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    env.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command, index", [("demo", 0), ("maps", 0), ("run", 0), ("symbolize", 0)])
def test_the_examples_that_need_nothing_outside_run(command, index, tmp_path):
    """The examples that need no other process, program or report: run in a
    directory holding the files they name, with exit status 0."""
    (tmp_path / "app.py").write_text("import sys\nassert sys.argv[1:] == ['--its-flag']\nprint('app ran')\n")
    (tmp_path / "crash.txt").write_text("no report in this file\n")
    example = _examples(_help(command))[index]
    result = _run_example(example, tmp_path)
    assert result.returncode == 0, (example, result.stderr)
    if command == "run":
        assert "app ran" in result.stdout
    if command == "symbolize":
        assert result.stdout == "no report in this file\n"


def test_a_long_example_line_is_continued_as_a_shell_reads_it():
    formatter = cli.HelpFormatter("prog", width=40)
    text = formatter._fill_text("examples:\n  # a comment that is long enough to wrap around\n"
                                "  prog --first-option value --second-option value", 40, "")
    lines = text.splitlines()
    assert lines[0] == "examples:"
    assert all(len(line) <= 40 for line in lines)
    comments = [line for line in lines if line.lstrip().startswith("#")]
    assert len(comments) == 2
    command = [line for line in lines[1:] if not line.lstrip().startswith("#")]
    assert command[0].endswith(" \\") and not command[-1].endswith("\\")
    assert shlex.split(" ".join(line.rstrip("\\") for line in command)) == \
        ["prog", "--first-option", "value", "--second-option", "value"]

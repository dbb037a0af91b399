"""The command line: ``guardalloc COMMAND`` / ``python -m guardalloc COMMAND``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guardalloc
from guardalloc.cli import main as cli

from conftest import PACKAGE_PARENT


def env() -> dict:
    child = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "PYTHONDONTWRITEBYTECODE": "1"}
    child.pop("PYTHONFAULTHANDLER", None)
    return child


def guardalloc_cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardalloc", *args], capture_output=True, text=True,
                          env=env(), cwd=cwd, timeout=300)


def test_demo_shows_both_backends_and_the_caught_overflow(capsys):
    assert cli.main(["demo", "--slots", "2000", "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    # 2 VMAs per mprotect guard (+1 when the bookkeeping merges with no neighbour)
    assert "mprotect" in out and ("4,001" in out or "4,002" in out)
    if guardalloc.support().anonymous:
        assert "madvise guards built" in out and "median (min-max) of 3 builds" in out
        assert "round by round" in out
    assert "died with SIGSEGV" in out


def test_demo_child_traceback_points_at_a_readable_file(capsys):
    assert cli.main(["demo", "--slots", "100", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "<string>" not in out
    child = Path(guardalloc.__file__).parent / "cli" / "demo_child.py"
    assert f" {child}:" in out and child.exists()
    # The allocation's frames, innermost first: the first names the line that allocated.
    allocated = out.split("allocated at:\n")[1]
    lines = [int(m.group(1)) for m in re.finditer(rf"#\d+ in \S+ {re.escape(str(child))}:(\d+)", allocated)]
    source = child.read_text().splitlines()
    assert "arena.alloc(100)" in source[lines[0] - 1] and "read_packet()" in source[lines[-1] - 1]


@pytest.mark.parametrize("args, usage", [
    (["run", "--bogus", "x.py"], "usage: python -m guardalloc run "),
    (["bench", "--slots", "5"], "usage: python -m guardalloc bench "),
    (["demo", "--out", "x"], "usage: python -m guardalloc demo "),
    (["maps", "--bogus"], "usage: python -m guardalloc maps "),
])
def test_a_subcommand_error_shows_that_subcommands_usage(args, usage):
    result = guardalloc_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(usage), result.stderr
    assert "unrecognized arguments" in result.stderr


def test_version():
    result = guardalloc_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"python -m guardalloc {guardalloc.__version__}"


def test_top_level_help_is_plain_text_and_names_the_program_as_invoked():
    result = guardalloc_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m guardalloc ")
    assert "``" not in result.stdout
    for command in cli.COMMANDS:
        assert command in result.stdout


def test_the_console_script_calls_itself_guardalloc():
    script = Path(sys.executable).parent / "guardalloc"
    if not script.exists():
        pytest.skip("the guardalloc console script is not installed beside this python")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: guardalloc ")
    assert "python -m" not in result.stdout.split("\n\n")[0]


@pytest.mark.parametrize("argv0, name", [
    ("/usr/lib/python3/site-packages/guardalloc/__main__.py", "python -m guardalloc"),
    ("/venv/bin/guardalloc", "guardalloc"),
    ("/venv/bin/pytest", "python -m guardalloc"),   # cli.main() called from elsewhere
])
def test_program_name(argv0, name):
    assert cli.program_name(argv0) == name


def read_lines_then_close(command: list[str], lines: int) -> tuple[int, str]:
    """Like ``command | head -LINES``: the exit status and stderr of command."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env()) as proc:
        for _ in range(lines):
            proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        return proc.wait(timeout=300), stderr


def test_demo_into_head_ends_quietly_like_a_unix_tool():
    demo = [sys.executable, "-m", "guardalloc", "demo", "--slots", "1000", "--rounds", "1"]
    # The reader gone before the first write: the demo dies of SIGPIPE, silently.
    status, stderr = read_lines_then_close(demo, 0)
    assert status == -signal.SIGPIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    # And as typed in a shell.
    shell = subprocess.run(["sh", "-c", " ".join(demo) + " | head -3"], capture_output=True, text=True,
                           env=env(), timeout=300)
    assert len(shell.stdout.splitlines()) == 3 and shell.stderr == ""


TINY_BENCH = """
import sys
from guardalloc.bench import guard_costs as benchmark
from guardalloc.cli import main as cli
settings = benchmark.Settings([100, 300], [1_000], [0, 100], create_rounds=1, scale_rounds=1,
                              fork_blocks=1, forks_per_block=1, alloc_rounds=1, alloc_inner=10)
benchmark.Settings.for_run = classmethod(lambda cls, quick: settings)
sys.exit(cli.main(["bench", "--out", sys.argv[1]]))
"""


def test_bench_into_head_ends_quietly_with_its_files_written(tmp_path):
    status, stderr = read_lines_then_close([sys.executable, "-c", TINY_BENCH, str(tmp_path)], 0)
    assert status == -signal.SIGPIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert (tmp_path / "results.json").exists() and (tmp_path / "report.md").exists()


def test_bench_checks_the_output_directory_before_measuring():
    result = guardalloc_cli("bench", "--quick", "--out", "/proc/self")
    assert result.returncode == 2
    assert "cannot use '/proc/self' as the output directory" in result.stderr
    assert "round" not in result.stderr and "Traceback" not in result.stderr   # nothing was measured


def test_run_a_directory_without_main_is_one_clean_line(tmp_path):
    (tmp_path / "pkg").mkdir()
    result = guardalloc_cli("run", str(tmp_path / "pkg"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "can't find '__main__' module" in result.stderr


@pytest.mark.parametrize("command, absent", [
    ("run", ["guardalloc.bench.guard_costs", "guardalloc.bench.timing", "guardalloc.cli.demo"]),
    ("maps", ["guardalloc.bench.guard_costs", "guardalloc.bench.timing", "guardalloc.cli.run"]),
    ("demo", ["guardalloc.bench.guard_costs", "guardalloc.cli.run"]),
])
def test_only_the_command_being_run_is_imported(command, absent):
    code = textwrap.dedent(f"""
        import sys
        from guardalloc.cli import main as cli
        parser, found = cli.build_parser([{command!r}, "x"])
        assert found["module"].__name__ == cli.COMMANDS[{command!r}][0]
        print(sorted(m for m in {absent!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_mistyped_top_level_option_is_named(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--verison"])
    assert exit_info.value.code == 2
    assert "unrecognized option: --verison" in capsys.readouterr().err


def test_demo_with_one_round_says_one_build(capsys):
    assert cli.main(["demo", "--slots", "100", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "one build each" in out and "of 1 builds" not in out


def test_bench_refuses_an_output_file_with_its_prefix(capsys):
    assert cli.main(["bench", "--quick", "--out", os.devnull]) == 2
    assert capsys.readouterr().err.startswith("guardalloc bench: cannot use ")


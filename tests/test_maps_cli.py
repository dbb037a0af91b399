"""``python -m guardalloc maps [PID] [--all]``."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import pytest

import guardalloc
from guardalloc.maps import vmas
from guardalloc.cli.maps import RUNS_SHOWN, render

from conftest import PACKAGE_PARENT

ENV = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
TOTAL = re.compile(r"^total: ([\d,]+) VMAs, ([\d,]+) kB mapped; ([\d,]+) pages? of guard \(([\d,]+) kB\) "
                   r"in ([\d,]+) run\(s\) inside ([\d,]+) VMA\(s\), found with .+; ([\d,]+) PROT_NONE VMA\(s\)$")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardalloc", "maps", *args],
                          capture_output=True, text=True, env=ENV, timeout=60)


def _totals(stdout: str) -> tuple[int, ...]:
    match = TOTAL.match(stdout.splitlines()[-1])
    assert match, stdout.splitlines()[-1]
    return tuple(int(g.replace(",", "")) for g in match.groups())


@pytest.fixture
def arena_child():
    """A child process holding an arena of 10 slots (11 guard pages) and a
    3-slot mprotect arena; yields (pid, arena address)."""
    code = textwrap.dedent(
        """
        import sys, warnings, guardalloc
        arena = guardalloc.Arena(4096, 10, backend="madvise")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = guardalloc.Arena(4096, 3, backend="mprotect")
        print(arena.address, flush=True)
        sys.stdin.read()
        """
    )
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=ENV) as proc:
        address = int(proc.stdout.readline())
        yield proc.pid, address
        proc.stdin.close()
        proc.wait(timeout=30)


def test_maps_of_self_is_plain_text_when_piped():
    result = _cli()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"^\d+: .*python.* -m guardalloc maps$", lines[0])
    assert lines[1].split() == ["Address", "Kbytes", "Perm", "Guards", "Mapping"]
    assert any(line.endswith("[stack]") for line in lines)
    assert "\033" not in result.stdout
    n_vmas, mapped, *_ = _totals(result.stdout)
    assert n_vmas == sum(1 for line in lines if re.match(r"^[0-9a-f]{16} ", line))
    assert mapped > 0


def test_maps_of_a_child_shows_its_guard_runs(arena_child):
    pid, address = arena_child
    result = _cli(str(pid))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{pid}: ")
    # The arena's VMA (the kernel may have merged it with a neighbour).
    vma = next(v for v in vmas(pid) if v.start <= address < v.end)
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{vma.start:016x} "))
    assert lines[row].split()[1:4] == [f"{vma.size // 1024:,}", "rw-p", "11"]   # 11 guard pages
    runs = lines[row + 1:row + 1 + RUNS_SHOWN]
    assert runs == [f"{'':17}guard {address + 2 * i * 4096:016x}-{address + (2 * i + 1) * 4096:016x} 1 page"
                    for i in range(RUNS_SHOWN)]
    assert "8 more guard run(s) (11 in all; --all lists them)" in lines[row + 1 + RUNS_SHOWN]
    n_vmas, mapped, pages, kb, nruns, guard_vmas, prot_none = _totals(result.stdout)
    assert pages >= 11 and nruns >= 11 and guard_vmas >= 1 and kb == pages * 4
    assert prot_none >= 4   # the mprotect arena's guards are VMAs of their own

    everything = _cli(str(pid), "--all")
    assert everything.returncode == 0
    lines = everything.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{vma.start:016x} "))
    assert [line.split()[1] for line in lines[row + 1:row + 12]] == [
        f"{address + 2 * i * 4096:016x}-{address + (2 * i + 1) * 4096:016x}" for i in range(11)]
    assert not lines[row + 12].startswith(" " * 17)


@pytest.mark.parametrize("pid, message, status", [
    (str(2**22 + 1), "no process 4194305", 1),
    # Not a PID at all: a usage error, exit 2 like argparse's.
    ("abc", "PID must be a process ID or 'self', not 'abc'", 2),
    ("0", "PID must be positive, not 0", 2),
])
def test_bad_pid_exits_with_a_message(pid, message, status):
    result = _cli(pid)
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr == f"guardalloc maps: {message}\n"



def test_unreadable_pid_exits_1_with_a_message(child, root_process):
    result = child(
        """
        import importlib, locale, os, sys
        from guardalloc.cli.main import COMMANDS, main
        # Import now: the interpreter's own files may be readable by root only.
        for module, _ in COMMANDS.values():
            importlib.import_module(module)
        os.setgid(65534); os.setuid(65534)
        sys.exit(main(["maps", sys.argv[1]]))
        """,
        str(root_process),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"guardalloc maps: cannot read process {root_process}: ")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_exited_process_has_no_mappings():
    # A zombie (exited, not yet reaped) has a PID but no memory.
    with subprocess.Popen([sys.executable, "-c", "pass"]) as proc:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)   # exited, left unreaped
        result = _cli(str(proc.pid))
        proc.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("no user-space mappings")


def test_terminal_output_is_highlighted():
    with guardalloc.Arena(4096, 5) as arena:
        out = io.StringIO()
        render("self", out=out, terminal=True)
        text = out.getvalue()
        assert "\033[1m" in text and "\033[33m" in text
        assert f"{arena.address:016x}" in text


@pytest.mark.parametrize("owner, euid, blamed", [
    (1000, 1000, "the kernel refused ptrace read access"),   # our own process: ptrace policy
    (1, 0, "the kernel refused ptrace read access"),         # root is not stopped by ownership
    (0, 1000, "it belongs to another user"),
])
def test_a_refused_maps_read_names_the_real_reason(monkeypatch, owner, euid, blamed):
    from guardalloc.introspect import maps as maps_module
    monkeypatch.setattr(maps_module.os, "geteuid", lambda: euid)
    monkeypatch.setattr(maps_module.os, "stat", lambda path: os.stat_result((0, 0, 0, 0, owner, 0, 0, 0, 0, 0)))
    assert maps_module._why_no_ptrace_read("/proc/1/maps").startswith(blamed)



def test_an_arena_and_its_unused_tail_are_labelled():
    with guardalloc.Arena(4096, 5000) as arena:   # more slots than the first batch of guards
        arena.alloc(10)
        address = arena.address
        out = io.StringIO()
        render("self", out=out, terminal=False)
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith(f"{address:016x}"))
    assert row.endswith("[guarded slots: 4 kB between guards]")
    assert "[slots not used yet: guarded on first use]" in text


def test_a_narrow_terminal_cuts_the_start_of_a_path_not_its_file_name(monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((80, 24)))
    out = io.StringIO()
    render("self", out=out, terminal=True)
    paths = {vma.path for vma in vmas("self") if vma.path}
    rows = [line for line in out.getvalue().splitlines()[2:] if "  …" in line]
    assert rows, "no long path to cut"
    for line in rows:
        tail = line.split("  …", 1)[1]
        assert len(line) <= 80 and any(path.endswith(tail) for path in paths), line

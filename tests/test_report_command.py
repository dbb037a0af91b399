"""python -m guardalloc report: JSON reports of many processes symbolized and
grouped by signature (kind + top frames), each group's count and one
representative."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from guardalloc.symbolize import Symbolizer
from guardalloc.symbolize.group import group_reports, read_reports, signature

TWO_BUGS = textwrap.dedent("""\
    #include <stdlib.h>
    #include <string.h>
    __attribute__((noinline)) void overflow(char *p) { p[24] = 1; }
    __attribute__((noinline)) void twice(char *p) { free(p); free(p); }
    int main(int argc, char **argv) {
        char *p = malloc(24);
        if (argv[1][0] == 'o') overflow(p); else twice(p);
        return 0;
    }
    """)


def _exec(program: str, arg: str, log: str):
    env = dict(os.environ)
    env.pop("GUARDALLOC_OPTIONS", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", "exec", "--sample-rate", "1", "--alignment", "1",
                           "--log-path", log, "--no-symbolize", "--", program, arg],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Reports of five processes, one JSON file each: three overflows, two
    double frees, plus a file that holds no report."""
    if Symbolizer(cache_dir=None).backend is None:
        pytest.skip("no symbolizer installed (llvm-symbolizer or addr2line)")
    tmp = tmp_path_factory.mktemp("fleet")
    src = tmp / "bugs.c"
    src.write_text(TWO_BUGS)
    program = str(tmp / "bugs")
    subprocess.run(["gcc", "-g", "-O0", "-o", program, str(src)], check=True)
    log_dir = tmp / "logs"
    (log_dir / "sub").mkdir(parents=True)
    for arg, n, sig in (("o", 3, signal.SIGSEGV), ("d", 2, signal.SIGABRT)):
        for _ in range(n):
            assert _exec(program, arg, str(log_dir / "sub" / "r.%p.json")).returncode == -sig
    (log_dir / "notes.txt").write_text("not a report\n{\"tool\": \"other\"}\n{broken\n")
    return log_dir


def test_groups_by_signature_with_counts(logs):
    groups = group_reports(read_reports([str(logs)]), Symbolizer(cache_dir=None))
    assert [len(g.reports) for g in groups] == [3, 2]
    assert groups[0].representative["kind"] == "heap-buffer-overflow"
    assert groups[1].representative["kind"] == "double-free"
    assert "twice" in [f for f, _ in groups[1].signature[3]]
    assert len({r["pid"] for g in groups for r in g.reports}) == 5


def test_report_command_prints_each_group_once(logs):
    proc = subprocess.run([sys.executable, "-m", "guardalloc", "report", str(logs)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("5 report(s), 2 distinct\n")
    assert "#1: 3 report(s) -- heap-buffer-overflow" in out and "#2: 2 report(s) -- double-free twice" in out
    assert out.count("  | ==") == 2   # one representative per group
    assert " in twice " in out and " in main " in out


def test_no_report_found_is_exit_1(tmp_path):
    (tmp_path / "empty.json").write_text("")
    proc = subprocess.run([sys.executable, "-m", "guardalloc", "report", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "no guardalloc report found" in proc.stderr


def test_signature_of_a_report_without_stacks():
    assert signature({"kind": "use-after-free", "access": "READ", "stacks": {"allocated": None}}) == \
        ("use-after-free", "access", None, ())
    python = {"kind": "heap-buffer-overflow", "access": "WRITE",
              "stacks": {"allocated": '  File "a.py", line 3, in f\n    x()\n'}}
    assert signature(python)[3] == ('File "a.py", line 3, in f',)

"""Real programs under the malloc library, for ``bench --peers``: git,
sqlite3, gcc, perl, sort, xz, tar and CPython's own tests, each run plain and
with every allocation guarded (``sample_rate=1``), in interleaved rounds.
For each: whether the output is identical (stdout, and the file a program
writes), and the time and peak-memory (``ru_maxrss`` of the process tree's
largest process) ratios to the plain run, medians of the rounds.

A program that is not installed is reported as "not installed". Inputs are
made in a scratch directory from a fixed seed, so both sides see the same.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

NOT_INSTALLED = "not installed"
GUARDED_OPTIONS = "sample_rate=1:max_bytes=16G"


@dataclass
class Program:
    """One real program: its command, stdin, the file it writes (compared
    too), and how its output is normalised (timings in a test runner)."""

    name: str
    what: str
    argv: list
    stdin: Optional[bytes] = None
    writes: Optional[str] = None
    normalise: Callable[[bytes], bytes] = lambda out: out
    env: dict = field(default_factory=dict)


def _words(rng: random.Random, n: int) -> bytes:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return "".join("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 12))) + f" {i}\n"
                   for i in range(n)).encode()


def _drop_timings(out: bytes) -> bytes:
    """regrtest's output without the lines that carry durations, the load
    or its random seed."""
    return b"\n".join(line for line in out.splitlines()
                      if not re.search(rb"\d+(\.\d+)? ?(sec|ms|s\b)|[Dd]uration|load avg|random seed", line))


def programs(scratch: str, root: str, quick: bool) -> list:
    """The programs, with their inputs made in scratch (root: the source
    checkout, whose files some of them read)."""
    rng = random.Random(20)
    lines = 60_000 if quick else 400_000
    text = os.path.join(scratch, "words.txt")
    with open(text, "wb") as f:
        f.write(_words(rng, lines))
    rows = 20_000 if quick else 200_000
    sql = (f"CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, n INTEGER);\n"
           f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
           f"INSERT INTO t SELECT x, printf('%08d-%s', x * 7919 % {rows}, x), x % 97 FROM c;\n"
           "CREATE INDEX tv ON t(v);\n"
           "SELECT n, count(*), sum(length(v)) FROM t GROUP BY n ORDER BY n LIMIT 5;\n"
           "SELECT v FROM t ORDER BY v DESC LIMIT 3;\n").encode()
    perl_n = 20_000 if quick else 400_000
    perl = (f'my %h; for my $i (1..{perl_n}) {{ $h{{"k$i"}} = join(",", $i, $i * 2, "x" x ($i % 50)) }} '
            'my $s = 0; for (sort keys %h) { $s += length $h{$_} } print "$s\\n"; '
            'my $t = "abc" x 200000; $t =~ s/b/xy/g; print length($t), "\\n"; '
            'my @w = map { scalar reverse $_ } keys %h; print scalar(@w), "\\n";')
    c_source = os.path.join(root, "bench", "peers", "live.c")
    tests = ["test_heapq"] if quick else ["test_json", "test_heapq", "test_re", "test_bisect",
                                                       "test_textwrap", "test_statistics"]
    found = [
        Program("git", "git log --stat of the checkout's last commits",
                ["git", "-C", root, "-c", "core.pager=cat", "log", "--stat", "--no-color",
                 "-n", "50" if quick else "500"]),
        Program("sqlite3", f"{rows:,} rows: insert, index, group, sort", ["sqlite3", ":memory:"], stdin=sql),
        Program("gcc", "gcc -O2 -c of a C file (the object file compared)",
                ["gcc", "-O2", "-g0", "-c", c_source, "-o", os.path.join(scratch, "out.o")],
                writes=os.path.join(scratch, "out.o")),
        Program("perl", f"a hash of {perl_n:,} keys, sort, regex", ["perl", "-e", perl]),
        Program("sort", f"{lines:,} lines", ["sort", text], env={"LC_ALL": "C"}),
        Program("xz", f"xz -6 of {os.path.getsize(text) >> 10:,} KiB", ["xz", "-T1", "-6", "-c", text]),
        Program("tar", "tar of the checkout's tests/ (sorted, fixed times)",
                ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                 "-cf", "-", "-C", root, "tests"]),
        Program("python tests", f"python -m test {' '.join(tests)}",
                [sys.executable, "-m", "test", "-q", *tests], normalise=_drop_timings),
    ]
    return found


def _run(launcher: str, argv: list, env: dict, stdin: Optional[bytes], cwd: str) -> tuple:
    """(status, stdout, seconds, peak RSS in KiB of the largest process of
    the tree) of one run, through the maxrss launcher (bench/peers/maxrss.c)."""
    peak_file = os.path.join(cwd, "maxrss.out")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as inp:
        if stdin is not None:
            inp.write(stdin)
            inp.seek(0)
        started = time.perf_counter()
        proc = subprocess.run([launcher, peak_file, *argv], stdin=inp, stdout=out, stderr=subprocess.DEVNULL,
                              env=env, cwd=cwd, timeout=1800)
        elapsed = time.perf_counter() - started
        out.seek(0)
        with open(peak_file) as f:
            peak = int(f.read())
        return proc.returncode, out.read(), elapsed, peak


def real_programs(library: str, root: str, quick: bool, rounds: int, only: Optional[list] = None) -> dict:
    """Each program plain and guarded, ``rounds`` interleaved rounds: a dict
    of name -> {what, identical, time_ratio, rss_ratio, status} or
    "not installed" (only: these names alone). Needs gcc (for the launcher)
    and the source checkout at root."""
    results: dict[str, Any] = {}
    base = dict(os.environ)
    base.pop("PYTHONFAULTHANDLER", None)
    base.pop("LD_PRELOAD", None)
    base.pop("GUARDALLOC_OPTIONS", None)
    with tempfile.TemporaryDirectory(prefix="guardalloc-programs-") as scratch:
        launcher = os.path.join(scratch, "maxrss")
        subprocess.run(["gcc", "-O1", "-o", launcher, os.path.join(root, "bench", "peers", "maxrss.c")],
                       check=True, capture_output=True)
        for program in programs(scratch, root, quick):
            if only is not None and program.name not in only:
                continue
            if shutil.which(program.argv[0]) is None:
                results[program.name] = NOT_INSTALLED
                continue
            plain_env = {**base, **program.env}
            guarded_env = {**plain_env, "LD_PRELOAD": library, "GUARDALLOC_OPTIONS": GUARDED_OPTIONS}
            times: dict = {"plain": [], "guarded": []}
            peaks: dict = {"plain": [], "guarded": []}
            outputs: dict = {}
            statuses: dict = {}
            for _ in range(rounds):
                for side, env in (("plain", plain_env), ("guarded", guarded_env)):
                    status, out, seconds, peak = _run(launcher, program.argv, env, program.stdin, scratch)
                    if program.writes is not None and os.path.exists(program.writes):
                        with open(program.writes, "rb") as f:
                            out += hashlib.sha256(f.read()).hexdigest().encode()
                        os.unlink(program.writes)
                    outputs.setdefault(side, program.normalise(out))
                    statuses.setdefault(side, status)
                    times[side].append(seconds)
                    peaks[side].append(peak)
            if statuses["plain"] != 0:
                results[program.name] = f"fails without the library (status {statuses['plain']})"
                continue
            plain_t, guarded_t = statistics.median(times["plain"]), statistics.median(times["guarded"])
            plain_m, guarded_m = statistics.median(peaks["plain"]), statistics.median(peaks["guarded"])
            results[program.name] = {
                "what": program.what,
                "identical": outputs["plain"] == outputs["guarded"] and statuses["plain"] == statuses["guarded"],
                "status": statuses["guarded"], "plain_status": statuses["plain"],
                "time_ratio": round(guarded_t / plain_t, 2) if plain_t else None,
                "rss_ratio": round(guarded_m / plain_m, 2) if plain_m else None,
                "plain_seconds": round(plain_t, 3), "plain_rss_kib": plain_m,
            }
    return results


def markdown(results: dict) -> str:
    """The real-programs table."""
    lines = ["| real program | run | output | time vs plain | peak memory vs plain |",
             "| --- | --- | --- | --- | --- |"]
    for name, value in results.items():
        if not isinstance(value, dict):
            lines.append(f"| {name} | | {value} | | |")
            continue
        same = "identical" if value["identical"] else \
            f"DIFFERENT (status {value['status']}, plain {value['plain_status']})"
        lines.append(f"| {name} | {value['what']} | {same} | {value['time_ratio']:.2f}x | "
                     f"{value['rss_ratio']:.2f}x |")
    return "\n".join(lines)

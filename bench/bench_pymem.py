"""The interpreter's own allocations sampled into guarded slots: cost of
guardalloc.pymem at sample rates 1, 100 and 5,000 against no hook at all.

Each configuration runs in its own worker interpreter (the hooks see every
allocation of a process, and guarded blocks outlive uninstall()); the
benchmark times one round of a pyperformance-style micro workload in the
worker (object churn, dicts, strings, json, re, sorting), sent and answered
over a pipe (~50 us of the ~40 ms round). Run:

    python -m pytest bench/bench_pymem.py -o python_files='bench_*.py'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guardalloc

PACKAGE_PARENT = str(Path(guardalloc.__file__).resolve().parent.parent)

WORKER = textwrap.dedent(
    """
    import json, re, sys, time
    import guardalloc

    class Point:
        __slots__ = ("x", "y")
        def __init__(self, x, y):
            self.x, self.y = x, y

    class Record:
        def __init__(self, i):
            self.id = i
            self.name = f"record-{i}"
            self.tags = [str(i % 7), str(i % 11)]

    WORDS = re.compile(r"[a-z]+(\\d+)")

    def workload():
        points = [Point(i, i * 2) for i in range(60_000)]
        total = sum(p.x + p.y for p in points)
        records = {i: Record(i) for i in range(15_000)}
        index = {}
        for r in records.values():
            for t in r.tags:
                index.setdefault(t, []).append(r.id)
        text = " ".join(r.name for r in records.values())
        found = WORDS.findall(text.replace("-", ""))
        doc = json.loads(json.dumps([{"id": r.id, "name": r.name, "tags": r.tags}
                                     for r in list(records.values())[:6_000]]))
        ordered = sorted(records.values(), key=lambda r: (r.tags[1], -r.id))
        return total + len(index) + len(found) + len(doc) + ordered[0].id

    rate = int(sys.argv[1])
    if rate:
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=rate)
    expected = workload()
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.process_time()
        if workload() != expected:
            print("wrong result", flush=True)
            sys.exit(1)
        info = {"cpu_s": time.process_time() - start}
        if rate:
            stats = pymem.stats()
            info.update(sampled=stats["obj"]["sampled"] + stats["mem"]["sampled"] + stats["raw"]["sampled"],
                        live=stats.get("live"), arenas=stats.get("arenas"), refused=stats.get("refused"))
        info["vmas"] = guardalloc.vma_count()
        print(json.dumps(info), flush=True)
    """
)


class Worker:
    def __init__(self, rate: int):
        env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(rate)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout.readline() == "ready\n"
        self.last = {}

    def round(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.last = json.loads(line)

    def close(self):
        self.proc.stdin.close()
        status = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        assert status == 0


@pytest.mark.parametrize("rate", [0, 5000, 100, 1], ids=["not-installed", "rate-5000", "rate-100", "rate-1"])
def test_pymem_micro_workload(benchmark, rate):
    benchmark.group = "pymem: micro workload round"
    worker = Worker(rate)
    try:
        benchmark.pedantic(worker.round, rounds=20, warmup_rounds=2)
    finally:
        worker.close()
    benchmark.extra_info.update({k: v for k, v in worker.last.items() if k != "cpu_s"})   # counts only
    benchmark.extra_info["sample_rate"] = rate

"""Side-by-side figures of issue 14 against a previous guardalloc, in one run.

    python bench/compare_previous.py --old-python /path/to/old/venv/bin/python [--rounds 5]

Every figure is measured in fresh worker processes, alternating between this
checkout's interpreter (``sys.executable``) and ``--old-python`` round by
round (new, old, new, old, ...), so a busy machine slows both alike; the
table gives the median over rounds of each worker's own median, and the
ratios are taken between figures of the same run. Exact counts (system
calls, VMAs, resident memory) are printed beside the times.

The figures (what docs/performance.md tabulates):

- numpy: ``a = np.zeros(1 << 20); a[::512] = 1; del a`` inside
  ``guardalloc.numpy.guarded()`` against numpy's own allocator.
- create: a 1,000,000-slot arena, madvise guards against ``backend="none"``;
  and the cost per slot of guarding all of it (built and opened whole).
- bookkeeping: build time and resident memory of a 20,000,000-slot arena.
- uaf: ``Arena(uaf=True)`` alloc + free with 10,000 live buffers, madvise
  and mprotect.
- pymem: one round of bench/bench_pymem.py's workload, ``sample_rate=1``
  against the plain interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Workers run from here: ``python -c`` puts the current directory first on
# sys.path, which would make both interpreters import a checkout found there.
NEUTRAL_DIR = tempfile.gettempdir()

COMMON = """
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
def median_of(fn, n, setup=None):
    times = []
    for _ in range(n):
        if setup: setup()
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
out = {}
"""

FIGURES = {
    "numpy": """
import numpy as np, guardalloc.numpy as gnp
def rnd():
    a = np.zeros(1 << 20); a[::512] = 1; del a
rnd()
out["numpy_plain_us"] = median_of(rnd, 200) * 1e6
with gnp.guarded():
    rnd()
    out["numpy_guarded_us"] = median_of(rnd, 200) * 1e6
""",
    "create": """
from guardalloc import Arena
N = 1_000_000
def build(backend):
    Arena(4096, N, backend=backend).close()
build("madvise"); build("none")
madvise, none = [], []
for _ in range(15):
    t = time.perf_counter(); a = Arena(4096, N, backend="madvise"); madvise.append(time.perf_counter() - t)
    out["create_syscalls"] = a.stats()["guard_syscalls"]; a.close()
    t = time.perf_counter(); a = Arena(4096, N, backend="none"); none.append(time.perf_counter() - t); a.close()
out["create_madvise_us"] = statistics.median(madvise) * 1e6
out["create_none_us"] = statistics.median(none) * 1e6
# Guarding every slot: build, then open (lazy) or nothing left to do (eager).
whole = []
for _ in range(5):
    t = time.perf_counter()
    a = Arena(4096, N, backend="madvise")
    if hasattr(a, "alloc"):
        a.alloc(1, slot=N - 1).free()
    whole.append(time.perf_counter() - t)
    out["whole_syscalls"] = a.stats()["guard_syscalls"]
    a.close()
out["per_slot_ns"] = statistics.median(whole) / N * 1e9
""",
    "bookkeeping": """
from guardalloc import Arena
before = rss()
t = time.perf_counter()
a = Arena(4096, 20_000_000, backend="madvise")
out["big_build_ms"] = (time.perf_counter() - t) * 1e3
out["big_rss_mb"] = (rss() - before) / 1e6
bufs = [a.alloc_raw(64) for _ in range(10_000)]
out["big_rss_10k_mb"] = (rss() - before) / 1e6
""",
    "uaf": """
from guardalloc import Arena
LIVE = 10_000
for backend in ("madvise", "mprotect"):
    a = Arena(4096, LIVE + 1000 + 1, backend=backend, uaf=True, quarantine=1000)
    live = [a.alloc(64) for _ in range(LIVE)]
    def cycle():
        for _ in range(100):
            a.alloc(64).free()
    for _ in range(30): cycle()
    before = a.stats()["uaf_syscalls"]
    out[f"uaf_{backend}_us"] = median_of(cycle, 100) / 100 * 1e6
    out[f"uaf_{backend}_syscalls_per_cycle"] = (a.stats()["uaf_syscalls"] - before) / 10_000
    for b in live: b.free()
    a.close()
""",
}


def pymem_round(python: str, rate: int) -> float:
    """Median seconds of bench_pymem.py's workload round in a worker."""
    sys.path.insert(0, str(HERE))
    from bench_pymem import WORKER  # noqa: E402

    import os
    import time
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([python, "-c", WORKER, str(rate)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=NEUTRAL_DIR)
    assert proc.stdout.readline() == "ready\n"
    times, info = [], {}
    for _ in range(7):
        t = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        info = json.loads(proc.stdout.readline())
        times.append(time.perf_counter() - t)
    proc.stdin.close()
    proc.wait(timeout=120)
    return statistics.median(times[1:]), info


def run_figure(python: str, name: str) -> dict:
    code = COMMON + textwrap.dedent(FIGURES[name]) + "\nprint(json.dumps(out))\n"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600,
                            cwd=NEUTRAL_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"{python} {name}: {result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-python", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sides = {"new": sys.executable, "old": args.old_python}
    names = args.only or [*FIGURES, "pymem"]
    samples: dict[str, dict[str, list]] = {side: {} for side in sides}
    for r in range(args.rounds):
        for name in names:
            for side, python in sides.items():
                if name == "pymem":
                    plain, _ = pymem_round(python, 0)
                    guarded, info = pymem_round(python, 1)
                    figures = {"pymem_plain_ms": plain * 1e3, "pymem_rate1_ms": guarded * 1e3,
                               "pymem_refused": info.get("refused"), "pymem_sampled": info.get("sampled")}
                else:
                    figures = run_figure(python, name)
                for key, value in figures.items():
                    samples[side].setdefault(key, []).append(value)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    medians = {side: {k: statistics.median(v) for k, v in figs.items() if v and v[0] is not None}
               for side, figs in samples.items()}
    print(json.dumps(medians, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"medians": medians, "samples": samples}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

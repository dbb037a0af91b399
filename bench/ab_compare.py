"""Compare two builds of guardalloc side by side, interleaved, in one run.

    python bench/ab_compare.py OLD_PYTHON NEW_PYTHON [--rounds 9]

Each interpreter must import its own guardalloc (two virtualenvs: the
previous main and the new code). Every figure is measured in a fresh child
process, alternating old and new round by round, so that the machine's
load moves both sides alike; the table gives each side's median and the
new/old ratio of the medians. Absolute times on a shared machine move by
2x; the ratio is what a change is judged by.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

# Each case prints one float: seconds per operation (best of a few inner
# repeats inside the child, so that a child's warm-up does not count).
CASES = {
    "arena create+close, 30,000 slots": """
import time, guardalloc
def once():
    t = time.perf_counter(); a = guardalloc.Arena(4096, 30_000, backend="madvise"); a.close()
    return time.perf_counter() - t
once(); print(min(once() for _ in range(5)))
""",
    "arena create+close, 1,000,000 slots": """
import time, guardalloc
def once():
    t = time.perf_counter(); a = guardalloc.Arena(4096, 1_000_000, backend="madvise"); a.close()
    return time.perf_counter() - t
once(); print(min(once() for _ in range(3)))
""",
    "Arena alloc+free 64 B": """
import time, guardalloc
a = guardalloc.Arena(4096, 1000, backend="madvise")
def once(n=100_000):
    alloc = a.alloc
    t = time.perf_counter()
    for _ in range(n):
        alloc(64).free()
    return (time.perf_counter() - t) / n
once(); print(min(once() for _ in range(5)))
""",
    "Pool alloc+free 64 B": """
import time, guardalloc
p = guardalloc.Pool()
def once(n=100_000):
    alloc = p.alloc
    t = time.perf_counter()
    for _ in range(n):
        alloc(64).free()
    return (time.perf_counter() - t) / n
once(); print(min(once() for _ in range(5)))
""",
    "numpy handler np.empty(1 KiB)+del": """
import time, numpy as np, guardalloc.numpy as gnp
def once(n=50_000):
    empty = np.empty
    t = time.perf_counter()
    for _ in range(n):
        a = empty(128); del a
    return (time.perf_counter() - t) / n
with gnp.guarded():
    once(); print(min(once() for _ in range(5)))
""",
    "pymem hooks rate 100, json round": """
import time, json, guardalloc.pymem as pm
doc = {"k%d" % i: [i, str(i) * 3, {"x": i}] for i in range(200)}
def once(n=300):
    t = time.perf_counter()
    for _ in range(n):
        json.loads(json.dumps(doc))
    return (time.perf_counter() - t) / n
pm.install(sample_rate=100)
once(); r = min(once() for _ in range(5))
pm.uninstall(); print(r)
""",
}


def measure(python: str, code: str) -> float:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{python}: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    print("| figure | old (median) | new (median) | new / old |")
    print("|---|---|---|---|")
    for name, code in CASES.items():
        if args.only and args.only not in name:
            continue
        old: list[float] = []
        new: list[float] = []
        for round_ in range(args.rounds):
            order = [(args.old, old), (args.new, new)]
            if round_ % 2:
                order.reverse()
            for python, samples in order:
                samples.append(measure(python, code))
        o, n = statistics.median(old), statistics.median(new)
        print(f"| {name} | {fmt(o)} | {fmt(n)} | {n / o:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

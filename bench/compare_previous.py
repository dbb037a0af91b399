"""Side-by-side figures against a previous guardalloc, in one run.

    python bench/compare_previous.py --old-python /path/to/old/venv/bin/python [--rounds 5]
        [--new-python PYTHON] [--only FIGURE ... | issue10 | issue14 | registry] [--json FILE]

Every figure is measured in fresh worker processes, alternating between the
new interpreter (``--new-python``, default this one, ``sys.executable``) and
``--old-python`` round by round (new, old; then old, new; ...), so a busy
machine slows both alike; each interpreter must import its own guardalloc
(two virtualenvs: the previous main and the new code). The output gives the
median over rounds of each worker's own median, as JSON and as a table with
the new/old ratio of every figure: ratios are taken between figures of the
same run. Exact counts (system calls, VMAs, resident memory) are printed
beside the times.

The figures (``--only`` takes their names, or a group):

issue14 (the default; what docs/performance.md tabulates for issue 14):

- numpy: ``a = np.zeros(1 << 20); a[::512] = 1; del a`` inside
  ``guardalloc.numpy.guarded()`` against numpy's own allocator.
- create: a 1,000,000-slot arena, madvise guards against ``backend="none"``;
  and the cost per slot of guarding all of it (built and opened whole).
- bookkeeping: build time and resident memory of a 20,000,000-slot arena.
- uaf: ``Arena(uaf=True)`` alloc + free with 10,000 live buffers, madvise
  and mprotect.
- pymem: one round of bench/bench_pymem.py's workload, ``sample_rate=1``
  against the plain interpreter (the worker's CPU time).
- floor: bench/kernel/guard_floor.c, the kernel's own cost of the same calls
  without Python (``floor_batched_ns`` per guard of an eager arena,
  ``floor_uafcycle_ns`` per use-after-free cycle), interpreter-independent:
  measured once per round, reported as side "kernel".

registry (the fault handler's table of arenas): with n = 16, 1,024 and
16,384 arenas live (``Arena(4096, 1)`` each), ``Arena(4096, 1)`` create +
close, a pair of lookups (``ga_find_arena`` through ctypes: an address in no
arena and one in the newest arena), and the nodes a miss visits
(``ga_registry_steps``; a registry without it scanned its whole table).

issue10 (the C-core refactor's before/after table):

- create_30k, create_1m: ``Arena(4096, N, backend="madvise")`` + close, for
  30,000 and 1,000,000 slots.
- arena_alloc: ``Arena.alloc(64).free()``; pool_alloc: ``Pool.alloc(64).free()``.
- numpy_handler: ``np.empty(128)`` + del inside ``guardalloc.numpy.guarded()``.
- pymem_hooks: a json dumps + loads round of a 200-key document under
  ``guardalloc.pymem.install(sample_rate=100)``.

Times are CPU time (the worker thread's; the pymem worker's process), so
that waiting for a CPU on a busy machine counts on neither side. Besides
the medians, the output (and --json) has every figure's new / old ratio
round by round (the two workers of a round ran back to back).
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
# The thread's CPU time: waiting for a CPU on a busy machine counts on no side.
clock = time.thread_time
def median_of(fn, n, setup=None):
    times = []
    for _ in range(n):
        if setup: setup()
        t = clock(); fn(); times.append(clock() - t)
    return statistics.median(times)
def alloc_free(alloc, n=100_000):
    # Median seconds of one alloc(64).free(), over loops of n after a warm-up loop.
    def loop():
        for _ in range(n):
            alloc(64).free()
    loop()
    return median_of(loop, 5) / n
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
    t = clock(); a = Arena(4096, N, backend="madvise"); madvise.append(clock() - t)
    out["create_syscalls"] = a.stats()["guard_syscalls"]; a.close()
    t = clock(); a = Arena(4096, N, backend="none"); none.append(clock() - t); a.close()
out["create_madvise_us"] = statistics.median(madvise) * 1e6
out["create_none_us"] = statistics.median(none) * 1e6
# Guarding every slot: build, then open (lazy) or nothing left to do (eager).
whole = []
for _ in range(5):
    t = clock()
    a = Arena(4096, N, backend="madvise")
    if hasattr(a, "alloc"):
        a.alloc(1, slot=N - 1).free()
    whole.append(clock() - t)
    out["whole_syscalls"] = a.stats()["guard_syscalls"]
    a.close()
out["per_slot_ns"] = statistics.median(whole) / N * 1e9
""",
    "bookkeeping": """
from guardalloc import Arena
before = rss()
t = clock()
a = Arena(4096, 20_000_000, backend="madvise")
out["big_build_ms"] = (clock() - t) * 1e3
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
    "create_30k": """
from guardalloc import Arena
def build():
    Arena(4096, 30_000, backend="madvise").close()
build()
out["create_30k_us"] = median_of(build, 15) * 1e6
""",
    "create_1m": """
from guardalloc import Arena
def build():
    Arena(4096, 1_000_000, backend="madvise").close()
build()
out["create_1m_us"] = median_of(build, 7) * 1e6
""",
    "arena_alloc": """
from guardalloc import Arena
out["arena_alloc_free_ns"] = alloc_free(Arena(4096, 1000, backend="madvise").alloc) * 1e9
""",
    "pool_alloc": """
from guardalloc import Pool
out["pool_alloc_free_ns"] = alloc_free(Pool().alloc) * 1e9
""",
    "numpy_handler": """
import numpy as np, guardalloc.numpy as gnp
N = 50_000
def cycle(empty=np.empty):
    for _ in range(N):
        a = empty(128); del a
with gnp.guarded():
    cycle()
    out["numpy_handler_empty_ns"] = median_of(cycle, 5) / N * 1e9
""",
    "pymem_hooks": """
import guardalloc.pymem as pm
doc = {"k%d" % i: [i, str(i) * 3, {"x": i}] for i in range(200)}
N = 300
def cycle():
    for _ in range(N):
        json.loads(json.dumps(doc))
pm.install(sample_rate=100)
cycle()
out["pymem_hooks_json_us"] = median_of(cycle, 5) / N * 1e6
pm.uninstall()
""",
    "registry": """
import ctypes, glob, os, guardalloc
from guardalloc import Arena
from guardalloc.faults import registered_arenas
[path] = glob.glob(os.path.join(os.path.dirname(guardalloc.__file__), "libguardalloc_core*.so"))
core = ctypes.CDLL(path)
core.ga_find_arena.argtypes = [ctypes.c_void_p]
core.ga_find_arena.restype = ctypes.c_void_p
steps = getattr(core, "ga_registry_steps", None)
if steps is not None:
    steps.argtypes = [ctypes.c_void_p]
    steps.restype = ctypes.c_ulong
MISS = 4096   # in no arena: the previous registry scanned every entry for it
live = []
for n in (16, 1024, 16384):
    while len(live) < n - 1:
        live.append(Arena(4096, 1, backend="madvise"))
    def create_close():
        Arena(4096, 1, backend="madvise").close()
    for _ in range(20): create_close()
    out[f"registry_create_close_{n}_us"] = median_of(create_close, 300) * 1e6
    probe = Arena(4096, 1, backend="madvise")
    hit = probe.alloc(8).address
    def lookups(find=core.ga_find_arena):
        for _ in range(1000):
            find(MISS); find(hit)
    lookups()
    out[f"registry_lookup_pair_{n}_ns"] = median_of(lookups, 30) / 1000 * 1e9
    total = registered_arenas()
    out[f"registry_arenas_{n}"] = total
    # Nodes visited (comparisons); the previous registry's linear table
    # visited every entry for a miss.
    out[f"registry_miss_steps_{n}"] = steps(MISS) if steps else total
    probe.close()
for a in live: a.close()
""",
}
# pymem is measured by pymem_round() and floor by kernel_floor(), not by a
# FIGURES snippet.
SPECIAL = ("pymem", "floor")
GROUPS = {
    "issue14": ["numpy", "create", "bookkeeping", "uaf", "pymem", "floor"],
    "registry": ["registry"],
    "issue10": ["create_30k", "create_1m", "arena_alloc", "pool_alloc", "numpy_handler", "pymem_hooks"],
}


def pymem_round(python: str, rate: int) -> tuple[float, dict]:
    """Median seconds of bench_pymem.py's workload round in a worker (the
    CPU time the worker reports, else the round trip) and the last round's
    counts."""
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
        times.append(info.get("cpu_s", time.perf_counter() - t))
    proc.stdin.close()
    proc.wait(timeout=120)
    return statistics.median(times[1:]), info


def kernel_floor() -> dict:
    """bench/kernel/guard_floor.c's medians (3 rounds, 30,000 guards): ns per
    guard of each method and per use-after-free cycle, as floor_*_ns."""
    sys.path.insert(0, str(HERE / "kernel"))
    from guard_floor import run_columns  # noqa: E402

    columns = run_columns("guard_floor.c", ["30000", "3"])
    return {f"floor_{name}_ns": statistics.median(values) for name, values in columns.items()}


def per_round(samples: dict[str, dict[str, list]]) -> dict[str, dict]:
    """new / old of every numeric figure, round by round, and their median."""
    ratios = {}
    for key, new in samples["new"].items():
        old = samples["old"].get(key, [])
        pairs = [n / o for n, o in zip(new, old) if isinstance(n, (int, float)) and o]
        if pairs:
            ratios[key] = {"per_round": [round(x, 3) for x in pairs], "median": round(statistics.median(pairs), 3)}
    return ratios


def run_figure(python: str, name: str) -> dict:
    code = COMMON + textwrap.dedent(FIGURES[name]) + "\nprint(json.dumps(out))\n"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600,
                            cwd=NEUTRAL_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"{python} {name}: {result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def selected(only: list[str] | None) -> list[str]:
    """The figure names --only asks for (groups expanded, each once, in order)."""
    names: list[str] = []
    for name in only or ["issue14"]:
        for figure in GROUPS.get(name, [name]):
            if figure not in names:
                names.append(figure)
    return names


def table(medians: dict[str, dict[str, float]]) -> str:
    """A markdown table of the figures both sides have, with new / old."""
    lines = ["| figure | old (median) | new (median) | new / old |", "|---|---|---|---|"]
    for key, new in medians["new"].items():
        old = medians["old"].get(key)
        if old is None:
            continue
        ratio = f"{new / old:.3f}" if old else "-"
        lines.append(f"| {key} | {old:.4g} | {new:.4g} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-python", required=True)
    parser.add_argument("--new-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, choices=[*GROUPS, *FIGURES, *SPECIAL],
                        metavar="FIGURE", help=f"figures or groups: {', '.join([*GROUPS, *FIGURES, *SPECIAL])}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sides = [("new", args.new_python), ("old", args.old_python)]
    names = selected(args.only)
    samples: dict[str, dict[str, list]] = {side: {} for side, _ in sides}
    samples["kernel"] = {}
    for r in range(args.rounds):
        for name in names:
            if name == "floor":
                for key, value in kernel_floor().items():
                    samples["kernel"].setdefault(key, []).append(value)
                continue
            # Odd rounds run old first, so neither side always goes first.
            for side, python in (sides if r % 2 == 0 else sides[::-1]):
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
    ratios = per_round(samples)
    print(json.dumps({"medians": medians, "new_over_old": ratios}, indent=1))
    print(table(medians))
    if args.json:
        args.json.write_text(json.dumps({"medians": medians, "new_over_old": ratios, "samples": samples},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

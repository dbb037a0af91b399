"""Native stacks' cost, this guardalloc against a previous one, in one run:
worker processes alternate between the two interpreters round by round (new,
old; then old, new; ...), so a busy machine slows both alike.

    python bench/stacks_ab.py --old-python /path/to/old/venv/bin/python [--rounds 5]

Figures (medians over rounds of each worker's own median, CPU time):

- pool: a 64-byte malloc + free_ptr through Pool's C interface without the
  GIL (tests/helpers/pool_stress.pyx, built against each side's guardalloc
  with this interpreter's Cython), Pool(native_stacks=False) against True,
  interleaved inside the worker; ns per pair.
- pymem: one round of bench/bench_pymem.py's workload under
  ``python -m guardalloc run --pymem 1`` (each side's default stacks) and
  with ``--no-native-stacks``.
- native: the same workload under ``run --native 1`` (the malloc library
  guards every malloc), with and without ``--no-native-stacks``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_pymem import WORKER  # noqa: E402
from helpers import _BUILD_HELPER, HELPERS  # noqa: E402

POOL_WORKER = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import guardalloc
from pool_stress import alloc_free_pairs
PAIRS, samples = 2000, {False: [], True: []}
with guardalloc.Pool(native_stacks=False) as plain, guardalloc.Pool(native_stacks=True) as stacked:
    for _ in range(15):
        for flag, pool in ((False, plain), (True, stacked)):
            start = time.thread_time()
            alloc_free_pairs(pool, PAIRS, 64)
            samples[flag].append((time.thread_time() - start) / PAIRS * 1e9)
print(json.dumps({"plain": statistics.median(samples[False]), "stacks": statistics.median(samples[True])}))
"""

# bench_pymem's worker, timing rounds itself: "go" lines in, one JSON line out.
WORKLOAD = WORKER.replace("rate = int(sys.argv[1])", "rate = 0")


def build_helper(python: str, out: Path) -> Path:
    """pool_stress built against the guardalloc that `python` imports."""
    package = Path(subprocess.run([python, "-c", "import guardalloc, os; print(os.path.dirname(guardalloc.__file__))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-c", _BUILD_HELPER, "pool_stress", str(HELPERS / "pool_stress.pyx"), str(out),
                    str(package.parent), str(package)], check=True, capture_output=True)
    return out


def pool_figure(python: str, helper: Path) -> dict:
    proc = subprocess.run([python, "-c", POOL_WORKER, str(helper)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def workload_figure(python: str, run_args: list[str], script: Path, rounds: int = 3) -> float:
    """Median CPU seconds of one workload round under `python -m guardalloc run RUN_ARGS`."""
    proc = subprocess.run([python, "-m", "guardalloc", "run", *run_args, str(script)], input="go\n" * rounds,
                          capture_output=True, text=True, timeout=1200)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(lines) != rounds:
        raise RuntimeError(f"{python} run {run_args}: status {proc.returncode}\n{proc.stderr[-2000:]}")
    return statistics.median(line["cpu_s"] for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-python", required=True)
    parser.add_argument("--new-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sides = {"new": args.new_python, "old": args.old_python}
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        helpers = {name: build_helper(python, Path(tmp) / name) for name, python in sides.items()}
        script = Path(tmp) / "workload.py"
        script.write_text(WORKLOAD)
        for r in range(args.rounds):
            for name in (["new", "old"] if r % 2 == 0 else ["old", "new"]):
                python = sides[name]
                pool = pool_figure(python, helpers[name])
                results.setdefault(f"pool plain ns ({name})", []).append(pool["plain"])
                results.setdefault(f"pool stacks ns ({name})", []).append(pool["stacks"])
                for label, run_args in (("pymem 1", ["--pymem", "1"]),
                                        ("pymem 1 --no-native-stacks", ["--pymem", "1", "--no-native-stacks"]),
                                        ("native 1", ["--native", "1"]),
                                        ("native 1 --no-native-stacks", ["--native", "1", "--no-native-stacks"])):
                    results.setdefault(f"{label} s ({name})", []).append(workload_figure(python, run_args, script))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    medians = {key: statistics.median(values) for key, values in results.items()}
    for key, value in medians.items():
        print(f"{key:40s} {value:12.4f}")
    for name in sides:
        print(f"pool stacks/plain ({name}): {medians[f'pool stacks ns ({name})'] / medians[f'pool plain ns ({name})']:.2f}x")
        for label in ("pymem 1", "native 1"):
            print(f"{label}: stacks/no stacks ({name}): "
                  f"{medians[f'{label} s ({name})'] / medians[f'{label} --no-native-stacks s ({name})']:.2f}x")
    for label in ("pymem 1", "native 1", "pool stacks ns", "pool plain ns"):
        suffix = "" if label.startswith("pool") else " s"
        print(f"{label}: new/old {medians[f'{label}{suffix} (new)'] / medians[f'{label}{suffix} (old)']:.2f}x")
    print(json.dumps(medians))


if __name__ == "__main__":
    main()

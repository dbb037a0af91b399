"""Build and run guard_floor.c: what the kernel itself charges per guard.

    python bench/kernel/guard_floor.py [--slots N] [--rounds R]

Prints the median ns per guard of each method and the mprotect/batched
ratio, so guardalloc's own figures (``python -m guardalloc bench``) can be
read against the floor no user-space code can go below; and the calls of
one ``Arena(uaf=True)`` alloc + free cycle (``uafcycle``), the floor of
bench/bench_uaf.py's madvise side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_columns(source: str, args: list[str]) -> dict[str, list[float]]:
    """Compile the C program ``source`` (next to this file) with cc -O2, run
    it with args, and collect its output lines of ``name value`` pairs into
    one list of values per name.

    Raises:
        RuntimeError: no C compiler on PATH.
        subprocess.CalledProcessError: the build or the program failed.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(f"{source}: no C compiler (cc/gcc) on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / Path(source).stem
        subprocess.run([compiler, "-O2", "-o", str(binary), str(Path(__file__).with_name(source))],
                       check=True)
        out = subprocess.run([str(binary), *args], check=True, capture_output=True, text=True).stdout
    columns: dict[str, list[float]] = {}
    for line in out.splitlines():
        words = line.split()
        for name, value in zip(words[::2], words[1::2]):
            columns.setdefault(name, []).append(float(value))
    return columns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    try:
        columns = run_columns("guard_floor.c", [str(args.slots), str(args.rounds)])
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    medians = {name: statistics.median(values) for name, values in columns.items()}
    print(f"{args.slots:,} guards, median of {args.rounds} rounds, ns per guard:")
    for name, value in medians.items():
        print(f"  {name:<9} {value:8,.0f}")
    print(f"  mprotect / batched: {medians['mprotect'] / medians['batched']:.1f}x, "
          f"mprotect / madvise: {medians['mprotect'] / medians['madvise']:.1f}x")
    print(f"  one use-after-free cycle (one madvise guard, 1/1024 of a process_madvise lifting "
          f"1,024): {medians['uafcycle']:,.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())

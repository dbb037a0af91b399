"""Build and run locality.c: what one object per guarded page costs the
code that reads the objects, at several object counts.

    python bench/kernel/locality.py [--rounds R] [--objects N ...]

Prints the median (over R runs) ns per object visited for each layout and
the ratios to the packed layout: ``exact`` is guardalloc's (one 48-byte
object per 8 KiB stride, ending at its page's end so that an overflow faults
at the first byte), ``coloured`` and ``coloured+thp`` take away the shared
cache sets and then the TLB misses, which the exact guard and the guard
pages forbid (see locality.c). The figures behind docs/performance.md's
"sample_rate=1: where the time goes".
"""

from __future__ import annotations

import argparse
import statistics
import sys

from guard_floor import run_columns

LAYOUTS = ("packed", "exact", "coloured", "coloured+thp")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, nargs="*", default=[200, 2_000, 20_000, 75_000, 300_000])
    args = parser.parse_args()
    print(f"ns per object visited, median of {args.rounds} runs (ratio to packed)")
    print(f"{'objects':>9} {'order':<7} " + " ".join(f"{name:>20}" for name in LAYOUTS))
    for n in args.objects:
        runs: dict[str, list[float]] = {}
        try:
            for _ in range(args.rounds):
                for name, values in run_columns("locality.c", [str(n), "20"]).items():
                    runs.setdefault(name, []).extend(values)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        for order in ("order", "random"):
            medians = [statistics.median(runs[f"{name}-{order}"]) for name in LAYOUTS]
            cells = " ".join(f"{m:9.2f} ({m / medians[0]:5.1f}x)".rjust(20) for m in medians)
            print(f"{n:>9,} {order:<7} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m guardalloc demo``: what guardalloc is for, in a few seconds.

Builds the same arena with madvise and mprotect guards side by side (VMAs
added exactly; build time over several interleaved rounds: median and
spread), then lets a child process (``demo_child.py``) write one byte past a
byte-exact buffer and shows how it dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import warnings
from typing import Literal

from guardalloc.arena import Arena
from guardalloc.bench.timing import interleaved
from guardalloc.cli.main import int_at_least
from guardalloc.introspect.maps import max_map_count, vma_count
from guardalloc.introspect.probe import support

# The child's script: a real file, so its traceback shows readable lines.
OVERFLOW_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_child.py")
ROUNDS = 7


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("the same arena with madvise and with mprotect guards, and a caught overflow", ""),
    ("bigger arenas, fewer builds", "--slots 100000 --rounds 3"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int_at_least(1), default=30_000, help="slots per arena (default 30000)")
    parser.add_argument("--rounds", type=int_at_least(1), default=ROUNDS,
                        help=f"builds of each arena, interleaved (default {ROUNDS})")


def _build(backend: str, slots: int) -> Arena:
    """One arena with every slot's guards in place (madvise arenas lay their
    guards lazily: claiming the last slot opens them all)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = Arena(4096, slots, backend=backend)  # type: ignore[arg-type]
    arena.alloc(1, slot=slots - 1).free()
    return arena


def counts(backend: str, slots: int) -> tuple[int, int]:
    """VMAs added and guard syscalls for one arena (exact, no timing)."""
    before = vma_count()
    arena = _build(backend, slots)
    try:
        return vma_count() - before, int(arena.stats()["guard_syscalls"])
    finally:
        arena.close()


def build_times(backends: list[str], slots: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per build, the backends interleaved round by round (one warm-up
    build each first), so a busy spell of the machine hits both alike."""
    sides = {b: (lambda b=b: _build(b, slots)) for b in backends}
    close = {b: (lambda arena: arena.close()) for b in backends}
    interleaved(sides, 1, teardown=close)
    samples = interleaved(sides, rounds, teardown=close).samples
    return {str(side): times for side, times in samples.items()}


def run(args: argparse.Namespace) -> int:
    found = support()
    print(f"kernel {found.kernel}: MADV_GUARD_INSTALL {'works' if found.anonymous else 'unavailable'}"
          f"{'' if found.anonymous else ' (' + found.reason + ')'}, "
          f"process_madvise batching {'works' if found.process_madvise else 'unavailable'}")
    timing = ("one build each" if args.rounds == 1
              else f"median (min-max) of {args.rounds} builds each, interleaved")
    print(f"\nOne arena of {args.slots:,} slots of 4 KiB, a guard page between every two; build time: "
          f"{timing}:\n")
    print(f"  {'backend':<10} {'VMAs added':>10} {'build time':>24} {'guard syscalls':>15}")
    backends, figures = [], {}
    for backend in ("madvise", "mprotect"):
        if backend == "madvise" and not found.anonymous:
            continue
        try:
            figures[backend] = counts(backend, args.slots)
            backends.append(backend)
        except MemoryError as exc:
            print(f"  {backend:<10} failed: {exc}")
    times = build_times(backends, args.slots, args.rounds) if backends else {}
    for backend in backends:
        added, syscalls = figures[backend]
        values = times[backend]
        spread = f"{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}"
        print(f"  {backend:<10} {added:>10,} {statistics.median(values) * 1e3:>9.1f} ms ({spread:>11} ms) "
              f"{syscalls:>15,}")
    if len(backends) == 2:
        ratios = sorted(m / a for m, a in zip(times["mprotect"], times["madvise"]))
        ratio = statistics.median(times["mprotect"]) / statistics.median(times["madvise"])
        print(f"\n  madvise guards built {ratio:.1f}x faster (round by round: {ratios[0]:.1f}x to "
              f"{ratios[-1]:.1f}x; the figure depends on the machine) and added "
              f"{figures['mprotect'][0] - figures['madvise'][0]:,} fewer VMAs "
              f"(vm.max_map_count is {max_map_count() or 0:,}).")

    print("\nA child process writes one byte past a 100-byte buffer (alignment=1):\n")
    child = subprocess.run([sys.executable, OVERFLOW_CHILD], capture_output=True, text=True,
                           env={**os.environ, "PYTHONFAULTHANDLER": ""})
    for line in (child.stdout + child.stderr).splitlines():
        print("  | " + line)
    if child.returncode == -signal.SIGSEGV:
        print("\n  the child died with SIGSEGV at the first byte past the buffer: caught.")
        return 0
    print(f"\n  unexpected: the child exited with status {child.returncode}")
    return 1

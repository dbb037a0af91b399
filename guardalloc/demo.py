"""``python -m guardalloc demo``: what guardalloc is for, in a few seconds.

Builds the same arena with madvise and mprotect guards side by side (VMAs
added, build time), then lets a child process write one byte past a
byte-exact buffer and shows how it dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from typing import Literal

from guardalloc.arena import Arena
from guardalloc.maps import max_map_count, vma_count
from guardalloc.support import support

OVERFLOW_CHILD = textwrap.dedent(
    """
    import ctypes, guardalloc
    arena = guardalloc.Arena(4096, 16, alignment=1, tracebacks=True)

    def read_packet():
        return arena.alloc(100)

    buf = read_packet()
    ctypes.memset(buf.address, 0x41, 100)          # fine: inside the buffer
    print("wrote 100 bytes into a 100-byte buffer", flush=True)
    ctypes.memset(buf.address + 100, 0x41, 1)      # one byte past the end
    print("not reached", flush=True)
    """
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int, default=30_000, help="slots per arena (default 30000)")


def measure(backend: Literal["madvise", "mprotect"], slots: int) -> tuple[int, float, int]:
    """VMAs added, seconds to build and guard every slot, guard syscalls
    for one arena (madvise arenas lay their guards lazily: the last slot's
    allocation opens them all)."""
    before = vma_count()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = Arena(4096, slots, backend=backend)
    arena.alloc(1, slot=slots - 1).free()
    seconds = time.perf_counter() - start
    added = vma_count() - before
    syscalls = int(arena.stats()["guard_syscalls"])
    arena.close()
    return added, seconds, syscalls


def run(args: argparse.Namespace) -> int:
    found = support()
    print(f"kernel {found.kernel}: MADV_GUARD_INSTALL {'works' if found.anonymous else 'unavailable'}"
          f"{'' if found.anonymous else ' (' + found.reason + ')'}, "
          f"process_madvise batching {'works' if found.process_madvise else 'unavailable'}")
    print(f"\nOne arena of {args.slots:,} slots of 4 KiB, a guard page between every two:\n")
    print(f"  {'backend':<10} {'VMAs added':>10} {'build time':>12} {'guard syscalls':>15}")
    rows = {}
    backends: tuple[Literal["madvise", "mprotect"], ...] = ("madvise", "mprotect")
    for backend in backends:
        if backend == "madvise" and not found.anonymous:
            continue
        try:
            rows[backend] = measure(backend, args.slots)
        except MemoryError as exc:
            print(f"  {backend:<10} failed: {exc}")
            continue
        added, seconds, syscalls = rows[backend]
        print(f"  {backend:<10} {added:>10,} {seconds * 1000:>10.1f} ms {syscalls:>15,}")
    if len(rows) == 2:
        ratio = rows["mprotect"][1] / rows["madvise"][1]
        print(f"\n  madvise guards built {ratio:.1f}x faster and added "
              f"{rows['mprotect'][0] - rows['madvise'][0]:,} fewer VMAs "
              f"(vm.max_map_count is {max_map_count() or 0:,}).")

    print("\nA child process writes one byte past a 100-byte buffer (alignment=1):\n")
    child = subprocess.run([sys.executable, "-c", OVERFLOW_CHILD], capture_output=True, text=True,
                           env={**os.environ, "PYTHONFAULTHANDLER": ""})
    for line in (child.stdout + child.stderr).splitlines():
        print("  | " + line)
    if child.returncode == -signal.SIGSEGV:
        print("\n  the child died with SIGSEGV at the first byte past the buffer: caught.")
        return 0
    print(f"\n  unexpected: the child exited with status {child.returncode}")
    return 1

"""Stack capture speed of libgcc's _Unwind_Backtrace, libunwind's caching
unw_backtrace and libunwind's unw_step loop, on stacks through libpython (a
Python recursion through map()), numpy (np.frompyfunc calling Python) and
gcc -O2 -fomit-frame-pointer C (a recursion calling back): the best of 15
interleaved rounds of 2,000 captures each. Builds bench/unwind_speed.c with
the system compiler; needs libunwind (libunwind-dev).

    python bench/unwind_speed.py
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
UNWINDERS = ["libgcc _Unwind_Backtrace", "libunwind unw_backtrace", "libunwind unw_step"]
RECURSION = "typedef void (*cb_t)(void);\n" \
    "__attribute__((noinline)) int rec(int n, cb_t cb) { if (n == 0) { cb(); return 1; }\n" \
    "    int r = rec(n - 1, cb); __asm__ volatile(\"\" ::: \"memory\"); return r + n; }\n"


def build(out: Path) -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """The measuring library and the -O2 recursion, built into out."""
    (out / "rec.c").write_text(RECURSION)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", str(HERE / "unwind_speed.c"), "-o", str(out / "speed.so"),
                    "-lunwind", "-lgcc_s"], check=True)
    subprocess.run(["cc", "-O2", "-fomit-frame-pointer", "-shared", "-fPIC", str(out / "rec.c"),
                    "-o", str(out / "rec.so")], check=True)
    speed = ctypes.CDLL(str(out / "speed.so"))
    speed.measure.restype = ctypes.c_double
    return speed, ctypes.CDLL(str(out / "rec.so"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        speed, rec = build(Path(tmp))
        results: dict[str, list[tuple[float, int]]] = {}

        def measure(where: str) -> None:
            frames = ctypes.c_int()
            best = [float("inf")] * len(UNWINDERS)
            for _ in range(15):
                for which in range(len(UNWINDERS)):
                    best[which] = min(best[which], speed.measure(which, 2000, ctypes.byref(frames)))
            results[where] = [(ns, frames.value) for ns in best]

        def down(n: int):
            return list(map(down, [n - 1]))[0] if n else measure("libpython (map recursion, 10 levels)")

        down(10)
        np.frompyfunc(lambda x: measure("numpy (frompyfunc calling Python)"), 1, 1)(np.arange(1))
        callback = ctypes.CFUNCTYPE(None)(lambda: measure("gcc -O2 -fomit-frame-pointer (30 levels)"))
        rec.rec(30, callback)
    for where, rows in results.items():
        print(where)
        for name, (ns, _) in zip(UNWINDERS, rows):
            frames = rows[0][1]
            print(f"  {name:26s} {ns:9.0f} ns a stack of {frames} frames, {ns / frames:7.1f} ns a frame")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

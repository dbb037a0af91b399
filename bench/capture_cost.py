"""What each part of a native stack's capture costs (bench/capture_cost.c),
at the bottom of a Python stack of a given number of map() levels: best of
15 interleaved rounds of 2,000 calls. Builds against the installed
guardalloc's core library with the system compiler; needs libunwind.

    python bench/capture_cost.py [LEVELS]
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

import guardalloc

HERE = Path(__file__).resolve().parent
C_DIR = HERE.parent / "src" / "guardalloc" / "_c"
PARTS = ["unw_backtrace alone", "unw_backtrace + a table search a frame", "ga_stack_capture",
         "ga_stack_capture + ga_stack_pack", "module table refresh, nothing new"]


def main(levels: int) -> None:
    core = next(Path(guardalloc.__file__).resolve().parent.glob("libguardalloc_core*.so"))
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "capture_cost.so"
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-DGA_HAVE_LIBUNWIND", f"-I{C_DIR}",
                        str(HERE / "capture_cost.c"), "-o", str(lib), str(core), "-lunwind",
                        f"-Wl,-rpath,{core.parent}"], check=True)
        so = ctypes.CDLL(str(lib))
        so.measure.restype = ctypes.c_double
        best = [float("inf")] * len(PARTS)
        frames = ctypes.c_int()
        depth = [0]

        def bottom():
            for _ in range(15):
                for which in range(len(PARTS)):
                    best[which] = min(best[which], so.measure(which, 2000, ctypes.byref(frames)))
                    if which == 2:
                        depth[0] = frames.value

        def down(n: int):
            return list(map(down, [n - 1]))[0] if n else bottom()

        down(levels)
    print(f"{levels} map() levels, {depth[0]} frames captured:")
    for name, ns in zip(PARTS, best):
        print(f"  {name:42s} {ns:7.0f} ns")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

"""The child process of ``guardalloc demo``: one byte written past a
100-byte buffer. A file of its own, so that the fault report's traceback
points at lines you can open and read."""

import os
import sys

# Run as a script, its own directory (the package) comes first on sys.path,
# where guardalloc/numpy.py would pass for numpy: import from outside it.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import ctypes  # noqa: E402

import guardalloc  # noqa: E402

def read_packet():
    return arena.alloc(100)


# Only as a script: importing the module (stubtest, pydoc) must not crash.
if __name__ == "__main__":
    arena = guardalloc.Arena(4096, 16, alignment=1, tracebacks=True)
    buf = read_packet()
    ctypes.memset(buf.address, 0x41, 100)          # fine: inside the buffer
    print("wrote 100 bytes into a 100-byte buffer", flush=True)
    ctypes.memset(buf.address + 100, 0x41, 1)      # one byte past the end
    print("not reached", flush=True)

"""free() and realloc() of a block that another guardalloc front end made (a
Pool, an Arena, the PyMem hooks, the numpy handler) while the malloc library
is preloaded: a bad-free report naming whose block it is, never glibc's
"free(): invalid pointer"; the twin frees each block through its owner."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report-schema.json").read_text())

# How each front end makes a block: (run's flags, code making `block` (an
# object owning it) and `address`, code freeing it through its owner, the
# owner's name in the report, the block's size: a bytearray adds a NUL).
FRONTS = {
    "pool": ([], """
        from guardalloc.pool import Pool
        pool = Pool(tracebacks=True)
        block = pool.alloc(64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(block))
    """, "pool.free(block)", "a guardalloc Pool", 64),
    "arena": ([], """
        import guardalloc
        arena = guardalloc.Arena(4096, 4)
        block = arena.alloc(64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(block))
    """, "block.free()", "a guardalloc Arena", 64),
    "pymem": (["--pymem", "1"], """
        block = bytearray(64)
        address = ctypes.addressof((ctypes.c_char * 64).from_buffer(block))
    """, "del block", "the guardalloc PyMem hooks' Pool", 65),
    "numpy": (["--numpy"], """
        import numpy
        block = numpy.zeros(64, numpy.uint8)
        address = block.ctypes.data
    """, "del block", "the guardalloc numpy handler's Pool", 64),
}

SCRIPT = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.realloc.restype = ctypes.c_void_p
libc.malloc.restype = ctypes.c_void_p
{make}
if sys.argv[1] == "twin":
    {owner_free}
    libc.free(libc.realloc(libc.malloc(64), 100))   # malloc's own block: to malloc
    print("twin done")
elif sys.argv[1] == "free":
    libc.free(address)
elif sys.argv[1] == "free-after-owner":
    {owner_free}
    libc.free(address)
else:
    libc.realloc(address + int(sys.argv[2]), 100)
print("not reached")
"""


def _run(tmp_path, front: str, *argv: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    flags, make, owner_free = FRONTS[front][:3]
    if front == "numpy" and importlib.util.find_spec("numpy") is None:
        pytest.skip("numpy is not installed")
    script = tmp_path / "frees.py"
    script.write_text(SCRIPT.format(make=textwrap.dedent(make), owner_free=owner_free))
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    log = tmp_path / "reports.%p.json"
    result = subprocess.run([sys.executable, "-m", "guardalloc", "run", *flags, "--native", "1",
                             "--log-path", str(log), str(script), *argv],
                            capture_output=True, text=True, timeout=300, env=env)
    reports = [json.loads(line) for path in sorted(tmp_path.glob("reports.*.json"))
               for line in path.read_text().splitlines()]
    return result, reports


@pytest.mark.parametrize("front", list(FRONTS))
def test_free_of_a_guardalloc_block_is_a_bad_free_naming_its_owner(front, tmp_path):
    import jsonschema

    result, reports = _run(tmp_path, front, "free")
    owner, size = FRONTS[front][3:]
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert "not reached" not in result.stdout
    assert "free(): invalid pointer" not in result.stderr
    assert "bad-free: attempting free on address which was not malloc()-ed: 0x" in result.stderr
    assert f"is a live {size}-byte block of {owner}, not malloc()'s" in result.stderr, result.stderr
    assert "(live) of arena 0x" in result.stderr and f"its {size}-byte buffer [0x" in result.stderr
    # This free's native frames and its Python ones (the ctypes call's line; one stack, symbolized).
    block = result.stderr.split("freed by free at:\n", 1)[1].split("\n  allocated at", 1)[0]
    assert "    #0 0x" in block and re.search(r"#\d+ in <module> \S+frees\.py:\d+", block), result.stderr
    assert "allocated at:" in result.stderr
    if front == "pool":   # Pool(tracebacks=True): the allocation's Python line
        allocated = result.stderr.split("allocated at:", 1)[1]
        assert re.search(rf"#\d+ in \S+ {re.escape(str(tmp_path / 'frees.py'))}:\d+", allocated), result.stderr
    (report,) = reports
    jsonschema.validate(report, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):   # the memory kind came with version 5
        jsonschema.validate({**report, "schema_version": 4}, SCHEMA)
    assert (report["kind"], report["freed_by"], report["size"], report["offset"]) == ("bad-free", "free", size, 0)
    assert report["memory"]["kind"] == "guardalloc" and report["memory"]["module"] == owner
    assert report["memory"]["slot_state"] == "live"
    assert report["arena"] is not None and report["slot"] is not None
    assert int(report["memory"]["start"], 16) <= int(report["address"], 16) < int(report["memory"]["end"], 16)
    if front == "pool":
        assert "frees.py" in report["stacks"]["allocated"]


@pytest.mark.parametrize("front", ["pool", "pymem"])
def test_realloc_of_a_pointer_into_a_guardalloc_block_is_a_bad_free(front, tmp_path):
    result, reports = _run(tmp_path, front, "realloc", "8")
    owner, size = FRONTS[front][3:]
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert f"is inside a live {size}-byte block of {owner}" in result.stderr, result.stderr
    assert "the pointer 8 bytes inside it" in result.stderr
    assert "freed by realloc at:" in result.stderr
    (report,) = reports
    assert (report["freed_by"], report["offset"], report["memory"]["kind"]) == ("realloc", 8, "guardalloc")


def test_free_of_a_block_its_owner_freed_says_so(tmp_path):
    result, reports = _run(tmp_path, "pool", "free-after-owner")
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert ("is in a freed slot of a guardalloc Pool, not malloc()'s: its owner freed the block already"
            in result.stderr), result.stderr
    assert "last freed at:" in result.stderr
    (report,) = reports
    assert (report["memory"]["kind"], report["memory"]["slot_state"]) == ("guardalloc", "free")


@pytest.mark.parametrize("front", list(FRONTS))
def test_twin_frees_each_block_through_its_owner_silently(front, tmp_path):
    result, reports = _run(tmp_path, front, "twin")
    assert result.returncode == 0, result.stderr
    assert "twin done" in result.stdout
    assert "guardalloc:" not in result.stderr and reports == []

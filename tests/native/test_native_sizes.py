"""Extreme sizes and alignments at the malloc library's entry points: sizes
within an alignment of SIZE_MAX, past PTRDIFF_MAX, nmemb * size overflows,
bad alignments. Each returns NULL and ENOMEM (posix_memalign: ENOMEM) at
once, never wraps to a small block, never loops.

- The fuzz corpus (tests/native/fuzz/corpus, found by heap_fuzz.c under
  libFuzzer) replayed through the built library by a gcc-built driver.
- A hypothesis test driving the entry points by ctypes from a preloaded child.
- max_bytes values the reservation cannot hold: one line, exit status 2.
"""

from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from native_support import HERE, build, run_preloaded  # noqa: F401 (build: a fixture)
from guardalloc import native

FUZZ = os.path.join(HERE, "fuzz")
SIZE_MAX = 2**64 - 1
PTRDIFF_MAX = 2**63 - 1
PAGE = os.sysconf("SC_PAGE_SIZE")
# A call that has not answered after this long is looping.
CALL_TIMEOUT = 20


@pytest.mark.parametrize("options", ["sample_rate=1", "sample_rate=1:alignment=1", "sample_rate=3:align=left",
                                     "sample_rate=1:uaf=1:quarantine=8"])
def test_fuzz_corpus_replays_cleanly(build, options):
    driver = build(os.path.join(FUZZ, "heap_fuzz.c"), "-DGA_REPLAY")
    corpus = os.path.join(FUZZ, "corpus")
    count = len([name for name in os.listdir(corpus) if not name.startswith(".")])
    assert count > 0
    result = run_preloaded([driver, corpus], options, timeout=180)
    assert result.returncode == 0 and result.stdout.strip() == f"ok {count}", \
        f"status {result.returncode}: {result.stdout}{result.stderr}"


# -- hypothesis, through ctypes in a preloaded child -------------------------

# The child: one JSON call per line in, one JSON answer per line out. A block
# it gets has its first and last byte written (it is real memory) and is
# freed at once; realloc's is given an 8-byte block holding "ABCDEFGH".
CHILD = textwrap.dedent(r"""
    import ctypes, json, sys
    libc = ctypes.CDLL(None, use_errno=True)
    size_t, vp = ctypes.c_size_t, ctypes.c_void_p
    for name, args in [("malloc", [size_t]), ("calloc", [size_t, size_t]), ("realloc", [vp, size_t]),
                       ("reallocarray", [vp, size_t, size_t]), ("aligned_alloc", [size_t, size_t]),
                       ("memalign", [size_t, size_t]), ("valloc", [size_t]), ("pvalloc", [size_t]),
                       ("malloc_usable_size", [vp])]:
        getattr(libc, name).restype = size_t if name == "malloc_usable_size" else vp
        getattr(libc, name).argtypes = args
    libc.posix_memalign.argtypes = [ctypes.POINTER(vp), size_t, size_t]
    libc.free.argtypes = [vp]
    for line in sys.stdin:
        call = json.loads(line)
        op, a, b = call["op"], call["a"], call["b"]
        ctypes.set_errno(0)
        rc, old_ok = 0, None
        if op == "posix_memalign":
            out = vp(12345)
            rc = libc.posix_memalign(ctypes.byref(out), a, b)
            p = out.value
        elif op in ("realloc", "reallocarray"):
            old = libc.malloc(8)
            ctypes.memmove(old, b"ABCDEFGH", 8)
            ctypes.set_errno(0)
            p = libc.realloc(old, a) if op == "realloc" else libc.reallocarray(old, a, b)
            if p is None and (a if op == "realloc" else a * b) == 0:
                pass                                   # glibc's realloc(p, 0): p freed
            elif p is None:
                old_ok = ctypes.string_at(old, 8) == b"ABCDEFGH"
                libc.free(old)
            else:
                n = a if op == "realloc" else a * b
                old_ok = ctypes.string_at(p, min(8, n)) == b"ABCDEFGH"[:min(8, n)]
        elif op in ("malloc", "valloc", "pvalloc"):
            p = getattr(libc, op)(a)
        else:
            p = getattr(libc, op)(a, b)
        err = ctypes.get_errno()
        usable = zero = 0
        if p is not None and p != 12345:
            usable = libc.malloc_usable_size(p)
            if op == "calloc" and a * b:
                zero = ctypes.string_at(p, 1) == b"\0" and ctypes.string_at(p + a * b - 1, 1) == b"\0"
            ctypes.memset(p, 1, 1)
            libc.free(p)
        print(json.dumps({"p": p, "errno": err, "rc": rc, "usable": usable, "zero": zero,
                          "old_ok": old_ok}), flush=True)
""")


class Child:
    """The preloaded child and its pipe; call() fails the test when the child
    died or a call does not answer within CALL_TIMEOUT."""

    def __init__(self, options: str):
        env = dict(os.environ)
        env.pop("PYTHONFAULTHANDLER", None)
        env["LD_PRELOAD"] = native.library_path()
        env["GUARDALLOC_OPTIONS"] = options
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def call(self, op: str, a: int, b: int = 0) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "a": a, "b": b}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], CALL_TIMEOUT)
        if not ready:
            self.proc.kill()
            pytest.fail(f"{op}({a}, {b}) did not return within {CALL_TIMEOUT} s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            pytest.fail(f"the child died in {op}({a}, {b}): status {self.proc.returncode}\n"
                        f"{self.proc.stderr.read()}")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=CALL_TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module", params=["sample_rate=1", "sample_rate=2:align=left"])
def child(request):
    c = Child(request.param)
    yield c
    c.close()


def near(value: int, spread: int = 1 << 12):
    return st.integers(max(0, value - spread), min(SIZE_MAX, value + spread))


# Sizes: anything, and the edges where arithmetic wraps.
sizes = st.one_of(
    st.integers(0, SIZE_MAX),
    near(SIZE_MAX, 1 << 16),
    near(PTRDIFF_MAX, 1 << 16),
    st.integers(0, 63).flatmap(lambda k: near(1 << k, 3)),
    st.integers(0, 1 << 20),
)
alignments = st.one_of(
    st.integers(0, 63).map(lambda k: 1 << k),
    st.integers(0, SIZE_MAX),
    st.integers(0, 4 * PAGE),
)


def too_big(n: int, alignment: int = 0) -> bool:
    return alignment > PTRDIFF_MAX or n > PTRDIFF_MAX - alignment


def pow2(x: int) -> bool:
    return x != 0 and x & (x - 1) == 0


def check_block(r: dict, n: int, alignment: int):
    assert r["p"] % alignment == 0, r
    assert r["usable"] >= n, r


HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(n=sizes)
def test_malloc_valloc_pvalloc(child, n):
    for op, alignment, need in [("malloc", 1, n), ("valloc", PAGE, n),
                                ("pvalloc", PAGE, -(-max(n, 1) // PAGE) * PAGE)]:
        r = child.call(op, n)
        if too_big(n, alignment if op != "malloc" else 0):
            assert r["p"] is None, (op, n, r)
        if r["p"] is None:
            assert r["errno"] == errno.ENOMEM, (op, n, r)
        else:
            check_block(r, need, alignment)


@HYPOTHESIS
@given(nmemb=sizes, size=sizes)
def test_calloc_and_reallocarray(child, nmemb, size):
    total = nmemb * size
    r = child.call("calloc", nmemb, size)
    if total > PTRDIFF_MAX:
        assert r["p"] is None, r
    if r["p"] is None:
        assert r["errno"] == errno.ENOMEM, r
    else:
        check_block(r, total, 1)
        assert total == 0 or r["zero"], r
    r = child.call("reallocarray", nmemb, size)
    if total > PTRDIFF_MAX:
        assert r["p"] is None and r["errno"] == errno.ENOMEM and r["old_ok"], r
    elif total and r["p"] is not None:
        assert r["old_ok"], r


@HYPOTHESIS
@given(n=sizes)
def test_realloc(child, n):
    r = child.call("realloc", n)
    if too_big(n):
        assert r["p"] is None and r["errno"] == errno.ENOMEM, r
    if r["p"] is None and n:
        assert r["errno"] == errno.ENOMEM and r["old_ok"], r   # the old block is untouched
    elif r["p"] is not None:
        assert r["old_ok"] and r["usable"] >= n, r


@HYPOTHESIS
@given(alignment=alignments, n=sizes)
def test_aligned_entry_points(child, alignment, n):
    r = child.call("posix_memalign", alignment, n)
    if not pow2(alignment) or alignment % 8:
        assert r["rc"] == errno.EINVAL and r["p"] == 12345, r
    elif too_big(n, alignment):
        assert r["rc"] == errno.ENOMEM and r["p"] == 12345, r
    elif r["rc"] == 0:
        check_block(r, n, alignment)
    else:
        assert r["rc"] == errno.ENOMEM and r["p"] == 12345, r
    assert r["errno"] == 0, r   # posix_memalign leaves errno alone
    r = child.call("aligned_alloc", alignment, n)
    if not pow2(alignment):
        assert r["p"] is None and r["errno"] == errno.EINVAL, r
    elif too_big(n, alignment):
        assert r["p"] is None and r["errno"] == errno.ENOMEM, r
    elif r["p"] is not None:
        check_block(r, n, alignment)
    r = child.call("memalign", alignment, n)
    rounded = 1 if alignment <= 1 else 1 << (alignment - 1).bit_length()   # memalign rounds up
    if alignment > 1 << 62:
        assert r["p"] is None and r["errno"] in (errno.EINVAL, errno.ENOMEM), r
    elif too_big(n, rounded):
        assert r["p"] is None and r["errno"] == errno.ENOMEM, r
    elif r["p"] is not None:
        check_block(r, n, rounded)


# -- max_bytes the reservation cannot hold --------------------------------------

@pytest.mark.parametrize("max_bytes", ["60T", "100T", "16777215T"])
def test_max_bytes_too_large_exits_2_with_one_line(max_bytes):
    result = run_preloaded([sys.executable, "-c", ""], f"sample_rate=1:max_bytes={max_bytes}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and f"max_bytes={max_bytes} needs" in lines[0] and "or less" in lines[0], lines


def test_max_bytes_it_suggests_works():
    result = run_preloaded([sys.executable, "-c", ""], "sample_rate=1:max_bytes=100T")
    suggested = result.stderr.rsplit("use max_bytes=", 1)[1].split()[0]
    again = run_preloaded([sys.executable, "-c", "print('ok')"], f"sample_rate=1:max_bytes={suggested}")
    assert again.returncode == 0 and again.stdout.strip() == "ok", again.stderr

"""Guarding the interpreter's own allocations (guardalloc.pymem).

Every test that installs the hooks runs in a child interpreter: the hooks
see every allocation of the process, and guarded blocks outlive uninstall().
"""

from __future__ import annotations

import re
import signal
import textwrap

import pytest

import guardalloc.pymem as pymem

CTYPES_API = """
import ctypes
api = ctypes.pythonapi
for name in ("PyMem_RawMalloc", "PyMem_Malloc", "PyObject_Malloc"):
    getattr(api, name).restype = ctypes.c_void_p
    getattr(api, name).argtypes = [ctypes.c_size_t]
for name in ("PyMem_RawRealloc", "PyMem_Realloc"):
    getattr(api, name).restype = ctypes.c_void_p
    getattr(api, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t]
for name in ("PyMem_RawFree", "PyMem_Free", "PyObject_Free"):
    getattr(api, name).argtypes = [ctypes.c_void_p]
"""


def with_api(code: str) -> str:
    return CTYPES_API + textwrap.dedent(code)


# Which hooked domain serves a bytearray's buffer (the object allocator up to
# 3.12, PyMem_Malloc from 3.13 on): asked of the interpreter, one domain's
# hook at a time, instead of assumed.
BYTEARRAY_DOMAIN_PROBE = """
import ctypes, guardalloc.pymem as pymem
serving = []
for domain in ("raw", "mem", "obj"):
    pymem.install(sample_rate=1, domains=(domain,))
    pool = pymem.pool()
    keep = []
    for _ in range(1000):
        keep.append(bytearray(100))
        if pool.owns(ctypes.addressof((ctypes.c_char * 100).from_buffer(keep[-1]))):
            serving.append(domain)
            break
print(*serving)
"""


@pytest.fixture(scope="module")
def bytearray_domain():
    """The one allocator domain ("mem" or "obj") whose hook receives a
    bytearray's buffer in this interpreter."""
    from conftest import run_child

    proc = run_child(BYTEARRAY_DOMAIN_PROBE)
    assert proc.returncode == 0, proc.stderr
    serving = proc.stdout.split()
    assert len(serving) == 1 and serving[0] in ("mem", "obj"), proc.stdout
    return serving[0]


def test_sample_every_allocation_runs_a_real_workload(child):
    proc = child("""
        import gc, json, re, struct, threading
        import guardalloc.pymem as pymem

        doc = {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b", str(i)],
                          "score": i * 0.5, "nested": {"ok": i % 2 == 0}} for i in range(20_000)]}
        pymem.install(sample_rate=1, max_bytes=256 << 20)
        text = json.dumps(doc, sort_keys=True)
        assert json.loads(text) == doc
        table = {f"key-{i}": i * 3 for i in range(100_000)}
        assert len(table) == 100_000 and sum(table.values()) == 3 * sum(range(100_000))
        assert table["key-99999"] == 299_997
        found = re.findall(r'"name": "item-(\\d*)7"', text)
        assert len(found) == 2000, len(found)
        assert re.sub(r"\\d+", "#", "a1b22c333") == "a#b#c#"
        packed = struct.pack("<1000q", *range(1000))
        assert struct.unpack("<1000q", packed) == tuple(range(1000))
        assert struct.unpack_from(">I", struct.pack(">I", 0xDEADBEEF))[0] == 0xDEADBEEF
        stats = pymem.stats()
        assert stats["state"] == "sampling"
        assert stats["obj"]["sampled"] > 50_000, stats
        assert stats["mem"]["sampled"] > 100, stats

        # Threads (the RAW domain has no GIL) at a random sampling rate.
        pymem.install(sample_rate=3, random=True, seed=7)
        results = []
        def work(n):
            data = json.dumps([{"n": n, "v": list(range(i % 50))} for i in range(2000)])
            results.append(len(json.loads(data)))
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert results == [2000] * 8

        live_before = pymem.stats()["live"]
        assert live_before > 0
        assert pymem.uninstall() is False        # guarded blocks are still live
        assert pymem.state() == "draining"
        # Blocks guarded before uninstall() keep working and are freed.
        assert json.loads(text) == doc and table["key-12345"] == 37_035
        del table, doc
        gc.collect()
        assert pymem.stats()["live"] < live_before
        print("ok", pymem.stats()["obj"]["sampled"])
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


def test_uninstall_restores_the_allocators_once_the_last_block_is_freed(child):
    proc = child(with_api("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("raw",))
        p = api.PyMem_RawMalloc(100)
        assert pymem.pool().block_size(p) == 100
        assert pymem.uninstall() is False and pymem.state() == "draining"
        ctypes.memset(p, 7, 100)                 # still usable
        api.PyMem_RawFree(p)
        for _ in range(1000):                   # the restore is a pending call
            if pymem.state() == "off":
                break
        assert pymem.state() == "off", pymem.stats()
        q = api.PyMem_RawMalloc(100)
        assert not pymem.pool().owns(q)  # the saved allocator again
        api.PyMem_RawFree(q)
        pymem.install(sample_rate=10 ** 9)        # nothing sampled: restored at once
        assert pymem.uninstall() is True and pymem.state() == "off"
        print("ok")
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_realloc_copies_guarded_blocks_in_and_out(child):
    proc = child(with_api("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("mem",))
        pool = pymem.pool()
        p = api.PyMem_Malloc(100)
        assert pool.block_size(p) == 100
        ctypes.memmove(p, bytes(range(100)), 100)
        q = api.PyMem_Realloc(p, 5000)               # stays guarded, moved
        assert pool.block_size(q) == 5000 and pool.block_size(p) == 0
        assert ctypes.string_at(q, 100) == bytes(range(100))
        r = api.PyMem_Realloc(None, 64)              # realloc(NULL) is sampled too
        assert pool.block_size(r) == 64
        api.PyMem_Free(r)
        pymem.uninstall()
        s = api.PyMem_Realloc(q, 10_000)             # copied out to the saved allocator
        assert not pool.owns(s) and pool.block_size(q) == 0
        assert ctypes.string_at(s, 100) == bytes(range(100))
        t = api.PyMem_Realloc(s, 20)                 # foreign stays foreign
        assert not pool.owns(t) and ctypes.string_at(t, 20) == bytes(range(20))
        api.PyMem_Free(t)
        print("ok")
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_a_full_pool_forwards(child):
    proc = child(with_api("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("mem",), max_bytes=1 << 20)
        pool = pymem.pool()
        blocks = [api.PyMem_Malloc(3000) for _ in range(2000)]
        guarded = sum(pool.owns(b) for b in blocks)
        assert 0 < guarded < 2000, guarded            # the rest were forwarded
        for b in blocks:
            ctypes.memset(b, 1, 3000)
            api.PyMem_Free(b)
        print("ok")
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_bytearray_overflow_by_c_code_faults(child, bytearray_domain):
    proc = child(f"""
        import ctypes, guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("{bytearray_domain}",))
        pool = pymem.pool()
        for _ in range(100_000):
            data = bytearray(100)
            address = ctypes.addressof((ctypes.c_char * 100).from_buffer(data))
            if pool.owns(address):
                break
        assert pool.block_size(address) == 101      # bytearray keeps a NUL after
        guard = (address + 4095) // 4096 * 4096        # the page after the block
        print("guarded", pool.owns(guard), pool.block_size(guard), flush=True)
        ctypes.memset(address, 0x41, 100 + 4096)       # C code writes past the end
        print("not reached", flush=True)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "guarded True 0\n"
    assert "guardalloc: heap-buffer-overflow WRITE at 0x" in proc.stderr, proc.stderr
    assert "bytes past the end of a 101-byte buffer" in proc.stderr, proc.stderr


@pytest.mark.parametrize("nbytes", [300_000, 3_000_000])
def test_rate_1_guards_the_first_block_of_a_fresh_size_class(child, nbytes):
    """A one-off overflow of the first block of a size class nothing has used
    yet (a pooled class, and a dedicated-arena one) is caught under
    sample_rate=1: the block is guarded, not forwarded while the class
    grows."""
    proc = child(f"""
        import ctypes, guardalloc.pymem as pymem
        pymem.install(sample_rate=1)
        data = bytearray({nbytes})
        address = ctypes.addressof((ctypes.c_char * {nbytes}).from_buffer(data))
        print("guarded", pymem.pool().owns(address), flush=True)
        ctypes.memset(address, 0x41, {nbytes} + 4096)     # C code writes past the end
        print("not reached", flush=True)
    """)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "guarded True\n"
    assert "guardalloc: heap-buffer-overflow WRITE at 0x" in proc.stderr, proc.stderr
    assert f"bytes past the end of a {nbytes + 1:,}-byte buffer" in proc.stderr \
        or f"bytes past the end of a {nbytes + 1}-byte buffer" in proc.stderr, proc.stderr


def test_rate_1_guards_every_request_of_a_real_workload_or_says_why(child):
    """Under sample_rate=1, with threads, the cyclic collector and exceptions
    in flight, every sampled request is guarded or counted as refused with
    its reason, and the exit note says how many and why."""
    proc = child("""
        import gc, json, threading
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1)
        gc.set_threshold(10)

        class Node:
            def __init__(self, size):
                self.me, self.data = self, bytearray(size)

        def work(seed):
            for i in range(300):
                size = (seed * 7919 + i * 104729) % (2 << 20) + 1
                Node(size)
                try:
                    raise ValueError(json.dumps({"i": i, "s": "x" * (i % 700)}))
                except ValueError as exc:
                    str(exc).encode() * 3
                if i % 50 == 0:
                    gc.collect()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        work(99)
        for t in threads:
            t.join()
        s = pymem.stats()
        sampled = sum(s[d]["sampled"] for d in ("raw", "mem", "obj"))
        assert 0 <= s["refused_growing"] <= s["refused"], s
        print(sampled > 0, s["refused"], s["refused_growing"], flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    guarded, refused, growing = proc.stdout.split()
    assert guarded == "True"
    notes = [line for line in proc.stderr.splitlines() if "were not guarded" in line]
    if int(refused):
        assert len(notes) == 1 and f"{int(refused):,} sampled allocation requests" in notes[0], proc.stderr
        if int(growing):
            assert f"{int(growing):,} because their size class was full" in notes[0], proc.stderr
    else:
        assert not notes, proc.stderr


def test_a_burst_inside_one_c_call_is_guarded_in_full(child):
    """json.loads makes tens of thousands of objects of a few size classes in
    one C call, with no safe point for pending growth: the MEM and OBJ hooks
    grow the pool on the spot, so all is guarded but the few requests made
    while it grows (counted as such); the collector (on a hair trigger),
    finalizers and a caught exception are unharmed."""
    proc = child("""
        import gc, json
        import guardalloc.pymem as pymem

        finalized = []
        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self):
                finalized.append(1)

        doc = json.dumps([{"id": i, "name": "n" * (i % 3000), "v": [i] * (i % 40)} for i in range(30_000)])
        pymem.install(sample_rate=1, domains=("mem", "obj"))
        gc.set_threshold(1)
        for round in range(3):
            cycles = [Cycle() for _ in range(200)]
            del cycles
            try:
                json.loads(doc + "]")              # parsed in full, then refused
            except json.JSONDecodeError as exc:
                caught = exc.msg
            data = json.loads(doc)
            assert len(data) == 30_000 and data[29_999]["v"] == [29_999] * 39
        gc.collect()
        s = pymem.stats()
        sampled = s["mem"]["sampled"] + s["obj"]["sampled"]
        assert s["refused"] == s["refused_growing"] and s["refused"] * 1000 < sampled, (s, sampled)
        print(caught, len(finalized) == 600, flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Extra", "data", "True"], proc.stdout


@pytest.mark.parametrize("max_bytes, guarded", [(None, "all"), (8 << 20, "some")])
def test_growing_inside_a_hook_keeps_the_pending_exception(child, max_bytes, guarded):
    """C code that allocates while an exception is set (CPython's own does):
    the OBJ hook grows a full class on the spot and the exception is still
    the one set, whether the growth succeeds (every block guarded) or
    reaches max_bytes (a MemoryError raised and dropped inside the hook)."""
    proc = child(f"""
        import guardalloc.pymem as pymem
        from helpers import load_helper
        helper = load_helper("pymem_growth")
        pymem.install(sample_rate=1, domains=("obj",), max_bytes={max_bytes})
        kept, guarded = helper.malloc_with_exception_pending(pymem.pool(), 3000, 40000)
        cls = pymem.pool().stats()["classes"][40960]
        refused = pymem.stats()["refused"]
        print(kept, "all" if guarded == 3000 else "some" if 0 < guarded < 3000 else guarded,
              cls["exhausted"], refused == 3000 - guarded, flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", guarded, str(guarded == "some"), "True"], proc.stdout


@pytest.mark.parametrize("free", ["PyMem_Free", "PyMem_RawFree"])
def test_double_free_of_a_guarded_block_aborts_with_a_report(child, free):
    domain = "mem" if free == "PyMem_Free" else "raw"
    malloc = "PyMem_Malloc" if domain == "mem" else "PyMem_RawMalloc"
    proc = child(with_api(f"""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("{domain}",))
        p = api.{malloc}(64)
        assert pymem.pool().owns(p)
        api.{free}(p)
        print("freed once", flush=True)
        api.{free}(p)
    """))
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    assert proc.stdout == "freed once\n"
    assert "== guardalloc: double-free of 0x" in proc.stderr, proc.stderr
    assert re.search(r"  slot \d+ \(free\) of arena 0x[0-9a-f]+: its last 64-byte buffer .* was freed already\n",
                     proc.stderr), proc.stderr
    # Native stacks are on at every rate: the three stacks of a double free
    # are recorded (innermost first, ctypes' libffi calling the hook), each
    # event's Python frames first, under its title, then its native ones.
    for title in ("  this free", "  allocated at", "  first freed at"):
        assert re.search(title + r":\n    #0 in <module> <string>:\d+", proc.stderr), (title, proc.stderr)
        assert re.search(title + r" \(native\):\n    #0 0x[0-9a-f]+ \(\S*libffi", proc.stderr), (title, proc.stderr)


def test_a_hook_installed_on_top_blocks_uninstall(child):
    proc = child("""
        import tracemalloc, guardalloc.pymem as pymem
        pymem.install(sample_rate=100)
        tracemalloc.start()
        try:
            pymem.uninstall()
        except RuntimeError as exc:
            assert "tracemalloc" in str(exc)
        else:
            raise AssertionError("uninstall() under tracemalloc succeeded")
        tracemalloc.stop()
        pymem.uninstall()
        print("ok", pymem.state() in ("off", "draining"))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok True\n"


@pytest.mark.parametrize("kwargs, error", [
    ({"sample_rate": 0}, ValueError), ({"sample_rate": 1.5}, TypeError),
    ({"sample_rate": True}, TypeError), ({"domains": "raw"}, TypeError),
    ({"domains": ()}, ValueError), ({"domains": ("heap",)}, ValueError),
    ({"seed": "x"}, TypeError),
])
def test_bad_arguments_raise_before_anything_is_hooked(kwargs, error):
    with pytest.raises(error):
        pymem.install(**kwargs)
    assert pymem.state() == "off"


def test_an_alignment_cpython_cannot_run_with_is_refused_in_one_sentence():
    from guardalloc.native import python_alignment_error

    with pytest.raises(ValueError) as raised:
        pymem.install(sample_rate=1, alignment=1)
    message = str(raised.value)
    assert message.startswith("alignment=1 cannot run a Python interpreter: ") and "\n" not in message
    assert "co_code is malformed" in message and "use alignment=2 or more" in message
    assert pymem.state() == "off"
    # The malloc library's refusal (exec, run --native, the plugin) is the same sentence.
    assert python_alignment_error("sample_rate=1:alignment=1") == message


@pytest.mark.parametrize("alignment", [2, 8])
def test_the_smallest_alignments_allowed_run_compiled_code(child, alignment):
    """At alignment 1 compiling and running code died ("co_code is
    malformed"); from 2 up it runs, with every request guarded."""
    proc = child(f"""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, alignment={alignment})
        import ast, json
        namespace = {{}}
        exec(compile("def f(x):\\n    return [i * i for i in range(x)]\\n", "<f>", "exec"), namespace)
        data = {{str(i): [i, float(i), str(i) * 3] for i in range(2000)}}
        assert json.loads(json.dumps(data)) == data
        ast.parse(open(json.__file__).read())
        stats = pymem.stats()
        print(namespace["f"](4), sum(stats[d]["sampled"] for d in ("raw", "mem", "obj")) > 1000)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[0, 1, 4, 9] True\n"


def test_nothing_installed_by_default():
    assert pymem.state() == "off"
    assert pymem.uninstall() is True


SAMPLING_PATTERN = """
    import sys
    import guardalloc.pymem as pymem
    pymem.install(sample_rate=4, domains=("raw",), random=sys.argv[1] == "random", seed=11)
    pool = pymem.pool()
    blocks = [api.PyMem_RawMalloc(16) for _ in range(400)]
    owned = [pool.owns(b) for b in blocks]
    for b in blocks:
        api.PyMem_RawFree(b)
    print("".join("x" if o else "." for o in owned))
"""


def test_deterministic_sampling_guards_every_nth_request(child):
    proc = child(with_api(SAMPLING_PATTERN), "every")
    assert proc.returncode == 0, proc.stderr
    pattern = proc.stdout.strip()
    # Every 4th raw request of the thread is guarded; the interpreter makes a
    # few raw requests of its own in between, which take their turn.
    hits = [i for i, c in enumerate(pattern) if c == "x"]
    gaps = [b - a for a, b in zip(hits, hits[1:])]
    assert hits[0] <= 3 and all(1 <= gap <= 4 for gap in gaps), pattern
    assert gaps.count(4) >= 0.9 * len(gaps) and len(hits) >= 99, pattern


def test_random_sampling_is_repeatable_with_a_seed(child):
    first = child(with_api(SAMPLING_PATTERN), "random")
    second = child(with_api(SAMPLING_PATTERN), "random")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    pattern = first.stdout.strip()
    assert pattern != "...x" * 100
    assert 50 <= pattern.count("x") <= 150


def test_reinstalling_reuses_the_pool(child):
    proc = child("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=10 ** 9)
        first = pymem.pool()
        for _ in range(20):
            assert pymem.uninstall() is True
            pymem.install(sample_rate=10 ** 9)
            assert pymem.pool() is first
        pymem.uninstall()
        pymem.install(sample_rate=10 ** 9, max_bytes=1 << 28)   # other options: a new pool
        assert pymem.pool() is not first and pymem.pool().max_bytes == 1 << 28
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_raw_domain_from_threads_without_the_gil(child):
    proc = child("""
        import ctypes, threading
        import guardalloc.pymem as pymem
        libpython = ctypes.CDLL(None)          # CDLL calls release the GIL
        malloc, free = libpython.PyMem_RawMalloc, libpython.PyMem_RawFree
        malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        free.argtypes = [ctypes.c_void_p]
        memset = ctypes.CDLL(None).memset
        memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
        pymem.install(sample_rate=2, domains=("raw",))
        pool = pymem.pool()
        guarded = []
        def work(seed):
            count = 0
            for i in range(3000):
                n = (seed * 7919 + i * 104729) % 9000 + 1
                p = malloc(n)
                memset(p, seed, n)
                count += pool.owns(p)
                q = malloc(17)
                free(p)
                free(q)
            guarded.append(count)
        threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert len(guarded) == 8 and sum(guarded) > 3000, guarded
        print("ok", pymem.uninstall())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


def test_fork_while_sampling(child):
    proc = child("""
        import json, os, threading
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=3)
        stop = False
        def churn():                     # another thread allocating during fork
            while not stop:
                json.loads(json.dumps({"a": list(range(100))}))
        t = threading.Thread(target=churn)
        t.start()
        statuses = []
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                ok = json.loads(json.dumps({"k": list(range(1000))}))["k"][-1] == 999
                os._exit(0 if ok else 1)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        stop = True
        t.join()
        print(statuses)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[0, 0, 0, 0, 0]\n"


def test_slack_overwrite_is_reported_when_the_block_is_freed(child):
    proc = child(with_api("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("mem",))
        p = api.PyMem_Malloc(100)           # padded to 112: 12 slack bytes, no guard yet
        assert pymem.pool().owns(p)
        ctypes.memset(p + 100, 0, 3)
        api.PyMem_Free(p)
        print("still running", pymem.pool().stats()["corruptions"], flush=True)
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "still running 1\n"
    assert "guardalloc: heap corruption: 3 slack byte(s) after the block at 0x" in proc.stderr
    assert "first at offset 100" in proc.stderr
    assert re.search(r"\n  slot \d+ of arena 0x[0-9a-f]+\n", proc.stderr), proc.stderr


# -- reports of a free (ga_report_free): text and JSON to log_path ------------------

def _one_report(tmp_path, proc) -> dict:
    """The one JSON report the child wrote, checked against the schema and
    against the text it wrote to stderr."""
    from test_reports_json import reports_in, validate
    (report,) = reports_in(tmp_path)
    validate(report)
    assert (report["schema_version"], report["access"], report["signal"]) == (6, "free", None)
    assert report["text"] in proc.stderr, (report["text"], proc.stderr)
    assert isinstance(report["slot"], int) and report["arena"]["slots"] >= 1
    return report


def test_slack_damaged_by_c_code_is_reported_as_json_at_the_objects_deallocation(child, tmp_path,
                                                                                 bytearray_domain):
    # A C extension writes past a bytearray's buffer into the slack before
    # the guard (alignment 16: no fault); the object's deallocation frees
    # the buffer (PyObject_Free or PyMem_Free), and the free finds the damage.
    proc = child(f"""
        import ctypes, os, guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("{bytearray_domain}",), alignment=16, native_stacks=True)
        pool = pymem.pool()
        for _ in range(100_000):
            data = bytearray(100)                     # a 101-byte buffer (NUL), padded to 112
            address = ctypes.addressof((ctypes.c_char * 100).from_buffer(data))
            if pool.owns(address):
                break
        ctypes.memset(address + 101, 0x41, 4)
        del data
        print("still running", os.getpid(), address, pool.stats()["corruptions"], flush=True)
    """, env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.%p.json"})
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[0:2] == ["still", "running"] and words[4] == "1", proc.stdout
    pid, address = int(words[2]), int(words[3])
    report = _one_report(tmp_path, proc)
    assert (report["kind"], report["pid"], report["on_fault"]) == ("heap-buffer-overflow", pid, "continue")
    assert (report["size"], report["offset"], report["damaged"]) == (101, 101, 4)
    assert int(report["buffer"], 16) == address and int(report["address"], 16) == address + 101
    assert f"slot {report['slot']} of arena {report['arena']['base']}\n" in report["text"]
    # The allocation's native stack (the C caller of PyObject_Malloc), and this free's.
    assert report["stacks"]["allocated_native"] and report["stacks"]["this_free_native"]
    assert report["stacks"]["freed_native"] == report["stacks"]["this_free_native"]
    # The allocation's Python frames (the bytearray's line), then its native ones.
    assert re.search(r"  allocated at:\n    #0 in <module> <string>:6.*\n(    #.*\n)*  allocated at \(native\):\n    #0 0x",
                     report["text"]), report["text"]
    assert report["stacks"]["allocated_python"][0]["line"] == 6
    # This free's Python frames (the deallocation's line), then its native ones.
    assert re.search(r"  freed at:\n    #0 in \S+ \S+:\d+.*\n(    #.*\n)*  freed at \(native\):\n    #0 0x",
                     report["text"]), report["text"]


def test_slack_damage_found_by_realloc_at_the_default_rate_has_native_stacks(child, tmp_path):
    # Native stacks are recorded at every rate by default.
    proc = child(with_api("""
        import sys, guardalloc.pymem as pymem
        pymem.install(sample_rate=1000, domains=("mem",))
        pool = pymem.pool()
        assert pool.native_stacks
        for _ in range(100_000):
            p = api.PyMem_Malloc(100)
            if pool.owns(p):
                break
            api.PyMem_Free(p)
        ctypes.memset(p + 100, 0, 3)
        q = api.PyMem_Realloc(p, 300)          # moves: the old block's free finds the damage
        assert pool.owns(q) and pool.block_size(q) == 300
        api.PyMem_Free(q)
        print("still running", pool.stats()["corruptions"], flush=True)
    """), env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.%p.json"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "still running 1\n"
    report = _one_report(tmp_path, proc)
    assert (report["kind"], report["size"], report["offset"], report["damaged"]) == ("heap-buffer-overflow", 100,
                                                                                    100, 3)
    assert report["on_fault"] == "continue"
    assert report["stacks"]["allocated_native"] and report["stacks"]["this_free_native"]


BAD_FREES = {
    # name: (the bad call, kind, offset)
    "double": ("api.PyMem_Free(p); api.PyMem_Free(p)", "double-free", 0),
    "inside": ("api.PyMem_Free(p + 8)", "invalid-free", 8),
    "realloc-freed": ("api.PyMem_Free(p); api.PyMem_Realloc(p, 200)", "double-free", 0),
}


@pytest.mark.parametrize("name", list(BAD_FREES))
def test_bad_frees_through_the_pymem_api_are_reported_as_json(child, tmp_path, name):
    call, kind, offset = BAD_FREES[name]
    proc = child(with_api(f"""
        import os, sys, guardalloc, guardalloc.pymem as pymem
        guardalloc.set_report_path(sys.argv[1] + "/r.%p.json")
        pymem.install(sample_rate=1, domains=("mem",), native_stacks=True)
        p = api.PyMem_Malloc(64)
        assert pymem.pool().owns(p)
        print(os.getpid(), p, flush=True)
        {call}
        print("not reached", flush=True)
    """), str(tmp_path))
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    pid, address = map(int, proc.stdout.split())
    report = _one_report(tmp_path, proc)
    assert (report["kind"], report["pid"], report["on_fault"]) == (kind, pid, "abort")
    assert (report["size"], report["offset"]) == (64, offset)
    assert int(report["address"], 16) == address + offset and int(report["buffer"], 16) == address
    assert report["text"].startswith(f"=={pid}== guardalloc: {kind} of {report['address']}\n")
    stacks = report["stacks"]
    assert stacks["allocated_native"] and stacks["this_free_native"]
    # A double free shows the first free's stack; a free inside a live block none.
    assert bool(stacks["freed_native"]) == (kind == "double-free")


def test_a_free_in_the_pools_reservation_but_in_no_arena_is_an_invalid_free(child, tmp_path):
    proc = child(with_api("""
        import guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("mem",))
        pool = pymem.pool()
        api.PyMem_Free(pool.address + pool.reserved - 4096)   # the reservation's last page: no arena yet
    """), env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.%p.json"})
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    from test_reports_json import reports_in, validate
    (report,) = reports_in(tmp_path)
    validate(report)
    assert (report["kind"], report["arena"], report["slot"], report["offset"]) == ("invalid-free", None, None, None)
    assert "  inside the guarded heap but in no slot" in report["text"] and report["text"] in proc.stderr


def test_bad_free_reports_carry_no_stacks_without_native_stacks(child, tmp_path):
    proc = child(with_api("""
        import sys, guardalloc.pymem as pymem
        pymem.install(sample_rate=1, domains=("raw",), native_stacks=False)
        assert not pymem.pool().native_stacks
        p = api.PyMem_RawMalloc(64)
        api.PyMem_RawFree(p + 16)
    """), env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.%p.json"})
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    report = _one_report(tmp_path, proc)
    assert (report["kind"], report["offset"], report["size"]) == ("invalid-free", 16, 64)
    this_free = report["stacks"].pop("this_free_python")   # this free's Python frames, read at the free
    assert this_free[-1]["function"] == "<module>" and this_free[-1]["file"] == "<string>"
    assert report["stacks"] == {"allocated": None, "freed": None, "allocated_native": None,
                                "freed_native": None, "this_free_native": None, "allocated_python": None,
                                "freed_python": None}
    assert re.search(r"  this free:\n    #0 in \S+ <string>:\d+", report["text"])
    assert "  allocated at: (no stack recorded)\n" in report["text"]


# -- limits: sized from the machine, refusals said once ----------------------------

def test_refused_requests_are_noted_once_on_stderr_with_the_count():
    from conftest import run_child

    result = run_child("""
    from guardalloc import pymem
    pymem.install(sample_rate=1, max_bytes=1 << 20)
    x = [str(i) * 3 for i in range(20000)]
    refused = pymem.stats()["refused"]
    assert refused > 0
    print(refused)
    """)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "were not guarded" in line]
    assert len(notes) == 1, result.stderr
    assert "max_bytes=1,048,576" in notes[0] and "install(max_bytes=...)" in notes[0]
    assert int(notes[0].split()[1].replace(",", "")) >= int(result.stdout.split()[-1])


def test_no_note_while_every_request_is_guarded():
    from conftest import run_child

    result = run_child("""
    from guardalloc import pymem
    pymem.install(sample_rate=1000)
    x = [str(i) for i in range(1000)]
    """)
    assert result.returncode == 0 and "not guarded" not in result.stderr, result.stderr


def test_default_max_bytes_follows_the_policy_and_rlimit_as():
    """The policy itself is tested in test_options.py; here: pymem's name
    for it, and an install() that fits under a lowered RLIMIT_AS."""
    from conftest import run_child

    result = run_child("""
    import os, resource
    from guardalloc import options, pymem
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert pymem.default_max_bytes is options.default_max_bytes
    if options.strict_overcommit():
        assert pymem.default_max_bytes() == max(64 << 20, min(ram // 4, 1 << 40)) // 4096 * 4096
    else:
        assert pymem.default_max_bytes() == 256 << 30
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize:")][0].split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (8 << 30), resource.RLIM_INFINITY))
    assert pymem.default_max_bytes() <= (8 << 30) // 4 // 3
    assert pymem.default_max_bytes(3) < pymem.default_max_bytes(1)
    pymem.install(sample_rate=1000)          # the reservation fits under the limit
    print(pymem.pool().max_bytes)
    """)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value, error", [(0, ValueError), ("1", TypeError)])
def test_default_max_bytes_checks_guard_pages(value, error):
    with pytest.raises(error, match="guard_pages"):
        pymem.default_max_bytes(value)

"""fork(): the child inherits the arena, its bookkeeping and its guards.

Each test runs in a fresh interpreter (run_child) that forks, so that the
pytest process itself never forks. The forked grandchild reports through
its exit status: 0 for success, -SIGSEGV when a guard fired as expected.
"""

from __future__ import annotations

import os
import signal

import pytest

import guardalloc

from conftest import run_child
from helpers import load_helper

if not guardalloc.support().anonymous:   # pragma: no cover - depends on the kernel
    pytest.skip("needs MADV_GUARD_INSTALL (Linux 6.13+)", allow_module_level=True)

# Shared by the children: guarded(address, pid="self") is conftest's
# guard-page reader (this directory is on a child's path).
PAGEMAP = """
import os
from conftest import PAGE, is_guard_page as guarded

def wait(pid):
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
"""


def test_child_allocates_and_frees_independently():
    result = run_child(PAGEMAP + """
import guardalloc
arena = guardalloc.Arena(4096, 64, uaf=True, quarantine=4)
kept = [arena.alloc(100) for _ in range(10)]
for buf in kept[:5]:
    buf.free()
before = arena.stats()
pid = os.fork()
if pid == 0:
    try:
        # The child owns a copy of the bookkeeping: it may allocate, free,
        # and even reuse quarantined slots, without touching the parent's.
        bufs = [arena.alloc(200) for _ in range(50)]
        assert len({b.slot for b in bufs} | {b.slot for b in kept[5:]}) == 55
        for b in bufs:
            b.free()
        for b in kept[5:]:
            assert bytes(b) == bytes(100)
            b.free()
        stats = arena.stats()
        assert stats["live"] == 0 and stats["free"] + stats["quarantined"] == 64, stats
        # A new arena in the child, batched guards and all.
        fresh = guardalloc.Arena(4096, 2000)
        fresh.alloc(1, slot=1999).free()   # opens every slot (lazy guards)
        assert fresh.stats()["batched"]
        assert guarded(fresh.address) and guarded(fresh.slot_address(1999) + 4096)
        fresh.close()
        os._exit(0)
    except BaseException as exc:
        print("child failed:", repr(exc), flush=True)
        os._exit(1)
assert wait(pid) == 0
assert arena.stats() == before, (arena.stats(), before)
print("ok")
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize("access", ["overflow", "use_after_free", "underflow"])
def test_guards_are_inherited(access):
    """A guard installed in the parent fires in the child (kernel behaviour)."""
    result = run_child(PAGEMAP + """
import ctypes, sys, guardalloc
access = sys.argv[1]
right = guardalloc.Arena(4096, 8, alignment=1)
left = guardalloc.Arena(4096, 8, align="left")
uaf = guardalloc.Arena(4096, 8, uaf=True)
over = right.alloc(100)
under = left.alloc(100)
freed = uaf.alloc(100)
freed_address = freed.address
freed.free()
pid = os.fork()
if pid == 0:
    ctypes.memset(over.address, 1, 100)      # inside: fine
    if access == "overflow":
        ctypes.memset(over.address + 100, 1, 1)
    elif access == "underflow":
        ctypes.memset(under.address - 1, 1, 1)
    else:
        ctypes.string_at(freed_address, 1)
    os._exit(0)
status = wait(pid)
print("child status", status)
# The parent is untouched and can still use its buffers.
ctypes.memset(over.address, 2, 100)
assert guarded(freed_address)
""", access)
    assert result.returncode == 0, result.stderr
    assert f"child status {-signal.SIGSEGV}" in result.stdout


def test_process_madvise_guards_the_child_not_the_parent():
    """The pidfd for process_madvise() is per process.

    The parent caches a pidfd for itself by building an arena, then maps a
    scratch region of exactly the size of the arena the child will build.
    The child unmaps its copy of the scratch region and builds that arena,
    which the kernel places in the hole. Had the child reused the parent's
    pidfd, the guards would land in the parent's scratch region (or the
    install would fail with ENOMEM where the parent has nothing mapped).
    """
    result = run_child(PAGEMAP + """
import ctypes, mmap, guardalloc
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

parent_arena = guardalloc.Arena(4096, 16)      # caches the parent's pidfd
assert parent_arena.stats()["batched"]
SLOTS = 60
size = (2 * SLOTS + 1) * PAGE                  # Arena(4096, SLOTS) maps this much
scratch = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
ctypes.memset(scratch, 0x5A, size)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    try:
        libc.munmap(scratch, size)
        child_arena = guardalloc.Arena(4096, SLOTS, backend="madvise")
        assert child_arena.stats()["batched"]
        guards = [child_arena.address + i * child_arena.stride for i in range(SLOTS + 1)]
        assert all(guarded(g) for g in guards), "the child's guards are missing"
        assert not any(guarded(child_arena.slot_address(i)) for i in range(SLOTS))
        os.write(write, f"{child_arena.address} {child_arena.size}".encode())
        os._exit(0)
    except BaseException as exc:
        os.write(write, f"error {exc!r}".encode())
        os._exit(1)
os.close(write)
status = wait(pid)
answer = os.read(read, 4096).decode()
assert status == 0, answer
child_address, child_size = map(int, answer.split())
print("same address" if child_address == scratch else "different address")
# The parent's scratch region has no guard and still holds its bytes, and
# nothing in the parent where the child put its arena carries a guard.
assert not any(guarded(scratch + i * PAGE) for i in range(size // PAGE))
assert ctypes.string_at(scratch, size) == b"\\x5a" * size
assert not any(guarded(child_address + i * PAGE) for i in range(child_size // PAGE))
print("ok")
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
    # Where the child's arena overlaps the parent's scratch region (with this
    # layout the kernel puts it there), a wrong pidfd would have guarded the
    # parent; elsewhere, process_madvise() on the parent would have failed
    # (ENOMEM: nothing mapped there) or guarded whatever the parent has there.


def test_threads_in_a_forked_child_share_one_pidfd():
    """Threads building arenas at once in a fresh child open one pidfd
    between them (the cache is replaced by compare-and-swap) and close the
    parent's inherited one exactly once."""
    result = run_child(PAGEMAP + """
import threading, guardalloc

def pidfds():
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]":
                found.append(name)
        except OSError:
            pass
    return found

guardalloc.Arena(4096, 4).close()
assert len(pidfds()) == 1
pid = os.fork()
if pid == 0:
    try:
        barrier = threading.Barrier(8)
        arenas = []
        def build():
            barrier.wait()
            for _ in range(20):
                arenas.append(guardalloc.Arena(4096, 64))
        threads = [threading.Thread(target=build) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(arenas) == 160
        assert all(guarded(a.address) and a.stats()["batched"] for a in arenas)
        assert len(pidfds()) == 1, pidfds()
        os._exit(0)
    except BaseException as exc:
        print("child failed:", repr(exc), flush=True)
        os._exit(1)
assert wait(pid) == 0
assert len(pidfds()) == 1
print("ok")
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_fork_while_other_threads_hold_the_pool_lock():
    """Threads hammer a pool through its C interface (taking its mutex
    without the GIL) while the main thread forks again and again: each child
    must find the mutex usable (reset by the pool's atfork handlers), not
    deadlock."""
    helper_dir = os.path.dirname(load_helper("pool_stress").__file__)
    result = run_child(f"HELPER_DIR = {helper_dir!r}\n" + PAGEMAP + """
import threading, time, signal, sys
from guardalloc.pool import Pool
sys.path.insert(0, HELPER_DIR)
from pool_stress import pool_stress

pool = Pool()
stop = threading.Event()
def hammer(seed):
    while not stop.is_set():
        assert pool_stress(pool, 2000, seed, 50_000) == 0
threads = [threading.Thread(target=hammer, args=(s,)) for s in range(3)]
for t in threads:
    t.start()
try:
    for round in range(30):
        pid = os.fork()
        if pid == 0:
            try:
                buf = pool.alloc(5000)
                buf.free()
                ok = pool_stress(pool, 500, round, 50_000) == 0
                os._exit(0 if ok else 1)
            finally:
                os._exit(2)
        for _ in range(1000):            # up to 10 s: a deadlocked child never exits
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {round} deadlocked on the pool's mutex")
        assert os.waitstatus_to_exitcode(status) == 0, (round, status)
finally:
    stop.set()
    for t in threads:
        t.join()
assert pool.stats()["live"] == 0
print("ok")
""", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_fault_reports_work_in_the_forked_child():
    """The fault reporter (its handler and its registry of arenas) is
    inherited: a child's overflow, use-after-free and a fault in an arena
    the child made itself are each reported, with the child's pid."""
    result = run_child(PAGEMAP + """
import ctypes, guardalloc
arena = guardalloc.Arena(4096, 8, alignment=1)
buf = arena.alloc(100)
uaf = guardalloc.Arena(4096, 8, uaf=True)
freed = uaf.alloc(100)
freed_address = freed.address
freed.free()
for what in ("overflow", "use-after-free", "child-arena"):
    pid = os.fork()
    if pid == 0:
        if what == "overflow":
            ctypes.memset(buf.address + 100, 1, 1)
        elif what == "use-after-free":
            ctypes.string_at(freed_address, 1)
        else:
            mine = guardalloc.Arena(4096, 4, alignment=1)
            kept = mine.alloc(10)
            print("child-arena-address", kept.address + 10, flush=True)
            ctypes.memset(kept.address + 10, 1, 1)
        os._exit(0)
    print(what, pid, wait(pid), flush=True)
print("overflow-address", buf.address + 100)
print("uaf-address", freed_address)
""")
    assert result.returncode == 0, result.stderr
    told = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        told[parts[0]] = [int(p) for p in parts[1:]]
    for what in ("overflow", "use-after-free", "child-arena"):
        assert told[what][1] == -signal.SIGSEGV, (what, result.stderr)
    assert (f"=={told['overflow'][0]}== guardalloc: heap-buffer-overflow WRITE at "
            f"{told['overflow-address'][0]:#x}") in result.stderr
    assert (f"=={told['use-after-free'][0]}== guardalloc: use-after-free READ at "
            f"{told['uaf-address'][0]:#x}") in result.stderr
    assert (f"=={told['child-arena'][0]}== guardalloc: heap-buffer-overflow WRITE at "
            f"{told['child-arena-address'][0]:#x}") in result.stderr

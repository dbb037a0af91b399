"""Exhausted limits: vm.max_map_count, RLIMIT_AS, mlockall.

Each runs in a child process: the limits are per process (or the child
would otherwise leave the pytest process near one).
"""

from __future__ import annotations

import pytest

import guardalloc

from conftest import run_child

if not guardalloc.support().anonymous:   # pragma: no cover - depends on the kernel
    pytest.skip("needs MADV_GUARD_INSTALL (Linux 6.13+)", allow_module_level=True)


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok"), result.stdout


def test_mprotect_backend_past_max_map_count():
    """Two VMAs per mprotect guard: past vm.max_map_count the arena fails
    with MemoryError naming the limit and unmaps everything it made."""
    _ok(run_child("""
import guardalloc
limit = int(open("/proc/sys/vm/max_map_count").read())
slots = limit // 2 + 100        # one more guard than slots, two VMAs each
before = guardalloc.vma_count()
try:
    guardalloc.Arena(4096, slots, backend="mprotect")
except MemoryError as exc:
    text = str(exc)
    assert "vm.max_map_count" in text and f"({limit})" in text, text
    assert "madvise" in text and "nothing is left mapped" in text, text
else:
    raise AssertionError("no MemoryError")
assert guardalloc.vma_count() == before, (guardalloc.vma_count(), before)
# The same arena with madvise guards costs one VMA once fully open (three
# while lazily guarded: first guard, PROT_NONE tail, bookkeeping).
arena = guardalloc.Arena(4096, slots, backend="madvise")
assert guardalloc.vma_count() <= before + 3
arena.alloc(1, slot=slots - 1).free()
assert guardalloc.vma_count() <= before + 1
arena.close()
assert guardalloc.vma_count() == before
print("ok")
"""))


def test_rlimit_as_too_small():
    _ok(run_child("""
import resource, guardalloc
vm_size = int([l for l in open("/proc/self/status") if l.startswith("VmSize:")][0].split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm_size + (256 << 20), resource.RLIM_INFINITY))
before = guardalloc.vma_count()
for backend in ("madvise", "mprotect", "none"):
    try:
        guardalloc.Arena(4096, 1_000_000, backend=backend)     # 8 GB of address space
    except MemoryError as exc:
        assert "RLIMIT_AS" in str(exc), exc
    else:
        raise AssertionError("no MemoryError")
    assert guardalloc.vma_count() == before
small = guardalloc.Arena(4096, 1000)       # 8 MB: fits
small.free(small.alloc(10))
small.close()
print("ok")
"""))


def test_mlockall_future():
    """Locked memory cannot take guard pages (the kernel says EINVAL).

    support() still reports what the kernel can do (its probe unlocks its
    scratch pages); a madvise arena, locked by MCL_FUTURE, fails with
    GuardInstallError and an mlock hint, nothing left mapped; backend="auto"
    falls back to mprotect guards with a RuntimeWarning that says why; the
    mprotect backend works; after munlockall() batched madvise guards work
    again."""
    _ok(run_child("""
import ctypes, errno, guardalloc
MCL_CURRENT, MCL_FUTURE = 1, 2
libc = ctypes.CDLL(None, use_errno=True)
if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
    raise OSError(ctypes.get_errno(), "mlockall")
# The kernel can still guard memory; only locked mappings cannot take guards.
found = guardalloc.support(refresh=True)
assert found.anonymous and found.process_madvise, found
before = guardalloc.vma_count()
for batch in (True, False):
    try:
        guardalloc.Arena(4096, 64, batch=batch, backend="madvise")
    except guardalloc.GuardInstallError as exc:
        assert exc.errno == errno.EINVAL, exc
        assert "mlockall" in str(exc) and "mprotect" in str(exc), exc
    else:
        raise AssertionError("no GuardInstallError")
    assert guardalloc.vma_count() == before
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    arena = guardalloc.Arena(4096, 64)
assert arena.backend == "mprotect", arena
assert len(caught) == 1 and caught[0].category is RuntimeWarning, caught
assert "mlocked" in str(caught[0].message) and "falling back to mprotect" in str(caught[0].message)
arena.close()
arena = guardalloc.Arena(4096, 64, backend="mprotect")
buf = arena.alloc(100)
ctypes.memset(buf.address, 1, 100)
buf.free()
arena.close()
libc.munlockall()
arena = guardalloc.Arena(4096, 64)
assert arena.stats()["batched"], "an mlock EINVAL must not disable batching for good"
arena.close()
print("ok")
"""))


def test_file_descriptors_exhausted():
    """RLIMIT_NOFILE reached: no pidfd for process_madvise(), so guards go in
    one madvise() each (still installed); a file-backed arena, which needs a
    descriptor, fails with OSError(EMFILE) and leaves nothing mapped."""
    _ok(run_child("""
import errno, os, resource, guardalloc
maps_before = open("/proc/self/maps").read().count("\\n")
# Not conftest's is_guard_page: guardalloc.maps needs descriptors of its own,
# and there will be none. Read bit 58 through one opened beforehand.
pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
open_fds = len(os.listdir("/proc/self/fd")) - 1   # less the one listdir used
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds, hard))
try:
    os.open("/dev/null", os.O_RDONLY)
except OSError as exc:
    assert exc.errno == errno.EMFILE
else:
    raise AssertionError("descriptors are not exhausted")
arena = guardalloc.Arena(4096, 2000, backend="madvise")
arena.alloc(1, slot=1999).free()   # open every slot (guards are laid lazily)
# Without a pidfd nothing was batched: one madvise() per guard (the first
# at build, with the mprotect() of the tail; one mprotect() to open it).
assert arena.stats()["guard_syscalls"] == 2 + 1 + 2000, arena.stats()
guarded = lambda a: bool(int.from_bytes(os.pread(pagemap, 8, a // 4096 * 8), "little") >> 58 & 1)
assert all(guarded(arena.address + i * arena.stride) for i in range(0, 2001, 50))
arena.close()
# A file-backed arena needs a descriptor: it fails, and leaves nothing
# mapped. (support() could not even probe file-backed guards, so the
# madvise backend is refused first.)
try:
    guardalloc.Arena(4096, 16, file="memfd", backend="madvise")
except (OSError, guardalloc.GuardUnsupportedError) as exc:
    assert isinstance(exc, guardalloc.GuardUnsupportedError) or exc.errno == errno.EMFILE, exc
else:
    raise AssertionError("no error")
os.close(pagemap)
assert open("/proc/self/maps").read().count("\\n") == maps_before
# The probes that failed for want of a descriptor were not cached: with
# descriptors back, support() and batching are what the kernel offers.
resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds + 64, hard))
found = guardalloc.support()
assert found.file_shared and found.process_madvise and found.pagemap_guard_bit, found
with guardalloc.Arena(4096, 16, file="memfd", backend="madvise") as arena:
    assert arena.stats()["batched"]
print("ok")
"""))

"""Kernels and sandboxes without guard pages, simulated with seccomp.

A child process installs a seccomp filter (raw classic BPF through ctypes,
no extra dependency) that makes ``madvise(..., MADV_GUARD_INSTALL/REMOVE)``
and/or ``process_madvise()`` fail with a chosen errno: EINVAL is what a
kernel before 6.13 says, ENOSYS and EPERM what container runtimes' default
profiles say for calls they do not know. guardalloc must notice, say why,
and fall back where the caller allowed it.
"""

from __future__ import annotations

import errno
import platform

import pytest

from conftest import run_child

# (madvise, process_madvise) system call numbers; the filter checks the
# audit architecture too, so a wrong table cannot filter the wrong calls.
SYSCALLS = {
    "x86_64": (0xC000003E, 28, 440),
    "aarch64": (0xC00000B7, 233, 440),
}

if platform.machine() not in SYSCALLS:   # pragma: no cover - other architectures
    pytest.skip(f"no seccomp syscall table for {platform.machine()}", allow_module_level=True)

# Child prologue: install_filter(refuse_madvise, refuse_process_madvise, err).
SECCOMP = """
import ctypes, os, platform, struct

ARCH, NR_MADVISE, NR_PROCESS_MADVISE = %r[platform.machine()]
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG2 = 0, 4, 16 + 2 * 8     # struct seccomp_data

class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

def install_filter(refuse_madvise, refuse_process_madvise, err):
    deny = SECCOMP_RET_ERRNO | err
    # Jump offsets count from the next instruction; ALLOW is at index 9.
    program = [
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),                               # 0
        (BPF_JEQ_K, 0, 7, ARCH),                                         # 1
        (BPF_LD_W_ABS, 0, 0, OFFSET_NR),                                 # 2
        (BPF_JEQ_K, 6 if refuse_process_madvise else 5, 0, NR_PROCESS_MADVISE),  # 3
        (BPF_JEQ_K, 0, 4, NR_MADVISE),                                   # 4
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARG2),                               # 5
        (BPF_JEQ_K, 3 if refuse_madvise else 2, 0, 102),                 # 6: MADV_GUARD_INSTALL
        (BPF_JEQ_K, 2 if refuse_madvise else 1, 0, 103),                 # 7: MADV_GUARD_REMOVE
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),                            # 8
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),                            # 9
        (BPF_RET_K, 0, 0, deny),                                         # 10
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*insn) for insn in program])
    prog = SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
""" % (SYSCALLS,)

ERRNOS = [errno.EINVAL, errno.ENOSYS, errno.EPERM]


def _run(body: str, *args: str):
    result = run_child(SECCOMP + body, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("err", ERRNOS, ids=[errno.errorcode[e] for e in ERRNOS])
def test_no_guard_pages_at_all(err):
    _run("""
import sys, warnings
err = int(sys.argv[1])
install_filter(True, True, err)
import guardalloc
found = guardalloc.support(refresh=True)
assert not found.anonymous and not found.process_madvise and not found.file_shared, found
assert found.auto_backend == "mprotect"
assert f"errno {err}" in found.reason and "MADV_GUARD_INSTALL" in found.reason, found.reason

# backend="madvise": a clear error, nothing left mapped.
before = guardalloc.vma_count()
try:
    guardalloc.Arena(4096, 64, backend="madvise")
except guardalloc.GuardUnsupportedError as exc:
    assert f"errno {err}" in str(exc) and "auto" in str(exc), exc
else:
    raise AssertionError("backend='madvise' did not raise")
assert guardalloc.vma_count() == before

# backend="auto": mprotect, with a RuntimeWarning that says why.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    arena = guardalloc.Arena(4096, 64, uaf=True)
assert [w.category for w in caught] == [RuntimeWarning], caught
text = str(caught[0].message)
assert "mprotect" in text and f"errno {err}" in text, text
assert arena.backend == "mprotect"
assert guardalloc.vma_count() >= before + 2 * 64
buf = arena.alloc(100)
buf.free()                       # the UAF guard: mprotect too
assert arena.stats()["quarantined"] == 1
arena.close()
assert guardalloc.vma_count() == before
print("ok")
""", str(err))


@pytest.mark.parametrize("err", ERRNOS, ids=[errno.errorcode[e] for e in ERRNOS])
def test_only_process_madvise_refused(err):
    """Guards still work, one madvise() per guard instead of 1024 per call."""
    _run("""
import sys, guardalloc
err = int(sys.argv[1])
install_filter(False, True, err)
found = guardalloc.support(refresh=True)
assert found.anonymous and not found.process_madvise and found.auto_backend == "madvise", found
before = guardalloc.vma_count()
arena = guardalloc.Arena(4096, 3000, backend="madvise", uaf=True)
arena.alloc(1, slot=2999).free()   # opens every slot (lazy guards)
stats = arena.stats()
assert not stats["batched"] and guardalloc.arena.batching_refused(), stats
# One madvise() per guard (plus the process_madvise() call that was
# refused): the first guard and the PROT_NONE tail at build, one mprotect()
# to open the slots, then the other 3,000 guards.
assert stats["guard_syscalls"] in (2 + 1 + 3000, 2 + 1 + 3001), stats
assert guardalloc.vma_count() <= before + 1
from conftest import is_guard_page as guarded
assert all(guarded(arena.address + i * arena.stride) for i in range(0, 3001, 100))
buf = arena.alloc(10)
address = buf.address
buf.free()
assert guarded(address)
arena.close()
print("ok")
""", str(err))


def test_sandbox_entered_after_the_first_probe():
    """support() is cached: a filter installed later makes backend='auto'
    fail with the errno, until support(refresh=True) probes again."""
    _run("""
import errno, warnings, guardalloc
assert guardalloc.support().anonymous             # probed and cached before the filter
install_filter(True, True, errno.EPERM)
try:
    guardalloc.Arena(4096, 16)
except guardalloc.GuardInstallError as exc:
    assert exc.errno == errno.EPERM and "refresh=True" in str(exc), exc
else:
    raise AssertionError("no GuardInstallError")
assert not guardalloc.support(refresh=True).anonymous
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    arena = guardalloc.Arena(4096, 16)
assert arena.backend == "mprotect" and caught and caught[0].category is RuntimeWarning
print("ok")
""")

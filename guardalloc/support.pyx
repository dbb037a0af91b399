# cython: language_level=3
"""What this kernel (and any seccomp filter around us) lets guardalloc do.

Everything here is probed with real system calls on scratch mappings, never
read off the kernel version: a backported kernel or a sandbox that refuses
the advice differs from what the version number promises.
"""

import os
from dataclasses import dataclass

from libc.errno cimport errno
from libc.string cimport strerror

from guardalloc._kernel cimport (
    MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE,
    MAP_SHARED, PROT_READ, PROT_WRITE, _SC_PAGESIZE, close, ftruncate,
    ga_memfd_create, ga_pidfd_open, ga_process_madvise, getpid, iovec, madvise,
    mmap, munlock, munmap, sysconf,
)

from guardalloc.pagemap import pagemap_scan_supported

PAGE_SIZE = sysconf(_SC_PAGESIZE)
PAGEMAP_GUARD_BIT = 58


@dataclass(frozen=True)
class Support:
    """Result of :func:`support`.

    Attributes:
        kernel: ``os.uname().release``, for the record only.
        anonymous: MADV_GUARD_INSTALL works on private anonymous memory.
        file_shared: it works on a shared file-backed (memfd) mapping (6.15+).
        process_madvise: process_madvise() on ourselves accepts the advice,
            so guards can be installed 1024 per system call.
        pagemap_guard_bit: /proc/self/pagemap marks guard pages (bit 58).
        auto_backend: what ``backend="auto"`` picks: "madvise" or "mprotect".
        reason: why guard pages are unavailable ("" when they work).
        pagemap_scan: the PAGEMAP_SCAN ioctl reports guard pages
            (PAGE_IS_GUARD), so :func:`guardalloc.maps.guard_pages` need not
            read every page's pagemap entry.
    """

    kernel: str
    anonymous: bool
    file_shared: bool
    process_madvise: bool
    pagemap_guard_bit: bool
    auto_backend: str
    reason: str
    pagemap_scan: bool = False


# Set by a probe that could not make its scratch resources (no descriptor
# left, no memory): its answer says nothing about the kernel, so support()
# does not cache it.
cdef bint _inconclusive = False


cdef bint _cannot_tell() noexcept:
    global _inconclusive
    _inconclusive = True
    return False


cdef str _errno_text(int err):
    return f"errno {err}: {strerror(err).decode()}"


cdef tuple _probe_anonymous():
    """Guard the middle page of a 3-page scratch mapping; check pagemap."""
    cdef size_t page = PAGE_SIZE
    cdef char *region = <char *>mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    cdef int err
    if region == <char *>MAP_FAILED:
        _cannot_tell()
        return False, False, "mmap failed: " + _errno_text(errno)
    # Under mlockall(MCL_FUTURE) the scratch pages arrive locked, and locked
    # memory refuses guards: unlock them so that the probe answers for the
    # kernel and the sandbox, not for this mapping's lock state (the arena
    # reports locked memory itself).
    munlock(region, 3 * page)
    try:
        if madvise(region + page, page, MADV_GUARD_INSTALL) != 0:
            err = errno
            return False, False, f"madvise(MADV_GUARD_INSTALL) refused: {_errno_text(err)}"
        return True, _pagemap_guard(<size_t>(region + page)), ""
    finally:
        munmap(region, 3 * page)


cdef bint _probe_file_shared():
    cdef size_t page = PAGE_SIZE
    cdef int fd = ga_memfd_create(b"guardalloc-probe")
    cdef char *region
    cdef bint ok = False
    if fd < 0:
        return _cannot_tell()
    try:
        if ftruncate(fd, 3 * page) != 0:
            return _cannot_tell()
        region = <char *>mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if region == <char *>MAP_FAILED:
            return _cannot_tell()
        munlock(region, 3 * page)
        ok = madvise(region + page, page, MADV_GUARD_INSTALL) == 0
        munmap(region, 3 * page)
        return ok
    finally:
        close(fd)


cdef bint _probe_process_madvise():
    cdef size_t page = PAGE_SIZE
    cdef iovec iov[2]
    cdef char *region
    cdef int pidfd = ga_pidfd_open(getpid())
    cdef long done
    if pidfd < 0:
        return _cannot_tell()
    region = <char *>mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if region == <char *>MAP_FAILED:
        close(pidfd)
        return _cannot_tell()
    munlock(region, 4 * page)
    iov[0].iov_base = region + page
    iov[0].iov_len = page
    iov[1].iov_base = region + 3 * page
    iov[1].iov_len = page
    done = ga_process_madvise(pidfd, iov, 2, MADV_GUARD_INSTALL)
    munmap(region, 4 * page)
    close(pidfd)
    return done == <long>(2 * page)


def _pagemap_guard(address: int) -> bool:
    """Whether /proc/self/pagemap marks the page at address as a guard."""
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return _cannot_tell()
    try:
        raw = os.pread(fd, 8, (address // PAGE_SIZE) * 8)
    except OSError:
        return False
    finally:
        os.close(fd)
    return len(raw) == 8 and bool(int.from_bytes(raw, "little") >> PAGEMAP_GUARD_BIT & 1)


_cached = None


def support(refresh: bool = False) -> Support:
    """Probe what guard-page features this process may use.

    The probe makes a few system calls on scratch mappings (about 50 us) and
    is cached; ``refresh=True`` probes again (after installing a seccomp
    filter, say). Never raises: a refused call shows up as ``False`` fields
    and a ``reason``. A probe that could not even make its scratch mapping
    or descriptor (RLIMIT_NOFILE reached, no memory) also reads ``False``,
    but then the result is not cached: the next call probes again.
    """
    global _cached, _inconclusive
    if _cached is not None and not refresh:
        return _cached
    _inconclusive = False
    anonymous, pagemap_bit, reason = _probe_anonymous()
    found = Support(
        kernel=os.uname().release,
        anonymous=anonymous,
        file_shared=anonymous and _probe_file_shared(),
        process_madvise=anonymous and _probe_process_madvise(),
        pagemap_guard_bit=pagemap_bit,
        auto_backend="madvise" if anonymous else "mprotect",
        reason=reason,
        pagemap_scan=pagemap_scan_supported(),
    )
    _cached = None if _inconclusive else found
    return found

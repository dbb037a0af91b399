# cython: language_level=3
"""What this kernel (and any seccomp filter around us) lets guardalloc do.

Everything here is probed with real system calls on scratch mappings, never
read off the kernel version: a backported kernel or a sandbox that refuses
the advice differs from what the version number promises.
"""

import errno as errno_module
import os
from dataclasses import dataclass

from guardalloc.options import check_bool

from libc.errno cimport errno
from libc.stdint cimport uint64_t
from libc.string cimport strerror
from posix.ioctl cimport ioctl
from posix.unistd cimport close, ftruncate

from guardalloc._core cimport (
    GA_BACKEND_MADVISE, GA_PAGE_IS_GUARD, GA_PAGEMAP_SCAN, GA_PM_GUARD_BIT,
    ga_guard_batch, ga_guard_range, ga_map_anonymous, ga_map_file, ga_memfd,
    ga_page_region, ga_page_size, ga_pm_scan_arg, ga_unlock, ga_unmap, iovec,
)

PAGE_SIZE = ga_page_size()
cdef size_t PAGE = ga_page_size()
PAGEMAP_GUARD_BIT = GA_PM_GUARD_BIT


def max_map_count() -> int | None:
    """``vm.max_map_count``, or None when it cannot be read."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Support:
    """Result of :func:`support`.

    Each probe field is True (works), False (the kernel or a seccomp filter
    refused it: ``reason`` says why for ``anonymous``) or None (unknown: the
    probe could not run, for want of a file descriptor or memory, say;
    ``unknown`` gives the errno). None is falsy, so ``if found.file_shared:``
    still means "known to work".

    Attributes:
        kernel: ``os.uname().release``, for the record only.
        anonymous: MADV_GUARD_INSTALL works on private anonymous memory.
        file_shared: it works on a shared file-backed (memfd) mapping (6.15+).
        process_madvise: process_madvise() on ourselves accepts the advice,
            so guards can be installed 1024 per system call.
        pagemap_guard_bit: /proc/self/pagemap marks guard pages (bit 58).
        auto_backend: what ``backend="auto"`` picks: "madvise" or "mprotect".
        reason: why guard pages are unavailable ("" when they work or are
            unknown).
        pagemap_scan: the PAGEMAP_SCAN ioctl reports guard pages
            (PAGE_IS_GUARD), so :func:`guardalloc.maps.guard_pages` need not
            read every page's pagemap entry.
        unknown: why the fields that are None could not be probed, one
            "field: what failed: errno N: text" per field, "; "-separated
            ("" when every probe ran).
    """

    kernel: str
    anonymous: bool | None
    file_shared: bool | None
    process_madvise: bool | None
    pagemap_guard_bit: bool | None
    auto_backend: str
    reason: str
    pagemap_scan: bool | None = False
    unknown: str = ""


# Why each probe that could not run (no descriptor, no memory) says
# nothing: filled during one support() call. Such a result is not cached.
_unknown = []


cdef object _cannot_tell(str field, str what, int err):
    """Record that a probe could not run (``what`` failed with err); its
    answer is None, unknown."""
    _unknown.append(f"{field}: {what} failed: {_errno_text(err)}")
    return None


cdef str _errno_text(int err):
    return f"errno {err}: {strerror(err).decode()}"


cdef char *_scratch(size_t size) noexcept:
    """A scratch anonymous mapping, unlocked: under mlockall(MCL_FUTURE) its
    pages arrive locked, and locked memory refuses guards, so that a probe
    answers for the kernel and the sandbox, not for this mapping's lock
    state (the arena reports locked memory itself)."""
    cdef char *region = <char *>ga_map_anonymous(NULL, size)
    if region != NULL:
        ga_unlock(region, size)
    return region


cdef int _guard_one(char *page_address) noexcept:
    return ga_guard_range(page_address, PAGE, GA_BACKEND_MADVISE, 1)


cdef tuple _probe_anonymous():
    """Guard the middle page of a 3-page scratch mapping; check pagemap.
    (anonymous, pagemap_guard_bit, reason)."""
    cdef size_t page = PAGE
    cdef char *region = _scratch(3 * page)
    cdef int err
    if region == NULL:
        err = errno
        return _cannot_tell("anonymous", "mmap of a scratch mapping", err), None, ""
    try:
        if _guard_one(region + page) != 0:
            err = errno
            return False, False, f"madvise(MADV_GUARD_INSTALL) refused: {_errno_text(err)}"
        return True, _pagemap_guard(<size_t>(region + page)), ""
    finally:
        ga_unmap(region, 3 * page)


cdef object _probe_file_shared():
    cdef size_t page = PAGE
    cdef int fd = ga_memfd(b"guardalloc-probe")
    cdef char *region
    cdef bint ok = False
    if fd < 0:
        return _cannot_tell("file_shared", "memfd_create", errno)
    try:
        if ftruncate(fd, 3 * page) != 0:
            return _cannot_tell("file_shared", "ftruncate of a memfd", errno)
        region = <char *>ga_map_file(fd, 3 * page, True)
        if region == NULL:
            return _cannot_tell("file_shared", "mmap of a memfd", errno)
        ga_unlock(region, 3 * page)
        ok = _guard_one(region + page) == 0
        ga_unmap(region, 3 * page)
        return ok
    finally:
        close(fd)


cdef object _probe_process_madvise():
    cdef size_t page = PAGE
    cdef iovec iov[2]
    cdef char *region = _scratch(4 * page)
    cdef long done
    cdef int err
    if region == NULL:
        return _cannot_tell("process_madvise", "mmap of a scratch mapping", errno)
    iov[0].iov_base = region + page
    iov[0].iov_len = page
    iov[1].iov_base = region + 3 * page
    iov[1].iov_len = page
    done = ga_guard_batch(iov, 2, 1)
    err = errno
    ga_unmap(region, 4 * page)
    if done < 0 and err in (errno_module.EMFILE, errno_module.ENFILE, errno_module.ENOMEM):
        # No pidfd to be had: says nothing about the kernel.
        return _cannot_tell("process_madvise", "pidfd_open of this process", err)
    return done == <long>(2 * page)


cdef object _scan_supported = None


cdef object _probe_pagemap_scan():
    """Whether PAGEMAP_SCAN accepts the PAGE_IS_GUARD category here.

    An ioctl on a scratch 3-page mapping whose middle page is a guard:
    kernels before 6.7 answer ENOTTY, those that do not know the guard
    category EINVAL. When guards themselves are refused (old kernel,
    seccomp), an accepted ioctl is enough. Probed again by every
    support() call that probes (support(refresh=True) included).
    """
    global _scan_supported
    cdef char *region
    cdef ga_page_region vec[4]
    cdef ga_pm_scan_arg arg
    cdef long n
    cdef bint guarded
    if _scan_supported is not None:
        return _scan_supported
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return _cannot_tell("pagemap_scan", "opening /proc/self/pagemap", exc.errno or 0)
    region = _scratch(3 * PAGE)
    if region == NULL:
        os.close(fd)
        return _cannot_tell("pagemap_scan", "mmap of a scratch mapping", errno)
    guarded = _guard_one(region + PAGE) == 0
    arg.size = sizeof(ga_pm_scan_arg)
    arg.flags = 0
    arg.start = <uint64_t>region
    arg.end = <uint64_t>region + 3 * PAGE
    arg.walk_end = 0
    arg.vec = <uint64_t>vec
    arg.vec_len = 4
    arg.max_pages = 0
    arg.category_inverted = 0
    arg.category_mask = GA_PAGE_IS_GUARD
    arg.category_anyof_mask = 0
    arg.return_mask = GA_PAGE_IS_GUARD
    n = ioctl(fd, GA_PAGEMAP_SCAN, &arg)
    if guarded:
        _scan_supported = (n == 1 and vec[0].start == <uint64_t>region + PAGE
                           and vec[0].end == <uint64_t>region + 2 * PAGE)
    else:
        _scan_supported = n >= 0
    ga_unmap(region, 3 * PAGE)
    os.close(fd)
    return _scan_supported


def _pagemap_guard(address: int) -> bool | None:
    """Whether /proc/self/pagemap marks the page at address as a guard
    (None: pagemap could not be read)."""
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return _cannot_tell("pagemap_guard_bit", "opening /proc/self/pagemap", exc.errno or 0)
    try:
        raw = os.pread(fd, 8, (address // PAGE) * 8)
    except OSError as exc:
        return _cannot_tell("pagemap_guard_bit", "reading /proc/self/pagemap", exc.errno or 0)
    finally:
        os.close(fd)
    return len(raw) == 8 and bool(int.from_bytes(raw, "little") >> PAGEMAP_GUARD_BIT & 1)


_cached = None


def support(refresh=False) -> Support:
    """Probe what guard-page features this process may use.

    The probe makes a few system calls on scratch mappings (about 50 us) and
    is cached; ``refresh=True`` probes again (after installing a seccomp
    filter, say). Never raises for what it finds: a refused call shows up as
    ``False`` fields and a ``reason``. A probe that could not even run (no
    file descriptor left under RLIMIT_NOFILE, no memory) reads ``None``,
    with the errno in ``unknown``; such a result is not cached: the next
    call probes again.

    Raises:
        TypeError: refresh is not True or False.
    """
    global _cached, _scan_supported
    if check_bool("refresh", refresh):
        _cached = None
    if _cached is not None:
        return _cached
    del _unknown[:]
    _scan_supported = None
    anonymous, pagemap_bit, reason = _probe_anonymous()
    found = Support(
        kernel=os.uname().release,
        anonymous=anonymous,
        file_shared=anonymous and _probe_file_shared(),
        process_madvise=anonymous and _probe_process_madvise(),
        pagemap_guard_bit=pagemap_bit,
        # Unknown (the probe could not run): try madvise, and let the
        # arena's own calls say what is wrong.
        auto_backend="mprotect" if anonymous is False else "madvise",
        reason=reason,
        pagemap_scan=_probe_pagemap_scan(),
        unknown="; ".join(_unknown),
    )
    _cached = None if _unknown else found
    return found

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Finding guard pages in a process's page tables.

Guard pages make no VMA, so /proc/PID/maps cannot show them; the page tables
can. Two ways to read them, both in C without a Python step per page:

- ``PAGEMAP_SCAN`` (an ioctl on /proc/PID/pagemap, Linux 6.7) with the
  ``PAGE_IS_GUARD`` category (6.15+ kernels that know it): the kernel walks
  the page tables and hands back whole runs of guard pages.
- Otherwise the 64-bit pagemap entry of every page, read 64 Ki entries
  (512 KiB) per pread(), testing bit 58 ("pte is a guard region").

Both merge neighbouring pages into runs and return a :class:`GuardRuns`.
"""

import os
from collections import namedtuple

from guardalloc.options import check_int

cimport cython
from cpython.number cimport PyIndex_Check, PyNumber_AsSsize_t
from libc.errno cimport errno
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp

from libc.errno cimport EINTR
from posix.ioctl cimport ioctl
from posix.unistd cimport close, pread

from guardalloc._core cimport (
    GA_PAGE_IS_GUARD, GA_PAGEMAP_SCAN, GA_PM_GUARD_BIT, ga_page_region, ga_page_size,
    ga_pm_scan_arg,
)

PAGE_SIZE = ga_page_size()
cdef uint64_t PAGE = <uint64_t>ga_page_size()
# Regions per PAGEMAP_SCAN call and pagemap entries per pread(): big enough
# that a million guards take a few hundred system calls, small enough to sit
# in the cache (96 KiB and 512 KiB).
cdef size_t SCAN_REGIONS = 4096
cdef size_t PAGEMAP_CHUNK = 65536


class Range(namedtuple("Range", "start end")):
    """An address range ``[start, end)``."""

    __slots__ = ()

    @property
    def size(self) -> int:
        """Bytes in the range."""
        return self.end - self.start

    def __repr__(self):
        return f"Range(start={self.start:#x}, end={self.end:#x})"


class GuardRun(namedtuple("GuardRun", "start end")):
    """One run of consecutive guard pages: ``[start, end)``, page aligned."""

    __slots__ = ()

    @property
    def pages(self) -> int:
        """Guard pages in the run."""
        return (self.end - self.start) // PAGE_SIZE

    @property
    def size(self) -> int:
        """Bytes in the run."""
        return self.end - self.start

    def __repr__(self):
        return f"GuardRun(start={self.start:#x}, end={self.end:#x})"


# ---------------------------------------------------------------------------
# The runs, as a growable C array of (start, end) pairs (run_list_t, in
# pagemap.pxd)

cdef int _push_run(run_list_t *runs, uint64_t start, uint64_t end) noexcept nogil:
    """Append [start, end), merged into the last run when they touch.
    Returns -1 when out of memory."""
    cdef uint64_t *grown
    cdef size_t capacity
    if runs.count > runs.sealed and start <= runs.pairs[2 * runs.count - 1]:
        # Touching (or overlapping: a resumed scan that repeats itself).
        if end > runs.pairs[2 * runs.count - 1]:
            runs.pairs[2 * runs.count - 1] = end
        return 0
    if runs.count == runs.capacity:
        capacity = runs.capacity * 2 if runs.capacity else 256
        grown = <uint64_t *>realloc(runs.pairs, capacity * 2 * sizeof(uint64_t))
        if grown == NULL:
            return -1
        runs.pairs = grown
        runs.capacity = capacity
    runs.pairs[2 * runs.count] = start
    runs.pairs[2 * runs.count + 1] = end
    runs.count += 1
    return 0


# Failure codes of the scanners (errno holds the system call's error).
cdef enum:
    SCAN_OK = 0
    SCAN_SYSCALL = -1
    SCAN_NOMEM = -2
    SCAN_STUCK = -3


cdef int _scan_ioctl(int fd, uint64_t start, uint64_t end, ga_page_region *vec,
                     run_list_t *runs, unsigned long long *syscalls) noexcept nogil:
    """Guard runs in [start, end) from PAGEMAP_SCAN."""
    cdef ga_pm_scan_arg arg
    cdef long n, i
    cdef uint64_t resume
    arg.size = sizeof(ga_pm_scan_arg)
    arg.flags = 0
    arg.start = start
    arg.end = end
    arg.walk_end = 0
    arg.vec = <uint64_t>vec
    arg.vec_len = SCAN_REGIONS
    arg.max_pages = 0
    arg.category_inverted = 0
    arg.category_mask = GA_PAGE_IS_GUARD
    arg.category_anyof_mask = 0
    arg.return_mask = GA_PAGE_IS_GUARD
    while arg.start < end:
        n = ioctl(fd, GA_PAGEMAP_SCAN, &arg)
        syscalls[0] += 1
        if n < 0:
            if errno == EINTR:
                continue
            return SCAN_SYSCALL
        for i in range(n):
            if _push_run(runs, vec[i].start, vec[i].end) != 0:
                return SCAN_NOMEM
        # The kernel stops early only when the vector is full. (6.18 may
        # then leave walk_end behind regions it already returned, and even
        # report walk_end < end after a complete walk, so walk_end alone
        # cannot end the loop.)
        if <size_t>n < SCAN_REGIONS or arg.walk_end >= end:
            break
        resume = arg.walk_end if arg.walk_end > vec[n - 1].end else vec[n - 1].end
        if resume <= arg.start:
            return SCAN_STUCK   # no progress: never loop forever
        arg.start = resume   # a run cut there is merged back by _push_run
    return SCAN_OK


cdef int _scan_pagemap(int fd, uint64_t start, uint64_t end, uint64_t *entries,
                       run_list_t *runs, unsigned long long *syscalls) noexcept nogil:
    """Guard runs in [start, end) from pagemap entries (bit 58)."""
    cdef uint64_t page = start // PAGE, last = end // PAGE
    cdef uint64_t run_start = 0, guard_bit = (<uint64_t>1) << GA_PM_GUARD_BIT
    cdef bint in_run = False
    cdef size_t want, got, k
    cdef ssize_t nread
    while page < last:
        want = PAGEMAP_CHUNK if last - page > PAGEMAP_CHUNK else <size_t>(last - page)
        nread = pread(fd, entries, want * 8, <long>(page * 8))
        syscalls[0] += 1
        if nread < 0:
            if errno == EINTR:
                continue
            return SCAN_SYSCALL
        got = <size_t>nread // 8
        if got == 0:
            break   # past the end of the address space
        for k in range(got):
            if entries[k] & guard_bit:
                if not in_run:
                    run_start = page + k
                    in_run = True
            elif in_run:
                if _push_run(runs, run_start * PAGE, (page + k) * PAGE) != 0:
                    return SCAN_NOMEM
                in_run = False
        page += got
    if in_run and _push_run(runs, run_start * PAGE, page * PAGE) != 0:
        return SCAN_NOMEM
    return SCAN_OK


# ---------------------------------------------------------------------------
# Ranges and GuardRuns: sequences kept as one C array

@cython.auto_pickle(False)
cdef class Ranges:
    """A read-only sequence of address ranges ``(start, end)``, in address
    order, disjoint; the result of :func:`guardalloc.maps.readable_ranges`.

    Kept as one C array, so a million ranges cost 16 MB, not a million
    tuples; the :class:`Range` items are made when asked for.
    """

    def __cinit__(self):
        self.runs.pairs = NULL
        self.runs.count = 0
        self.runs.capacity = 0
        self.runs.sealed = 0
        self.item_type = Range

    def __init__(self):
        raise TypeError(f"{type(self).__name__} cannot be created directly")

    def __dealloc__(self):
        free(self.runs.pairs)

    def __len__(self):
        return self.runs.count

    def __getitem__(self, index):
        cdef Py_ssize_t i
        if isinstance(index, slice):
            return [self[j] for j in range(*index.indices(self.runs.count))]
        if not PyIndex_Check(index):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, not "
                            f"{type(index).__name__}")
        i = PyNumber_AsSsize_t(index, IndexError)
        if i < 0:
            i += self.runs.count
        if not 0 <= i < <Py_ssize_t>self.runs.count:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self.item_type(self.runs.pairs[2 * i], self.runs.pairs[2 * i + 1])

    def __iter__(self):
        cdef size_t i
        item = self.item_type
        for i in range(self.runs.count):
            yield item(self.runs.pairs[2 * i], self.runs.pairs[2 * i + 1])

    def __eq__(self, other):
        cdef Ranges theirs
        if isinstance(other, Ranges):
            theirs = <Ranges>other
            return (self.runs.count == theirs.runs.count and
                    (self.runs.count == 0 or
                     memcmp(self.runs.pairs, theirs.runs.pairs, self.runs.count * 2 * sizeof(uint64_t)) == 0))
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None

    def __contains__(self, address):
        """Whether an address (an int) lies in one of the ranges."""
        cdef size_t i
        cdef uint64_t where
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address < 2**64:
            return False
        where = address
        i = self._first_ending_after(where)
        return i < self.runs.count and self.runs.pairs[2 * i] <= where

    cdef size_t _first_ending_after(self, uint64_t where) noexcept nogil:
        """Index of the first range whose end lies above where."""
        cdef size_t lo = 0, hi = self.runs.count, mid
        while lo < hi:
            mid = (lo + hi) // 2
            if self.runs.pairs[2 * mid + 1] <= where:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def within(self, start, end):
        """The ranges cut to ``[start, end)``: a new sequence of the same
        kind (binary search, then a copy of the overlapping part)."""
        cdef Ranges result = <Ranges>type(self).__new__(type(self))
        cdef uint64_t lo, hi, a, b
        cdef size_t i
        start = check_int("start", start, 0, 2**64 - 1, "an address below 2**64")
        end = check_int("end", end, 0, 2**64 - 1, "an address below 2**64")
        if start > end:
            raise ValueError(f"start ({start:#x}) is above end ({end:#x})")
        lo = start
        hi = end
        if isinstance(self, GuardRuns):
            (<GuardRuns>result).method = (<GuardRuns>self).method
        i = self._first_ending_after(lo)
        while i < self.runs.count and self.runs.pairs[2 * i] < hi:
            a = self.runs.pairs[2 * i] if self.runs.pairs[2 * i] > lo else lo
            b = self.runs.pairs[2 * i + 1] if self.runs.pairs[2 * i + 1] < hi else hi
            if _push_run(&result.runs, a, b) != 0:
                raise MemoryError("no memory for the ranges")
            i += 1
        return result

    @property
    def size(self) -> int:
        """Bytes in all ranges."""
        cdef uint64_t total = 0
        cdef size_t i
        for i in range(self.runs.count):
            total += self.runs.pairs[2 * i + 1] - self.runs.pairs[2 * i]
        return total

    def __repr__(self):
        return f"<guardalloc.maps.{type(self).__name__}: {self.runs.count} range(s), {self.size} bytes>"


@cython.auto_pickle(False)
@cython.final
cdef class GuardRuns(Ranges):
    """The guard-page runs found by :func:`guardalloc.maps.guard_pages`:
    a :class:`Ranges` whose items are :class:`GuardRun`, neighbouring
    guard pages merged into one run."""

    def __cinit__(self):
        self.item_type = GuardRun
        self.method = ""
        self.syscalls = 0

    @property
    def pages(self) -> int:
        """Guard pages in all runs."""
        return self.size // PAGE

    def __repr__(self):
        return f"<guardalloc.maps.GuardRuns: {self.runs.count} run(s), {self.pages} page(s), via {self.method}>"


def subtract(pieces, GuardRuns guards) -> Ranges:
    """``pieces`` (sorted, disjoint ``(start, end)`` pairs) minus the guard
    runs, neighbours merged. The C core of
    :func:`guardalloc.maps.readable_ranges`."""
    cdef Ranges result = Ranges.__new__(Ranges)
    cdef size_t g = 0, ng = guards.runs.count
    cdef uint64_t lo, hi, cut
    cdef uint64_t *runs = guards.runs.pairs
    for piece_start, piece_end in pieces:
        lo = piece_start
        hi = piece_end
        while lo < hi:
            while g < ng and runs[2 * g + 1] <= lo:
                g += 1
            cut = hi if g == ng or runs[2 * g] >= hi else runs[2 * g]
            if cut > lo and _push_run(&result.runs, lo, cut) != 0:
                raise MemoryError("no memory for the ranges")
            if cut == hi:
                break
            lo = runs[2 * g + 1] if runs[2 * g + 1] < hi else hi
    return result


# ---------------------------------------------------------------------------
# Scanning

def scan(pid, ranges, str method) -> GuardRuns:
    """Guard runs of process ``pid`` inside ``ranges`` (sorted, disjoint,
    page-aligned ``(start, end)`` pairs), read with ``method``: "scan"
    (PAGEMAP_SCAN) or "pagemap" (bit 58 of each entry).

    The low-level core of :func:`guardalloc.maps.guard_pages`, which widens
    and clips the ranges; this function checks only ``method`` and ``pid``.

    Raises:
        ValueError: bad method or pid.
        FileNotFoundError, ProcessLookupError, PermissionError: from
            opening /proc/PID/pagemap.
        OSError: the ioctl or read failed.
        MemoryError: no memory for the runs.
    """
    cdef GuardRuns result = GuardRuns.__new__(GuardRuns)
    cdef uint64_t *bounds
    cdef void *work
    cdef size_t n = len(ranges), i
    cdef int fd, rc = SCAN_OK, err = 0
    cdef bint use_ioctl
    if method not in ("scan", "pagemap"):
        raise ValueError(f"method must be 'scan' or 'pagemap', not {method!r}")
    if pid != "self" and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ValueError(f"pid must be a positive process ID or 'self', not {pid!r}")
    use_ioctl = method == "scan"
    result.method = method
    if n == 0:
        return result   # nothing mapped (a kernel thread has no pagemap)
    bounds = <uint64_t *>malloc((2 * n + 1) * sizeof(uint64_t))
    work = malloc(SCAN_REGIONS * sizeof(ga_page_region) if use_ioctl else PAGEMAP_CHUNK * 8)
    if bounds == NULL or work == NULL:
        free(bounds)
        free(work)
        raise MemoryError("no memory for the guard-page scan")
    try:
        for i, (start, end) in enumerate(ranges):
            bounds[2 * i] = start
            bounds[2 * i + 1] = end
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        with nogil:
            for i in range(n):
                if bounds[2 * i] >= bounds[2 * i + 1]:
                    continue
                # Runs stay inside their range (their VMA), even where the
                # next VMA starts with a guard too.
                result.runs.sealed = result.runs.count
                if use_ioctl:
                    rc = _scan_ioctl(fd, bounds[2 * i], bounds[2 * i + 1], <ga_page_region *>work, &result.runs,
                                     &result.syscalls)
                else:
                    rc = _scan_pagemap(fd, bounds[2 * i], bounds[2 * i + 1], <uint64_t *>work, &result.runs,
                                       &result.syscalls)
                if rc != SCAN_OK:
                    err = errno
                    break
            close(fd)
        result.runs.sealed = 0
    finally:
        free(bounds)
        free(work)
    if rc == SCAN_NOMEM:
        raise MemoryError("no memory for the guard runs")
    if rc == SCAN_STUCK:
        raise OSError(f"PAGEMAP_SCAN of /proc/{pid}/pagemap made no progress")
    if rc == SCAN_SYSCALL:
        what = "PAGEMAP_SCAN ioctl" if use_ioctl else "read"
        raise OSError(err, f"{what} of /proc/{pid}/pagemap failed: {os.strerror(err)}")
    return result

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The arena: one mapping carved into slots with a guard page between every two.

The slot bookkeeping (free stack, quarantine ring, slot states) is typed C
data in the ``ga_arena_t`` descriptor and a few arrays; ``alloc`` and ``free``
touch no Python containers. Guards are installed with MADV_GUARD_INSTALL, up
to 1024 per process_madvise() call, so they add no VMA at all.
"""

import errno as errno_module
import fcntl
import os
import stat
import sys
import warnings

cimport cython
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.exc cimport PyErr_SetObject, PyErr_WriteUnraisable
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset, strerror
from posix.stat cimport fstat, struct_stat

from guardalloc._kernel cimport (
    EAGAIN, EBADF, EINTR, EINVAL, ENOMEM, ENOSYS, EPERM, GA_IOV_MAX,
    MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_ANONYMOUS, MAP_FAILED,
    MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE,
    _SC_PAGESIZE, close, ga_pidfd_open, ga_process_madvise, getpid, iovec,
    madvise, mmap, mprotect, munmap, pid_t, sysconf,
)
from guardalloc.faults cimport register_arena, unregister_arena

from guardalloc.errors import (
    BackingFileError, CorruptionError, DoubleFreeError, ForeignBufferError,
    GuardInstallError, GuardUnsupportedError, InvalidFreeError,
)
from guardalloc.maps import max_map_count
from guardalloc.support import support

cdef size_t PAGE = <size_t>sysconf(_SC_PAGESIZE)
cdef char *_FORMAT_B = "B"
# Slot offsets and sizes are kept in 32 bits.
cdef size_t MAX_SLOT_SIZE = (<size_t>1 << 32) - PAGE
# Sanity bounds that keep absurd arguments from exhausting the machine: the
# whole arena within 64 TiB of address space (x86-64 gives a process 128),
# and its guards within 1 TiB, whose page-table markers cost up to 2 GiB.
MAX_ARENA_BYTES = 1 << 46
MAX_GUARD_BYTES = 1 << 40

_BACKENDS = {"none": GA_BACKEND_NONE, "madvise": GA_BACKEND_MADVISE, "mprotect": GA_BACKEND_MPROTECT}
# How many frames a recorded traceback keeps (the innermost ones).
cdef int TRACE_DEPTH = 32


def _require_gil():
    """Refuse to run on a free-threaded CPython whose GIL is off.

    The slot bookkeeping is serialized by the GIL alone. A free-threaded
    build (3.13t) turns the GIL back on when it imports these modules, which
    do not declare themselves free-threading safe; only PYTHON_GIL=0 or
    -X gil=0 keeps it off, and then concurrent alloc/free would corrupt the
    arena.
    """
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is not None and not is_gil_enabled():
        raise RuntimeError(
            "guardalloc.Arena relies on the GIL to serialize its bookkeeping, and this "
            "free-threaded interpreter runs with the GIL disabled (PYTHON_GIL=0 or -X gil=0); "
            "run with the GIL enabled (the default once guardalloc is imported)")


cdef inline size_t round_up(size_t n, size_t multiple) noexcept nogil:
    return (n + multiple - 1) // multiple * multiple


cdef inline size_t _tables_bytes(uint32_t nslots, bint uaf) noexcept nogil:
    """Slot table, free stack and (uaf) quarantine ring, rounded up so that
    the traceback tables after them are pointer-aligned."""
    return round_up(nslots * (sizeof(ga_slot_t) + sizeof(uint32_t) * (2 if uaf else 1)),
                    sizeof(char *))


cdef inline size_t _bookkeeping_bytes(uint32_t nslots, bint uaf) noexcept nogil:
    """All of an anonymous arena's bookkeeping: the tables, then the
    allocation and free traceback tables (address space only, untouched
    until tracebacks are recorded)."""
    return _tables_bytes(nslots, uaf) + 2 * <size_t>nslots * sizeof(char *)


cdef size_t anonymous_mapping_size(size_t slot_size, uint32_t nslots, size_t guard_size,
                                   bint uaf) noexcept nogil:
    """Bytes of an anonymous arena's one mapping: guards, slots (slot_size in
    whole pages) and, after the last guard, the bookkeeping."""
    return (guard_size + nslots * (slot_size + guard_size)
            + round_up(_bookkeeping_bytes(nslots, uaf), PAGE))


# ---------------------------------------------------------------------------
# Guard installation

# process_madvise() needs a pidfd for ourselves. It is cached per process: a
# forked child must not reuse its parent's pidfd, or it would guard the parent.
# Threads call this without the GIL (arena construction, pools), so the cache
# is one 64-bit word, (pid << 32) | (fd + 1), replaced by compare-and-swap:
# a thread that loses the race closes its own pidfd, and only the winner
# closes the one inherited across fork.
cdef extern from *:
    """
    static uint64_t ga_pidfd_cache;
    static int ga_self_pidfd(pid_t pid) {
        uint64_t cur = __atomic_load_n(&ga_pidfd_cache, __ATOMIC_ACQUIRE);
        for (;;) {
            uint64_t next;
            int fd;
            if (cur != 0 && (pid_t)(cur >> 32) == pid)
                return (int)(uint32_t)cur - 1;
            fd = ga_pidfd_open(pid);
            if (fd < 0)
                return -1;
            next = ((uint64_t)(uint32_t)pid << 32) | (uint32_t)(fd + 1);
            if (__atomic_compare_exchange_n(&ga_pidfd_cache, &cur, next, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (cur != 0)
                    close((int)(uint32_t)cur - 1);   /* the parent's, inherited across fork */
                return fd;
            }
            close(fd);   /* another thread won: cur holds its entry now */
        }
    }
    """
    int ga_self_pidfd(pid_t pid) nogil
# Set once process_madvise() refuses guard advice (old kernel, seccomp).
cdef bint _batching_refused = False


cdef inline int _self_pidfd() noexcept nogil:
    return ga_self_pidfd(getpid())


cdef int install_guards(char *first, size_t stride, size_t count,
                        size_t guard_size, int backend, bint batched,
                        uint64_t *syscalls) noexcept nogil:
    """Turn ``count`` ranges of ``guard_size`` bytes, ``stride`` apart, into guards.

    Returns 0, or -1 with errno set. The madvise backend sends up to 1024
    ranges per process_madvise() call and falls back to one madvise() per
    guard when the kernel or a sandbox refuses the batched call.
    """
    global _batching_refused
    cdef iovec iov[GA_IOV_MAX]
    cdef size_t i = 0, k, n
    cdef long done
    cdef int pidfd, err
    cdef bint batch_einval = False
    if guard_size == 0 or count == 0 or backend == GA_BACKEND_NONE:
        return 0
    if backend == GA_BACKEND_MPROTECT:
        for i in range(count):
            syscalls[0] += 1
            if mprotect(first + i * stride, guard_size, PROT_NONE) != 0:
                return -1
        return 0
    if batched and not _batching_refused:
        pidfd = _self_pidfd()
        while pidfd >= 0 and i < count:
            n = count - i if count - i < <size_t>GA_IOV_MAX else <size_t>GA_IOV_MAX
            for k in range(n):
                iov[k].iov_base = first + (i + k) * stride
                iov[k].iov_len = guard_size
            syscalls[0] += 1
            done = ga_process_madvise(pidfd, iov, n, MADV_GUARD_INSTALL)
            if done < 0:
                err = errno
                if err == EINTR or err == EAGAIN:
                    continue
                if err == ENOSYS or err == EPERM or err == EBADF:
                    _batching_refused = True   # refused as a whole
                    break
                if err == EINVAL and i == 0:
                    # A kernel without batched guard advice, or memory the
                    # kernel will not guard at all (mlocked): the per-guard
                    # madvise() below tells them apart.
                    batch_einval = True
                    break
                return -1
            if done == 0:
                break   # no progress: let madvise() report the error
            # A short count means an error after some ranges; the next call
            # resumes there and reports it.
            i += <size_t>done // guard_size
        if i >= count:
            return 0
    for i in range(i, count):
        syscalls[0] += 1
        if madvise(first + i * stride, guard_size, MADV_GUARD_INSTALL) != 0:
            return -1
        if batch_einval:
            _batching_refused = True   # madvise() takes what the batch did not
            batch_einval = False
    return 0


def batching_refused() -> bool:
    """True once process_madvise() refused guard advice in this process."""
    return _batching_refused


# ---------------------------------------------------------------------------
# Tracebacks, captured at alloc/free and kept pre-rendered for the handler

cdef bint _tracebacks_default = False


def set_tracebacks(bint enabled) -> None:
    """Record allocation and free tracebacks in every arena that does not
    choose for itself (``Arena(tracebacks=None)``). Costs a few microseconds
    per alloc and free."""
    global _tracebacks_default
    _tracebacks_default = enabled


def get_tracebacks() -> bool:
    """Whether arenas record tracebacks by default."""
    return _tracebacks_default


cdef extern from *:
    """
    #include <Python.h>
    #include <frameobject.h>
    /* PyFrame_GetLasti() is 3.11+; before, the field is public. */
    static inline int ga_frame_lasti(PyFrameObject *frame) {
    #if PY_VERSION_HEX >= 0x030B0000
        return PyFrame_GetLasti(frame);
    #else
        return frame->f_lasti;
    #endif
    }
    """
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject
    PyFrameObject *PyEval_GetFrame()
    PyFrameObject *PyFrame_GetBack(PyFrameObject *frame)    # new reference
    PyCodeObject *PyFrame_GetCode(PyFrameObject *frame)     # new reference
    int ga_frame_lasti(PyFrameObject *frame)
    int PyFrame_GetLineNumber(PyFrameObject *frame)

# Rendered traceback lines by (code object, instruction offset): rendering a
# frame (line-table lookup, formatting, encoding) costs far more than finding
# it again. Keyed by the code's address; the entry keeps the code alive and
# is checked against it. Cleared when it grows past TRACE_CACHE_MAX.
cdef dict _trace_lines = {}
cdef Py_ssize_t TRACE_CACHE_MAX = 65536
# Code objects whose frames recorded tracebacks leave out (the run
# launcher's and runpy's, below every frame of the program).
cdef set _hidden_code = set()


def _hide_frames(codes):
    """Leave frames running any of ``codes`` (code objects) out of the
    allocation and free tracebacks recorded from now on."""
    _hidden_code.update(codes)
    _trace_lines.clear()


cdef bytes _render_line(PyFrameObject *frame, object code):
    return (f'    File "{code.co_filename}", line {PyFrame_GetLineNumber(frame)}, '
            f'in {code.co_name}\n').encode("utf-8", "backslashreplace")


cdef bytes _render_stack():
    """The Python stack of the caller, oldest frame first, as traceback lines
    (the innermost TRACE_DEPTH frames)."""
    cdef list parts = []
    cdef PyFrameObject *frame = PyEval_GetFrame()
    cdef PyFrameObject *back
    cdef PyObject *code_ref
    cdef int lasti
    cdef object code, key, entry
    if frame != NULL:
        Py_INCREF(<object><PyObject *>frame)
    try:
        while frame != NULL and len(parts) < TRACE_DEPTH:
            code_ref = <PyObject *>PyFrame_GetCode(frame)
            code = <object>code_ref
            Py_DECREF(code)             # ``code`` holds its own reference now
            lasti = ga_frame_lasti(frame)
            key = (<uintptr_t>code_ref, lasti)
            entry = _trace_lines.get(key)
            if entry is None or (<tuple>entry)[0] is not code:
                if len(_trace_lines) >= TRACE_CACHE_MAX:
                    _trace_lines.clear()
                entry = (code, b"" if code in _hidden_code else _render_line(frame, code))
                _trace_lines[key] = entry
            if (<tuple>entry)[1]:       # hidden frames do not count towards TRACE_DEPTH
                parts.append((<tuple>entry)[1])
            back = PyFrame_GetBack(frame)
            Py_DECREF(<object><PyObject *>frame)
            frame = back
    finally:
        if frame != NULL:
            Py_DECREF(<object><PyObject *>frame)
    parts.reverse()
    return b"".join(parts)


cdef void _set_trace(char **table, uint32_t slot, bytes text) noexcept:
    cdef char *old = table[slot]
    cdef char *copy = NULL
    cdef Py_ssize_t n
    if text is not None:
        n = len(text)
        copy = <char *>malloc(n + 1)
        if copy != NULL:
            memcpy(copy, <char *>text, n)
            copy[n] = 0
    table[slot] = copy
    free(old)


cdef void _free_traces(char **table, uint32_t nslots, bint heap_table) noexcept:
    """Free the rendered tracebacks, and the table itself when it was
    calloc'ed (file-backed arenas) rather than part of the mapping."""
    cdef uint32_t i
    if table == NULL:
        return
    for i in range(nslots):
        free(table[i])
    if heap_table:
        free(table)


cdef int check_guard_options(int guard_pages, str backend, str align, size_t alignment,
                             str on_fault, bint uaf, object tracebacks) except -1:
    """Validate the options an Arena and a Pool share (ValueError/TypeError)."""
    if guard_pages < 0:
        raise ValueError(f"guard_pages must be 0 or more, not {guard_pages}")
    if backend not in ("auto", "madvise", "mprotect", "none"):
        raise ValueError(f"backend must be 'auto', 'madvise', 'mprotect' or 'none', not {backend!r}")
    if align not in ("right", "left"):
        raise ValueError(f"align must be 'right' or 'left', not {align!r}")
    if alignment < 1 or alignment > PAGE or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two from 1 to {PAGE}, not {alignment}")
    if on_fault not in ("abort", "continue"):
        raise ValueError(f"on_fault must be 'abort' or 'continue', not {on_fault!r}")
    if uaf and backend == "none":
        raise ValueError("uaf=True needs guards: use backend 'auto', 'madvise' or 'mprotect'")
    if tracebacks is not None and not isinstance(tracebacks, bool):
        raise TypeError("tracebacks must be True, False or None")
    return 0


# ---------------------------------------------------------------------------
# Arena

@cython.auto_pickle(False)
@cython.final
cdef class Arena:
    """One mapping of ``slots`` slots, each between guard pages.

    Arena(slot_size, slots, *, guard_pages=1, backend="auto", align="right",
          alignment=16, batch=True, uaf=False, quarantine=None,
          tracebacks=None, on_fault="abort", file=None, shared=True)

    Args:
        slot_size: bytes per slot, rounded up to whole pages (the largest
            buffer the arena hands out).
        slots: number of slots.
        guard_pages: guard pages before the first slot, between every two
            slots and after the last (0: no guards).
        backend: "madvise" (MADV_GUARD_INSTALL, no VMA per guard),
            "mprotect" (PROT_NONE, two VMAs per guard), "none" (no guards,
            a baseline) or "auto" (madvise when :func:`support` finds it,
            otherwise mprotect with a ``RuntimeWarning``).
        align: "right" puts a buffer's end against the next guard page
            (catches overflows); "left" starts it right after the previous
            guard (catches underflows).
        alignment: buffer alignment, a power of two up to the page size;
            1 makes right-aligned buffers byte-exact. Larger alignments leave
            slack bytes after the buffer, which are filled with a pattern and
            checked on free (:class:`CorruptionError`).
        batch: install guards with process_madvise(), 1024 per system call
            (madvise backend; falls back to one madvise() per guard).
        uaf: on free, guard the slot's data pages too, so that any access
            through a stale pointer faults; the kernel drops the pages.
        quarantine: how many freed slots wait (FIFO) before they may be
            reused when ``uaf=True``; default: all of them, i.e. a freed
            slot is reused only when no never-used slot is left.
        tracebacks: record allocation/free tracebacks for fault reports;
            None follows :func:`set_tracebacks`.
        on_fault: "abort" (report and die with SIGSEGV) or "continue"
            (report once, lift the guard that was hit, retire the slot).
        file: back the arena by a file: a path (created and sized as
            needed; opened read-only for ``shared=False`` when it may not
            be written), an open file descriptor (duplicated), or "memfd"
            (sealed against shrinking). See also :class:`SharedArena`.
        shared: with ``file``, map it MAP_SHARED (True) or MAP_PRIVATE.

    Raises:
        ValueError: an argument is out of range.
        RuntimeError: a free-threaded interpreter runs with the GIL disabled.
        GuardUnsupportedError: ``backend="madvise"`` on a kernel or sandbox
            without guard pages.
        MemoryError: the mapping cannot be made, or mprotect guards run into
            ``vm.max_map_count`` (nothing is left mapped).
        GuardInstallError: the kernel refused the guards (errno tells why;
            EINVAL when the memory is mlocked: ``backend="auto"`` then
            falls back to mprotect with a ``RuntimeWarning`` instead).
        PermissionError: ``shared=True`` on a file descriptor open
            read-only.
        OSError: the file cannot be opened, sized or mapped.
    """

    def __cinit__(self):
        self.is_closed = True
        self.fd_ = -1
        self.a.base = NULL

    def __init__(self, slot_size, slots, *, int guard_pages=1, str backend="auto",
                 str align="right", size_t alignment=16, bint batch=True,
                 bint uaf=False, quarantine=None, tracebacks=None,
                 str on_fault="abort", file=None, bint shared=True):
        if self.a.base != NULL:
            raise RuntimeError("Arena.__init__ called twice")
        _require_gil()
        slot_size = int(slot_size)
        slots = int(slots)
        if slot_size < 1:
            raise ValueError(f"slot_size must be at least 1, not {slot_size}")
        if slot_size > MAX_SLOT_SIZE:
            raise ValueError(f"slot_size must be at most {MAX_SLOT_SIZE} bytes, not {slot_size}")
        if not 1 <= slots <= 0xFFFFFFFF:
            raise ValueError(f"slots must be between 1 and {0xFFFFFFFF}, not {slots}")
        check_guard_options(guard_pages, backend, align, alignment, on_fault, uaf, tracebacks)
        if quarantine is not None and not 0 <= quarantine <= slots:
            raise ValueError(f"quarantine must be between 0 and slots ({slots}), not {quarantine}")
        guard_bytes = (slots + 1) * guard_pages * PAGE
        total = guard_bytes + slots * -(-slot_size // PAGE) * PAGE
        if total > MAX_ARENA_BYTES:
            raise ValueError(f"an arena of {slots} slots of {slot_size} bytes needs {total:,} bytes "
                             f"of address space, more than the {MAX_ARENA_BYTES:,} guardalloc allows")
        if guard_bytes > MAX_GUARD_BYTES:
            raise ValueError(f"{slots + 1} guards of {guard_pages} page(s) cover {guard_bytes:,} bytes, "
                             f"more than the {MAX_GUARD_BYTES:,} guardalloc allows "
                             "(their page-table markers would cost up to 2 GiB)")

        requested = backend
        backend = _choose_backend(backend, file is not None)
        self.backend = backend
        self.guard_pages = guard_pages
        self.align = align
        self.on_fault = on_fault
        self.tracebacks = tracebacks
        self.batched = batch
        self.a.backend = _BACKENDS[backend]
        self.a.slot_size = round_up(<size_t>slot_size, PAGE)
        self.a.guard_size = <size_t>guard_pages * PAGE
        self.a.stride = self.a.slot_size + self.a.guard_size
        self.a.alignment = alignment
        self.a.nslots = <uint32_t>slots
        self.a.align_right = align == "right"
        self.a.on_fault_continue = on_fault == "continue"
        self.a.uaf = uaf
        self.a.size = self.a.guard_size + <size_t>slots * self.a.stride
        self.quarantine_limit = <uint32_t>(slots if quarantine is None else quarantine)

        while True:
            self._map(file, shared)
            try:
                self._allocate_bookkeeping()
                self._install_all_guards()
                register_arena(&self.a)
                break
            except GuardInstallError as exc:
                self._release()
                if not (requested == "auto" and exc.errno == EINVAL and self.a.backend == GA_BACKEND_MADVISE):
                    raise
                # The kernel has guard pages but refuses them on this very
                # mapping (mlocked memory): "auto" means guards all the same.
                warnings.warn(
                    f"guardalloc: the kernel refused MADV_GUARD_INSTALL on the new arena (EINVAL: "
                    f"{_einval_reason(file is not None)}); falling back to mprotect guards, which "
                    "cost two VMAs per slot", RuntimeWarning, stacklevel=2)
                self.backend = "mprotect"
                self.a.backend = GA_BACKEND_MPROTECT
            except BaseException:
                self._release()
                raise
        self.registered = True
        self.is_closed = False

    cdef _map(self, file, bint shared):
        cdef void *base
        cdef int flags
        cdef int err
        self.mapped_size = self.a.size
        if file is None:
            # The slot table and free stack live in the same mapping, after
            # the last guard: a separate malloc() of them would be mmap()ed
            # by glibc for large arenas, a second VMA for every arena.
            self.mapped_size = anonymous_mapping_size(self.a.slot_size, self.a.nslots,
                                                      self.a.guard_size, self.a.uaf)
        if self.placement != NULL:
            # Inside a pool's reservation (anonymous only): replaces PROT_NONE.
            base = mmap(self.placement, self.mapped_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
        elif file is None:
            base = mmap(NULL, self.mapped_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        else:
            # A file's bookkeeping must stay private to each process that
            # maps it, so it lives on the heap instead.
            self.fd_, self.backing_fixed = _open_backing(file, self.a.size, shared)
            self.file = file
            self.a.shared = shared
            flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_NORESERVE
            base = mmap(NULL, self.mapped_size, PROT_READ | PROT_WRITE, flags, self.fd_, 0)
        if base == MAP_FAILED:
            err = errno
            if self.fd_ >= 0:
                close(self.fd_)
                self.fd_ = -1
            if err == ENOMEM:
                raise MemoryError(
                    f"cannot map {self.mapped_size} bytes for the arena: {strerror(err).decode()} "
                    "(address space limit RLIMIT_AS, or vm.max_map_count)")
            raise OSError(err, f"mmap of {self.mapped_size} bytes failed: {strerror(err).decode()}")
        self.a.base = <char *>base

    cdef _allocate_bookkeeping(self):
        cdef uint32_t i, n = self.a.nslots
        cdef uint8_t initial_flags = GA_FLAG_STACKED
        if self.mapped_size > self.a.size:
            # Carved from the (zero-filled) tail of the mapping; see _map.
            self.a.slots = <ga_slot_t *>(self.a.base + self.a.size)
            self.free_stack = <uint32_t *>(self.a.slots + n)
            if self.a.uaf:
                self.quarantine_ring = self.free_stack + n
            self.a.alloc_trace = <char **>(self.a.base + self.a.size + _tables_bytes(n, self.a.uaf))
            self.a.free_trace = self.a.alloc_trace + n
        else:
            self.a.slots = <ga_slot_t *>calloc(n, sizeof(ga_slot_t))
            self.free_stack = <uint32_t *>malloc(n * sizeof(uint32_t))
            if self.a.uaf:
                self.quarantine_ring = <uint32_t *>malloc(n * sizeof(uint32_t))
        if self.a.slots == NULL or self.free_stack == NULL or (self.a.uaf and self.quarantine_ring == NULL):
            raise MemoryError(f"no memory for the bookkeeping of {n} slots")
        if self.fd_ >= 0:
            initial_flags |= GA_FLAG_USED   # a file may hold data already
        # Slot 0 on top, so slots are handed out in address order.
        for i in range(n):
            self.free_stack[i] = n - 1 - i
            self.a.slots[i].flags = initial_flags
        self.free_top = n

    cdef _install_all_guards(self):
        cdef int rc, err
        cdef uint64_t syscalls = 0
        with nogil:
            rc = install_guards(self.a.base, self.a.stride, <size_t>self.a.nslots + 1,
                                self.a.guard_size, self.a.backend, self.batched, &syscalls)
        err = errno
        self.guard_syscalls = syscalls
        if rc == 0:
            return
        if self.a.backend == GA_BACKEND_MADVISE and (err == EPERM or err == ENOSYS):
            # support() said yes earlier; a seccomp filter installed since
            # refuses the advice.
            raise GuardInstallError(
                err, f"installing madvise guards failed: {strerror(err).decode()} (a seccomp "
                "filter refuses the advice? guardalloc.support(refresh=True) probes again, "
                "after which backend='auto' falls back to mprotect)")
        if self.a.backend == GA_BACKEND_MPROTECT and err == ENOMEM:
            raise MemoryError(
                f"mprotect guards for {self.a.nslots} slots need about {2 * (self.a.nslots + 1)} "
                f"VMAs and the process reached vm.max_map_count ({max_map_count()}); "
                "use backend='madvise' (no VMA per guard) or raise the limit "
                "(nothing is left mapped)")
        raise GuardInstallError(err, f"installing {self.backend} guards failed: "
                                     f"{strerror(err).decode()}{_einval_hint(err, self.fd_ >= 0)}")

    cdef void _release(self) noexcept:
        """Unregister, unmap and free everything; safe on a half-built arena."""
        if self.registered:
            unregister_arena(&self.a)
            self.registered = False
        # Tracebacks first: their tables may be inside the mapping.
        _free_traces(self.a.alloc_trace, self.a.nslots, self.mapped_size == self.a.size)
        self.a.alloc_trace = NULL
        _free_traces(self.a.free_trace, self.a.nslots, self.mapped_size == self.a.size)
        self.a.free_trace = NULL
        if self.mapped_size == self.a.size:   # else: inside the mapping
            free(self.a.slots)
            free(self.free_stack)
            free(self.quarantine_ring)
        self.a.slots = NULL
        self.free_stack = NULL
        self.quarantine_ring = NULL
        if self.a.base != NULL:
            if self.placement != NULL:
                # Hand the range back to the pool's reservation rather than
                # leave a hole that another mmap() could land in.
                mmap(self.a.base, self.mapped_size, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
            else:
                munmap(self.a.base, self.mapped_size)
            self.a.base = NULL
        if self.fd_ >= 0:
            close(self.fd_)
            self.fd_ = -1
        self.is_closed = True

    def __dealloc__(self):
        self._release()

    # -- the C core -------------------------------------------------------

    cdef int _guard_data(self, uint32_t slot, bint install) noexcept nogil:
        """Guard (or unguard) a slot's data pages for use-after-free."""
        cdef char *start = GA_SLOT_START(&self.a, slot)
        cdef int rc
        self.uaf_syscalls += 1
        if self.a.backend == GA_BACKEND_MADVISE:
            rc = madvise(start, self.a.slot_size, MADV_GUARD_INSTALL if install else MADV_GUARD_REMOVE)
        else:
            rc = mprotect(start, self.a.slot_size, PROT_NONE if install else PROT_READ | PROT_WRITE)
        if rc == 0:
            if install:
                self.a.slots[slot].flags |= GA_FLAG_DATA_GUARDED
            else:
                self.a.slots[slot].flags &= ~GA_FLAG_DATA_GUARDED
                if self.a.backend == GA_BACKEND_MADVISE and self.fd_ < 0:
                    # Anonymous pages come back zero-filled.
                    self.a.slots[slot].flags &= ~GA_FLAG_USED
        return rc

    cdef inline void _push_free(self, uint32_t slot) noexcept nogil:
        cdef ga_slot_t *s = &self.a.slots[slot]
        s.state = GA_SLOT_FREE
        if not s.flags & GA_FLAG_STACKED:
            s.flags |= GA_FLAG_STACKED
            self.free_stack[self.free_top] = slot
            self.free_top += 1

    cdef inline long _take_slot(self) noexcept nogil:
        cdef uint32_t slot
        while self.free_top > 0:
            self.free_top -= 1
            slot = self.free_stack[self.free_top]
            self.a.slots[slot].flags &= ~GA_FLAG_STACKED
            # Entries of slots claimed by number or retired are skipped.
            if self.a.slots[slot].state == GA_SLOT_FREE:
                return slot
        # No fresh slot: recycle the one that has waited longest.
        while self.quarantine_len > 0:
            slot = self.quarantine_ring[self.quarantine_head]
            self.quarantine_head = (self.quarantine_head + 1) % self.a.nslots
            self.quarantine_len -= 1
            if self.a.slots[slot].state == GA_SLOT_QUARANTINED:
                return slot
        return -1

    cdef int _alloc_slot(self, size_t nbytes, bint zero, bint raw, long want) noexcept nogil:
        """Place a buffer of nbytes in a free slot (``want``, or any when -1).

        Returns the slot, or GA_ERR_FULL, GA_ERR_NOT_FREE, GA_ERR_SYSCALL.
        """
        cdef long slot
        cdef ga_slot_t *s
        cdef size_t padded, slack
        cdef char *p
        if want >= 0:
            slot = want
            if self.a.slots[slot].state != GA_SLOT_FREE:
                return GA_ERR_NOT_FREE
        else:
            slot = self._take_slot()
            if slot < 0:
                return GA_ERR_FULL
        s = &self.a.slots[slot]
        if s.flags & GA_FLAG_DATA_GUARDED:
            if self._guard_data(<uint32_t>slot, False) != 0:
                self._push_free(<uint32_t>slot)
                return GA_ERR_SYSCALL
        padded = round_up(nbytes, self.a.alignment)
        s.nbytes = <uint32_t>nbytes
        s.offset = <uint32_t>(self.a.slot_size - padded if self.a.align_right else 0)
        s.state = GA_SLOT_LIVE
        p = GA_SLOT_START(&self.a, slot) + s.offset
        if zero and s.flags & GA_FLAG_USED:
            memset(p, 0, nbytes)
        s.flags |= GA_FLAG_USED
        if raw:
            s.flags |= GA_FLAG_RAW
        else:
            s.flags &= ~GA_FLAG_RAW
        slack = padded - nbytes
        if slack:
            memset(p + nbytes, GA_SLACK_BYTE, slack)
        self.allocations += 1
        return <int>slot

    cdef int _free_address(self, char *address, ga_corruption_t *damage) noexcept nogil:
        """Free the buffer that starts at address.

        Returns GA_OK; GA_ERR_CORRUPT (freed, damage filled in);
        GA_ERR_FOREIGN, GA_ERR_INVALID or GA_ERR_DOUBLE (nothing changed);
        GA_ERR_SYSCALL (freed, but the use-after-free guard failed).
        """
        cdef size_t offset, within, slot, padded, i
        cdef ga_slot_t *s
        cdef int result = GA_OK
        cdef uint32_t oldest
        if address < self.a.base or address >= self.a.base + self.a.size:
            return GA_ERR_FOREIGN
        offset = <size_t>(address - self.a.base)
        if offset < self.a.guard_size:
            return GA_ERR_INVALID
        offset -= self.a.guard_size
        slot = offset // self.a.stride
        within = offset % self.a.stride
        if slot >= self.a.nslots or within >= self.a.slot_size:
            return GA_ERR_INVALID
        s = &self.a.slots[slot]
        if s.state != GA_SLOT_LIVE:
            if s.flags & GA_FLAG_USED and within == s.offset:
                return GA_ERR_DOUBLE
            return GA_ERR_INVALID
        if within != s.offset:
            return GA_ERR_INVALID
        padded = round_up(s.nbytes, self.a.alignment)
        damage.damaged = 0
        for i in range(s.nbytes, padded):
            if <uint8_t>address[i] != GA_SLACK_BYTE:
                if damage.damaged == 0:
                    damage.first_offset = i
                damage.damaged += 1
        if damage.damaged:
            result = GA_ERR_CORRUPT
        if s.flags & GA_FLAG_RETIRE:
            s.state = GA_SLOT_RETIRED
            # Never reused, but a stale pointer into it still faults.
            if self.a.uaf and self._guard_data(<uint32_t>slot, True) != 0:
                return GA_ERR_SYSCALL
            return result
        if not self.a.uaf:
            self._push_free(<uint32_t>slot)
            return result
        s.state = GA_SLOT_QUARANTINED
        if self._guard_data(<uint32_t>slot, True) != 0:
            self._push_free(<uint32_t>slot)
            return GA_ERR_SYSCALL
        self.quarantine_ring[(self.quarantine_head + self.quarantine_len) % self.a.nslots] = <uint32_t>slot
        self.quarantine_len += 1
        while self.quarantine_len > self.quarantine_limit:
            oldest = self.quarantine_ring[self.quarantine_head]
            self.quarantine_head = (self.quarantine_head + 1) % self.a.nslots
            self.quarantine_len -= 1
            if self.a.slots[oldest].state == GA_SLOT_QUARANTINED:
                # Still guarded; the guard comes off when it is reused.
                self._push_free(oldest)
        return result

    cdef int _free_through_owner(self, char *address, ga_corruption_t *damage) noexcept nogil:
        """_free_address, through the owning pool's hook when there is one."""
        if self.free_hook != NULL:
            return self.free_hook(self.free_hook_ctx, address, damage)
        return self._free_address(address, damage)

    # -- Python API -------------------------------------------------------

    cdef int _check_open(self) except -1:
        if self.is_closed:
            raise ValueError("operation on a closed guardalloc.Arena")
        return 0

    cdef int _check_backing(self) except -1:
        """Refuse to touch slots whose file was truncated under the arena:
        its pages past the end of the file raise SIGBUS. One fstat(); none
        for anonymous arenas and sealed memfds, which cannot shrink."""
        cdef struct_stat st
        if self.fd_ < 0 or self.backing_fixed:
            return 0
        if fstat(self.fd_, &st) != 0:
            raise OSError(errno, f"fstat of the arena's backing file failed: {strerror(errno).decode()}")
        if <size_t>st.st_size < self.a.size:
            raise BackingFileError(
                f"the backing file of {self!r} ({self.file!r}) was truncated to {st.st_size} bytes, "
                f"below the arena's {self.a.size}: its slots past the end of the file would raise "
                "SIGBUS; the arena refuses to allocate or free until the file is grown back "
                "(use file='memfd', which is sealed against shrinking)", self.a.size, st.st_size)
        return 0

    cdef inline bint _wants_traces(self):
        return _tracebacks_default if self.tracebacks is None else self.tracebacks is True

    cdef int _record_trace(self, uint32_t slot, bint at_free) except -1:
        cdef char **table
        cdef char ***where = &self.a.free_trace if at_free else &self.a.alloc_trace
        if where[0] == NULL:
            where[0] = <char **>calloc(self.a.nslots, sizeof(char *))
            if where[0] == NULL:
                raise MemoryError("no memory for the traceback table")
        table = where[0]
        _set_trace(table, slot, _render_stack())
        if not at_free and self.a.free_trace != NULL:
            _set_trace(self.a.free_trace, slot, None)   # stale now
        return 0

    cdef int _start_alloc(self, Py_ssize_t nbytes, bint zero, bint raw, slot) except -1:
        cdef long want = -1
        cdef int result
        self._check_open()
        if self.pooled:
            raise ValueError("this arena belongs to a guardalloc.Pool: allocate with the pool")
        self._check_backing()
        if nbytes <= 0 or <size_t>nbytes > self.a.slot_size:
            raise ValueError(f"nbytes must be between 1 and the slot size ({self.a.slot_size}), not {nbytes}")
        if slot is not None:
            if not 0 <= slot < self.a.nslots:
                raise ValueError(f"slot must be between 0 and {self.a.nslots - 1}, not {slot}")
            want = slot
        result = self._alloc_slot(<size_t>nbytes, zero, raw, want)
        if result >= 0:
            if self._wants_traces():
                self._record_trace(<uint32_t>result, False)
            return result
        if result == GA_ERR_FULL:
            raise MemoryError(f"arena is full: all {self.a.nslots} slots are live, quarantined or retired")
        if result == GA_ERR_NOT_FREE:
            raise ValueError(f"slot {slot} is not free ({_STATE_NAMES[self.a.slots[want].state]})")
        raise GuardInstallError(errno, f"removing the use-after-free guard failed: {strerror(errno).decode()}")

    def alloc(self, Py_ssize_t nbytes, *, bint zero=True, slot=None):
        """Return a :class:`Buffer` of nbytes placed in a free slot.

        ``zero=False`` skips clearing a reused slot (fresh slots are zero).
        ``slot=i`` claims that slot (for arenas shared between processes).

        Raises:
            ValueError: nbytes not in 1..slot_size, slot not free, or the
                arena is closed.
            MemoryError: the arena is full.
            BackingFileError: the backing file was truncated below the
                arena (its pages would raise SIGBUS).
        """
        cdef int index = self._start_alloc(nbytes, zero, False, slot)
        cdef Buffer buf = Buffer.__new__(Buffer)
        buf.owner = self
        buf.slot_ = <uint32_t>index
        buf.nbytes_ = nbytes
        buf.shape[0] = nbytes
        buf.ptr = GA_SLOT_START(&self.a, index) + self.a.slots[index].offset
        return buf

    def alloc_raw(self, Py_ssize_t nbytes, *, bint zero=True) -> int:
        """Like :meth:`alloc`, but return the buffer's address (an int, for
        ctypes or C code). Free it with ``free(address)``."""
        cdef int index = self._start_alloc(nbytes, zero, True, None)
        return <uintptr_t>(GA_SLOT_START(&self.a, index) + self.a.slots[index].offset)

    def free(self, buffer):
        """Return a buffer's slot: a :class:`Buffer` or an address from
        :meth:`alloc_raw`.

        Raises:
            BufferError: the buffer is still exported (a memoryview or numpy
                array holds it).
            DoubleFreeError: it was freed already.
            InvalidFreeError: the address is not the start of a live raw
                buffer of this arena.
            ForeignBufferError: the buffer or address belongs elsewhere.
            CorruptionError: the slack after the buffer was overwritten (the
                buffer is freed all the same).
            ValueError: the arena is closed.
            BackingFileError: the backing file was truncated below the
                arena (nothing is freed).
        """
        cdef ga_corruption_t damage
        cdef int code
        cdef size_t address
        cdef Buffer buf
        if isinstance(buffer, Buffer):
            buf = <Buffer>buffer
            if buf.owner is not self:
                raise ForeignBufferError(f"{buf!r} belongs to another arena", buf.address_or_none(), None)
            self._free_buffer(buf)
            return
        if not isinstance(buffer, int):
            raise TypeError(f"free() takes a guardalloc.Buffer or an address, not {type(buffer).__name__}")
        self._check_open()
        self._check_backing()
        if not 0 <= buffer < 2 ** 64:
            raise ForeignBufferError(f"address {buffer} is not in this arena", buffer, None)
        address = buffer
        slot = self._slot_of(address)
        if slot is not None and self.a.slots[slot].state == GA_SLOT_LIVE and not self.a.slots[slot].flags & GA_FLAG_RAW:
            raise InvalidFreeError(
                f"address {address:#x} is slot {slot}'s buffer object: free the Buffer, not its address",
                address, slot)
        if self._wants_traces() and slot is not None and self.a.slots[slot].state == GA_SLOT_LIVE:
            self._record_trace(slot, True)
        code = self._free_through_owner(<char *>address, &damage)
        if code != GA_OK:
            self._raise_free_error(code, address, &damage, f"address {address:#x}")

    cdef _free_buffer(self, Buffer buf):
        cdef ga_corruption_t damage
        cdef int code
        if buf.is_freed:
            raise DoubleFreeError(f"double free of {buf!r}", <uintptr_t>buf.ptr, buf.slot_)
        self._check_open()
        self._check_backing()
        if buf.exports:
            raise BufferError(
                f"cannot free {buf!r} while {buf.exports} memoryview(s) or arrays export it; "
                "release them first")
        if self._wants_traces():
            self._record_trace(buf.slot_, True)
        buf.is_freed = True
        code = self._free_through_owner(buf.ptr, &damage)
        if code != GA_OK:
            self._raise_free_error(code, <uintptr_t>buf.ptr, &damage, repr(buf))

    cdef object _raise_free_error(self, int code, size_t address, ga_corruption_t *damage, object what):
        cdef int err = errno   # before any Python call can change it
        slot = self._slot_of(address)
        if code == GA_ERR_FOREIGN:
            raise ForeignBufferError(f"{what} is not in this arena ({self!r})", address, None)
        if code == GA_ERR_DOUBLE:
            raise DoubleFreeError(f"double free of {what} (slot {slot})", address, slot)
        if code == GA_ERR_INVALID:
            raise InvalidFreeError(
                f"invalid free of {what}: not the start of a live buffer "
                f"(slot {slot}, {_STATE_NAMES[self.a.slots[slot].state] if slot is not None else 'outside every slot'})",
                address, slot)
        if code == GA_ERR_CORRUPT:
            nbytes = self.a.slots[slot].nbytes
            raise CorruptionError(
                f"heap corruption in {what}: {damage.damaged} slack byte(s) past the end of the "
                f"{nbytes}-byte buffer were overwritten, the first at offset {damage.first_offset} "
                f"({damage.first_offset - nbytes} bytes past the end); the buffer was freed",
                address, slot, nbytes, damage.first_offset, damage.damaged)
        raise GuardInstallError(err, f"{what} was freed, but installing its use-after-free guard failed: "
                                     f"{strerror(err).decode()}{_einval_hint(err, self.fd_ >= 0)}")

    cdef object _slot_of(self, size_t address):
        cdef size_t offset
        if address < <size_t>self.a.base + self.a.guard_size or address >= <size_t>self.a.base + self.a.size:
            return None
        offset = address - <size_t>self.a.base - self.a.guard_size
        if offset % self.a.stride >= self.a.slot_size:
            return None
        return offset // self.a.stride

    def slot_of(self, size_t address):
        """The slot whose data holds address, or None (guard page, outside)."""
        self._check_open()
        return self._slot_of(address)

    def slot_address(self, Py_ssize_t slot) -> int:
        """Address of the first data byte of a slot."""
        self._check_open()
        if not 0 <= slot < self.a.nslots:
            raise ValueError(f"slot must be between 0 and {self.a.nslots - 1}, not {slot}")
        return <uintptr_t>GA_SLOT_START(&self.a, slot)

    def owns(self, size_t address) -> bool:
        """Whether address lies inside this arena's mapping (guards included)."""
        return (not self.is_closed and <size_t>self.a.base <= address < <size_t>self.a.base + self.a.size)

    def close(self):
        """Unmap the arena. Idempotent.

        Buffers still alive become unusable (their methods raise
        ValueError).

        Raises:
            BufferError: a buffer is still exported (memoryview, numpy array).
        """
        if self.is_closed:
            return
        if self.pooled:
            raise ValueError("this arena belongs to a guardalloc.Pool: close the pool instead")
        if self.exports:
            raise BufferError(
                f"cannot close the arena while {self.exports} memoryview(s) or arrays export "
                "its buffers; release them first")
        self._release()

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def stats(self) -> dict:
        """Counts: slots, live, free, quarantined, retired, slot_size,
        guard_pages, backend, batched, guard_syscalls (spent installing the
        arena's guards), uaf_syscalls (guarding freed slots and unguarding
        reused ones), allocations, faults_continued, size, uaf, quarantine."""
        cdef uint32_t i
        cdef uint64_t counts[4]
        self._check_open()
        counts[0] = counts[1] = counts[2] = counts[3] = 0
        for i in range(self.a.nslots):
            counts[self.a.slots[i].state & 3] += 1
        return {
            "slots": self.a.nslots,
            "live": counts[GA_SLOT_LIVE],
            "free": counts[GA_SLOT_FREE],
            "quarantined": counts[GA_SLOT_QUARANTINED],
            "retired": counts[GA_SLOT_RETIRED],
            "slot_size": self.a.slot_size,
            "guard_pages": self.guard_pages,
            "backend": self.backend,
            "batched": self.a.backend == GA_BACKEND_MADVISE and self.batched and not _batching_refused,
            "guard_syscalls": self.guard_syscalls,
            "uaf_syscalls": self.uaf_syscalls,
            "allocations": self.allocations,
            "faults_continued": self.a.faults_continued,
            "size": self.a.size,
            "uaf": bool(self.a.uaf),
            "quarantine": self.quarantine_limit if self.a.uaf else 0,
        }

    @property
    def address(self) -> int:
        """Start of the mapping (the first guard page)."""
        self._check_open()
        return <uintptr_t>self.a.base

    @property
    def size(self) -> int:
        """Bytes from address to the end: guards and slots (the bookkeeping
        pages mapped in front of address are not counted)."""
        return self.a.size

    @property
    def slot_size(self) -> int:
        """Bytes per slot (whole pages): the largest buffer."""
        return self.a.slot_size

    @property
    def slots(self) -> int:
        return self.a.nslots

    @property
    def guard_size(self) -> int:
        """Bytes of guard between two slots."""
        return self.a.guard_size

    @property
    def stride(self) -> int:
        """Distance between the starts of two neighbouring slots."""
        return self.a.stride

    @property
    def alignment(self) -> int:
        return self.a.alignment

    @property
    def uaf(self) -> bool:
        return bool(self.a.uaf)

    @property
    def closed(self) -> bool:
        return self.is_closed

    @property
    def fd(self) -> int:
        """File descriptor of a file-backed arena (-1 when anonymous)."""
        return self.fd_

    @property
    def shared(self) -> bool:
        return bool(self.a.shared)

    def __repr__(self):
        if self.is_closed:
            return f"<guardalloc.Arena closed, {self.a.nslots} x {self.a.slot_size} B, {self.backend}>"
        return (f"<guardalloc.Arena at {<uintptr_t>self.a.base:#x}, {self.a.nslots} x "
                f"{self.a.slot_size} B slots, {self.guard_pages} guard page(s), {self.backend}>")


_STATE_NAMES = {GA_SLOT_FREE: "free", GA_SLOT_LIVE: "live",
                GA_SLOT_QUARANTINED: "quarantined", GA_SLOT_RETIRED: "retired"}


def _einval_hint(int err, bint file_backed) -> str:
    """Why the kernel said EINVAL to guard advice on an arena's own mapping."""
    if err != EINVAL:
        return ""
    return (f": {_einval_reason(file_backed)}; use backend='mprotect', or munlockall() first")


def _einval_reason(bint file_backed) -> str:
    locked = _locked_kb()
    why = (f"this process has {locked} kB of mlocked memory (mlockall(MCL_FUTURE)?)"
           if locked else "the memory is mlocked?")
    also = " (or, for a file, on hugetlbfs and DAX files)" if file_backed else ""
    return f"{why}, and the kernel refuses guard pages on locked memory{also}"


def _locked_kb() -> int:
    """VmLck of this process (kB), 0 when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmLck:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _choose_backend(str backend, bint file_backed) -> str:
    if backend in ("mprotect", "none"):
        return backend
    found = support()
    usable = found.file_shared if file_backed else found.anonymous
    what = "file-backed mappings" if file_backed else "anonymous memory"
    why = found.reason or (f"kernel {found.kernel} cannot guard {what} (Linux 6.15+ needed)"
                           if file_backed else f"kernel {found.kernel} has no guard pages")
    if usable:
        return "madvise"
    if backend == "madvise":
        raise GuardUnsupportedError(
            f"backend='madvise' is unavailable: {why}; use backend='auto' to fall back to mprotect")
    warnings.warn(
        f"guardalloc: MADV_GUARD_INSTALL unavailable for {what} ({why}); falling back to "
        "mprotect guards, which cost two VMAs per slot", RuntimeWarning, stacklevel=3)
    return "mprotect"


def _open_backing(file, size_t size, bint shared) -> tuple:
    """(fd, fixed) for a file-backed arena: an fd (ours to close) of at
    least size bytes, and whether the file can no longer shrink (a memfd
    sealed with F_SEAL_SHRINK).

    Raises:
        TypeError: file is not a path, an fd or "memfd".
        PermissionError: shared=True on a file open read-only.
        ValueError: a read-only file smaller than the arena.
        OSError: opening or sizing the file failed.
    """
    writable = True
    if isinstance(file, str) and file == "memfd":
        # Sealed against shrinking below, so that no process can truncate
        # it under a live arena (whose pages would then raise SIGBUS).
        fd = os.memfd_create("guardalloc", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    elif isinstance(file, int) and not isinstance(file, bool):
        if file < 0:
            raise ValueError(f"file descriptor must be 0 or more, not {file}")
        fd = os.dup(file)
        writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    elif isinstance(file, (str, bytes, os.PathLike)):
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if shared or exc.errno not in (errno_module.EACCES, errno_module.EPERM, errno_module.EROFS):
                raise
            # A private (copy-on-write) arena needs only to read the file.
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
    else:
        raise TypeError(f"file must be a path, a file descriptor or 'memfd', not {type(file).__name__}")
    try:
        if not writable and shared:
            raise PermissionError(
                errno_module.EACCES,
                f"file descriptor {file} is open read-only, but a shared arena writes to the file: "
                "open it O_RDWR, or pass shared=False for a private copy-on-write arena")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(
                f"{file!r} is not a regular file (mode {stat.filemode(st.st_mode)}): an arena "
                "needs a regular file or a memfd")
        if st.st_size < size:
            if not writable:
                raise ValueError(
                    f"the read-only file {file!r} holds {st.st_size} bytes, fewer than the arena's "
                    f"{size}, and cannot be grown")
            os.ftruncate(fd, size)
        if isinstance(file, str) and file == "memfd":
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            fixed = True
        else:
            try:
                fixed = bool(fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK)
            except OSError:
                fixed = False   # not a memfd: files have no seals
    except BaseException:
        os.close(fd)
        raise
    return fd, fixed


# ---------------------------------------------------------------------------
# Buffer

@cython.auto_pickle(False)
@cython.final
@cython.freelist(64)
# The cycle collector must not clear ``owner`` before __dealloc__ runs, or a
# Buffer collected as part of a reference cycle would never free its slot.
@cython.no_gc_clear
cdef class Buffer:
    """A buffer in an arena slot; made by :meth:`Arena.alloc`.

    Supports the buffer protocol (writable, format "B", 1-D, contiguous):
    ``memoryview(buf)``, ``bytes(buf)``, ``numpy.frombuffer(buf, ...)``,
    ``f.readinto(buf)``, ``struct.pack_into(fmt, buf, ...)``. Freed by
    :meth:`free`, by leaving a ``with`` block, or when garbage collected.
    """

    def __cinit__(self):
        self.shape[0] = 0

    def __init__(self):
        raise TypeError("guardalloc.Buffer cannot be created directly: use Arena.alloc()")

    cdef int _check(self) except -1:
        if self.is_freed:
            raise ValueError("operation on a freed guardalloc.Buffer")
        if self.owner.is_closed:
            raise ValueError("operation on a guardalloc.Buffer whose arena is closed")
        return 0

    cdef object address_or_none(self):
        return None if self.is_freed else <uintptr_t>self.ptr

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check()
        # Filled by hand: PyBuffer_FillInfo would take a second reference
        # to self on top of the one Cython already holds in view.obj.
        view.buf = self.ptr
        view.obj = self
        view.len = self.nbytes_
        view.readonly = 0
        view.itemsize = 1
        view.format = _FORMAT_B if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = &view.itemsize if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        self.exports += 1
        self.owner.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1
        self.owner.exports -= 1

    def __len__(self):
        return self.nbytes_

    def free(self):
        """Return the slot to the arena (see :meth:`Arena.free`)."""
        self.owner._free_buffer(self)

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc_info):
        if not self.is_freed:
            self.owner._free_buffer(self)

    def __dealloc__(self):
        cdef ga_corruption_t damage
        cdef int code
        if self.is_freed or self.owner is None or self.owner.is_closed:
            return
        try:
            self.owner._check_backing()
        except Exception as exc:
            # Checking the slack would raise SIGBUS: the slot stays taken.
            _write_unraisable(exc, self.owner)
            return
        self.is_freed = True
        if self.owner._wants_traces():
            try:
                self.owner._record_trace(self.slot_, True)
            except MemoryError:
                pass
        code = self.owner._free_through_owner(self.ptr, &damage)
        if code != GA_OK:
            try:
                self.owner._raise_free_error(code, <uintptr_t>self.ptr, &damage,
                                             f"a garbage-collected {self.nbytes_}-byte buffer")
            except Exception as exc:
                _write_unraisable(exc, self.owner)

    @property
    def address(self) -> int:
        """Address of the first byte (for ctypes and C code)."""
        self._check()
        return <uintptr_t>self.ptr

    @property
    def nbytes(self) -> int:
        return self.nbytes_

    @property
    def slot(self) -> int:
        return self.slot_

    @property
    def arena(self):
        return self.owner

    @property
    def freed(self) -> bool:
        return self.is_freed

    def __repr__(self):
        state = "freed " if self.is_freed else ""
        return (f"<guardalloc.Buffer {state}{self.nbytes_} bytes at {<uintptr_t>self.ptr:#x}, "
                f"slot {self.slot_} of {self.owner.a.nslots}>")


cdef void _write_unraisable(exc, obj) noexcept:
    """Hand exc to sys.unraisablehook ("Exception ignored in: obj"): a
    garbage-collected buffer has nobody to raise to. obj must not be the
    dying buffer itself: a hook that keeps it would keep a freed object."""
    PyErr_SetObject(type(exc), exc)
    PyErr_WriteUnraisable(obj)

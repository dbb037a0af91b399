# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Arena and Buffer: Python objects over one arena of the C core.

The slot bookkeeping (free stack, quarantine ring, slot states) is typed C
data in the ``ga_arena_t`` descriptor, worked by ``_c/core.c``; ``alloc``
and ``free`` touch no Python containers. Guards are installed by
``_c/guards.c``, up to 1024 per process_madvise() call, so they add no VMA.
"""

import errno as errno_module
import fcntl
import os
import stat
import sys
import warnings

cimport cython
from cpython.buffer cimport (
    PyBUF_FORMAT, PyBUF_ND, PyBUF_SIMPLE, PyBUF_STRIDES, PyBuffer_Release, PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.number cimport PyIndex_Check, PyNumber_AsSsize_t, PyNumber_Index
from cpython.ref cimport PyObject
from cpython.slice cimport PySlice_GetIndicesEx
from cpython.exc cimport PyErr_SetObject, PyErr_WriteUnraisable
from libc.errno cimport EINVAL, ENOMEM, ENOSYS, EPERM, errno
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memchr, memcmp, memmove, strerror
from posix.stat cimport fstat, struct_stat
from posix.unistd cimport close

from guardalloc._core cimport *
from guardalloc.faults cimport register_arena, unregister_arena
from guardalloc.tracebacks cimport record_trace, release_traces, wants_traces

from guardalloc.errors import (
    BackingFileError, CorruptionError, DoubleFreeError, ForeignBufferError,
    GuardInstallError, GuardUnsupportedError, InvalidFreeError,
)
from guardalloc.options import GuardOptions, check_bool, check_int
from guardalloc.stats import ArenaStats
from guardalloc.introspect.probe import max_map_count, support

cdef extern from "<string.h>" nogil:
    # GNU (pyconfig.h defines _GNU_SOURCE before any header).
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

cdef extern from "Python.h":
    # exc=NULL: clamp out-of-range integers instead of raising.
    Py_ssize_t _index_clamped "PyNumber_AsSsize_t"(object value, PyObject *exc) except? -1

cdef size_t PAGE = ga_page_size()
cdef char *_FORMAT_B = "B"
# Slot offsets and sizes are kept in 32 bits.
cdef size_t MAX_SLOT_SIZE = (<size_t>1 << 32) - PAGE
# Sanity bounds that keep absurd arguments from exhausting the machine: the
# whole arena within 64 TiB of address space (x86-64 gives a process 128),
# and its guards within 1 TiB, whose page-table markers cost up to 2 GiB.
MAX_ARENA_BYTES = 1 << 46
MAX_GUARD_BYTES = 1 << 40

_BACKENDS = {"none": GA_BACKEND_NONE, "madvise": GA_BACKEND_MADVISE, "mprotect": GA_BACKEND_MPROTECT}
_ALIGNS = {"left": GA_ALIGN_LEFT, "right": GA_ALIGN_RIGHT, "random": GA_ALIGN_RANDOM}
_STATE_NAMES = {GA_SLOT_FREE: "free", GA_SLOT_LIVE: "live",
                GA_SLOT_QUARANTINED: "quarantined", GA_SLOT_RETIRED: "retired"}


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


cdef size_t size_arg_error(str name, value, size_t largest, str accepted) except 0:
    return check_int(name, value, 1, largest, None if accepted is None else f"{accepted} ({largest})")


cdef inline bint _flag(str name, value) except -1:
    """A True/False argument (TypeError for 1, "yes", None...)."""
    if value is True:
        return True
    if value is False:
        return False
    return check_bool(name, value)


def batching_refused() -> bool:
    """True once process_madvise() refused guard advice in this process."""
    return bool(ga_batching_refused())


def _address(value, str name="address") -> object:
    """An address argument as an int in [0, 2**64), or None when it cannot be
    an address at all (negative or too large: owned by nobody).

    Raises:
        TypeError: not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = value.__index__()
        except (AttributeError, TypeError):
            raise TypeError(f"{name} must be an integer address, not {type(value).__name__}") from None
    if not 0 <= value < 2 ** 64:
        return None
    return value


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
            slots and after the last (1 or more; ``backend="none"`` for an
            unguarded baseline).
        backend: "madvise" (MADV_GUARD_INSTALL, no VMA per guard),
            "mprotect" (PROT_NONE, two VMAs per guard), "none" (no guards,
            a baseline) or "auto" (madvise when :func:`support` finds it,
            otherwise mprotect with a ``RuntimeWarning``).
        align: "right" puts a buffer's end against the next guard page
            (catches overflows); "left" starts it right after the previous
            guard (catches underflows); "random" picks one of the two for
            each buffer (GWP-ASan's placement: one run catches both).
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
            None follows :func:`enable_tracebacks`.
        on_fault: "abort" (report and die with SIGSEGV) or "continue"
            (report once, lift the guard that was hit, retire the slot).
        file: back the arena by a file: a path (created and sized as
            needed; opened read-only for ``shared=False`` when it may not
            be written), an open file descriptor (duplicated), or "memfd"
            (sealed against shrinking). See also :class:`SharedArena`.
        shared: with ``file``, map it MAP_SHARED (True) or MAP_PRIVATE.

    Raises:
        TypeError: an argument has the wrong type (integers must be ints,
            not bool, float or str).
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

    def __init__(self, slot_size, slots, *, guard_pages=1, backend="auto", align="right",
                 alignment=16, batch=True, uaf=False, quarantine=None, tracebacks=None,
                 on_fault="abort", file=None, shared=True):
        if self.options is not None:
            raise RuntimeError("Arena.__init__ called twice")
        _require_gil()
        slot_size = check_int("slot_size", slot_size, 1, None, "at least 1")
        if slot_size > MAX_SLOT_SIZE:
            raise ValueError(f"slot_size must be at most {MAX_SLOT_SIZE} bytes, not {slot_size}")
        slots = check_int("slots", slots, 1, 0xFFFFFFFF)
        options = GuardOptions(guard_pages=guard_pages, backend=backend, align=align,
                               alignment=alignment, uaf=uaf, quarantine=quarantine,
                               tracebacks=tracebacks, on_fault=on_fault)
        if options.quarantine is not None and options.quarantine > slots:
            raise ValueError(f"quarantine must be between 0 and slots ({slots}), not {options.quarantine}")
        self._configure(slot_size, slots, options, check_bool("batch", batch))
        self._build(file, check_bool("shared", shared), options.backend)

    cdef _configure(self, size_t slot_size, uint32_t slots, object options, bint batch):
        """Check the arena's size and fill in the descriptor (nothing mapped)."""
        guard_bytes = (slots + 1) * options.guard_pages * PAGE
        total = guard_bytes + slots * ga_round_up(slot_size, PAGE)
        if total > MAX_ARENA_BYTES:
            raise ValueError(f"an arena of {slots} slots of {slot_size} bytes needs {total:,} bytes "
                             f"of address space, more than the {MAX_ARENA_BYTES:,} guardalloc allows")
        if guard_bytes > MAX_GUARD_BYTES:
            raise ValueError(f"guard_pages={options.guard_pages} is too many: {slots + 1} guards of "
                             f"{options.guard_pages} page(s) cover {guard_bytes:,} "
                             f"bytes, more than the {MAX_GUARD_BYTES:,} guardalloc allows "
                             "(their page-table markers would cost up to 2 GiB)")
        self.options = options
        self.guard_pages = options.guard_pages
        self.align = options.align
        self.on_fault = options.on_fault
        self.tracebacks = options.tracebacks
        self.a.slot_size = ga_round_up(slot_size, PAGE)
        self.a.guard_size = <size_t>options.guard_pages * PAGE
        self.a.stride = self.a.slot_size + self.a.guard_size
        self.a.alignment = options.alignment
        self.a.nslots = slots
        self.a.align = _ALIGNS[options.align]
        self.a.on_fault_continue = options.on_fault == "continue"
        self.a.uaf = options.uaf
        self.a.batched = batch
        self.a.size = ga_slots_size(self.a.slot_size, slots, self.a.guard_size)
        self.a.quarantine_limit = slots if options.quarantine is None else options.quarantine

    cdef int _build(self, file, bint shared, str requested) except -1:
        """Map the arena, lay out its bookkeeping, install its guards and
        register it with the fault handler; nothing is left on failure."""
        self.backend = _choose_backend(requested, file is not None)
        self.a.backend = _BACKENDS[self.backend]
        while True:
            self._map(file, shared)
            try:
                self._install_guards()
                register_arena(&self.a)
                break
            except GuardInstallError as exc:
                self.release()
                if not (requested == "auto" and exc.errno == EINVAL and self.a.backend == GA_BACKEND_MADVISE):
                    raise
                # The kernel has guard pages but refuses them on this very
                # mapping (mlocked memory): "auto" means guards all the same.
                warnings.warn(
                    f"guardalloc: the kernel refused MADV_GUARD_INSTALL on the new arena (EINVAL: "
                    f"{_einval_reason(file is not None)}); falling back to mprotect guards, which "
                    "cost two VMAs per slot", RuntimeWarning, stacklevel=3)
                self.backend = "mprotect"
                self.a.backend = GA_BACKEND_MPROTECT
            except BaseException:
                self.release()
                raise
        self.registered = True
        self.is_closed = False
        return 0

    cdef int _map(self, file, bint shared) except -1:
        cdef void *base
        cdef void *tables
        cdef int err
        self.mapped_size = self.a.size
        if file is None:
            # The bookkeeping lives in the same mapping, after the last
            # guard: a separate malloc() of it would be mmap()ed by glibc for
            # large arenas, a second VMA for every arena.
            self.mapped_size = ga_anonymous_mapping_size(self.a.slot_size, self.a.nslots,
                                                         self.a.guard_size, self.a.uaf, PAGE) + self.stacks_size
            # Inside a pool's reservation when placed (replaces PROT_NONE).
            base = ga_map_anonymous(self.placement, self.mapped_size)
            tables = NULL if base == NULL else <char *>base + self.a.size
        else:
            # A file's bookkeeping must stay private to each process that
            # maps it, so it lives on the heap instead.
            self.fd_, self.backing_fixed = _open_backing(file, self.a.size, shared)
            self.file = file
            self.a.shared = shared
            self.a.file_backed = True
            base = ga_map_file(self.fd_, self.mapped_size, shared)
            if base != NULL:
                self.heap_tables = calloc(1, ga_bookkeeping_size(self.a.nslots, self.a.uaf))
                tables = self.heap_tables
                if tables == NULL:
                    ga_unmap(base, self.mapped_size)
                    close(self.fd_)
                    self.fd_ = -1
                    raise MemoryError(f"no memory for the bookkeeping of {self.a.nslots} slots")
        if base == NULL:
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
        ga_arena_attach(&self.a, tables)
        if self.stacks_size:   # the last bytes of the mapping
            self.a.stacks = <ga_stack_t *>(<char *>base + self.mapped_size - self.stacks_size)
        return 0

    cdef int _install_guards(self) except -1:
        cdef int rc, err
        with nogil:
            rc = ga_arena_guard_all(&self.a)
        err = errno
        if rc == 0:
            return 0
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

    cdef void release(self) noexcept:
        """Unregister, unmap and free everything; safe on a half-built arena."""
        if self.registered:
            unregister_arena(&self.a)
            self.registered = False
        if self.a.slots != NULL:
            release_traces(&self.a)   # before the tables go: they may be in the mapping
        self.a.slots = NULL
        self.a.stacks = NULL
        self.a.alloc_trace = self.a.free_trace = NULL
        free(self.heap_tables)
        self.heap_tables = NULL
        if self.a.base != NULL:
            if self.placement != NULL:
                # Hand the range back to the pool's reservation rather than
                # leave a hole that another mmap() could land in.
                ga_reserve(self.a.base, self.mapped_size)
            else:
                ga_unmap(self.a.base, self.mapped_size)
            self.a.base = NULL
        if self.fd_ >= 0:
            close(self.fd_)
            self.fd_ = -1
        self.is_closed = True

    def __dealloc__(self):
        self.release()

    # -- allocation -------------------------------------------------------

    cdef int _check_open(self) except -1:
        if self.is_closed:
            raise ValueError("operation on a closed guardalloc.Arena")
        return 0

    cdef inline int check_backing(self) except -1:
        """Refuse to touch slots whose file was truncated under the arena:
        its pages past the end of the file raise SIGBUS. One fstat(); none
        for anonymous arenas and sealed memfds, which cannot shrink."""
        if self.fd_ < 0 or self.backing_fixed:
            return 0
        return self._stat_backing()

    cdef int _stat_backing(self) except -1:
        cdef struct_stat st
        if fstat(self.fd_, &st) != 0:
            raise OSError(errno, f"fstat of the arena's backing file failed: {strerror(errno).decode()}")
        if <size_t>st.st_size < self.a.size:
            raise BackingFileError(
                f"the backing file of {self!r} ({self.file!r}) was truncated to {st.st_size} bytes, "
                f"below the arena's {self.a.size}: its slots past the end of the file would raise "
                "SIGBUS; the arena refuses to allocate or free until the file is grown back "
                "(use file='memfd', which is sealed against shrinking)", self.a.size, st.st_size)
        return 0

    cdef long _start_alloc(self, nbytes, bint zero, bint raw, slot) except -1:
        cdef long want = -1
        cdef long result
        cdef size_t n
        self._check_open()
        if self.free_hook != NULL:
            raise ValueError("this arena belongs to a guardalloc.Pool: allocate with the pool")
        n = size_arg("nbytes", nbytes, self.a.slot_size, "between 1 and the slot size")
        if slot is not None:
            want = check_int("slot", slot, 0, self.a.nslots - 1)
        self.check_backing()
        ga_altstack_ensure()   # this thread may fault in the block: report on a stack of known size
        result = ga_alloc(&self.a, n, zero, raw, want)
        if result >= 0:
            if wants_traces(self.tracebacks):
                record_trace(&self.a, <uint32_t>result, False)
            return result
        if result == GA_ERR_FULL:
            raise MemoryError(f"arena is full: all {self.a.nslots} slots are live, quarantined or retired")
        if result == GA_ERR_NOT_FREE:
            raise ValueError(f"slot {slot} is not free ({_STATE_NAMES[self.a.slots[want].state]})")
        raise GuardInstallError(errno, "opening the next slots (lazy guards) or removing a use-after-free "
                                       f"guard failed: {strerror(errno).decode()}")

    def alloc(self, nbytes, *, zero=True, slot=None):
        """Return a :class:`Buffer` of nbytes placed in a free slot.

        ``zero=False`` skips clearing a reused slot (fresh slots are zero).
        ``slot=i`` claims that slot (for arenas shared between processes).

        Raises:
            TypeError: nbytes or slot is not an integer, zero not a bool.
            ValueError: nbytes not in 1..slot_size, slot not free, or the
                arena is closed.
            MemoryError: the arena is full.
            BackingFileError: the backing file was truncated below the
                arena (its pages would raise SIGBUS).
        """
        return _new_buffer(self, self._start_alloc(nbytes, _flag("zero", zero), False, slot), None)

    def alloc_raw(self, nbytes, *, zero=True) -> int:
        """Like :meth:`alloc`, but return the buffer's address (an int, for
        ctypes or C code). Free it with ``free(address)``."""
        cdef long slot = self._start_alloc(nbytes, _flag("zero", zero), True, None)
        return <uintptr_t>ga_block_start(&self.a, slot)

    def free(self, buffer):
        """Return a buffer's slot: a :class:`Buffer` or an address from
        :meth:`alloc_raw`.

        Raises:
            TypeError: neither a Buffer nor an integer address.
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
        cdef Buffer buf
        if isinstance(buffer, Buffer):
            buf = <Buffer>buffer
            if buf.owner is not self:
                raise ForeignBufferError(f"{buf!r} belongs to another arena", buf.address_or_none(), None)
            self._free_buffer(buf)
            return
        if isinstance(buffer, bool) or not isinstance(buffer, int):
            raise TypeError(f"free() takes a guardalloc.Buffer or an address, not {type(buffer).__name__}")
        self._check_open()
        address = _address(buffer)
        if address is None:
            raise ForeignBufferError(f"address {buffer} is not in this arena", buffer, None)
        self.check_backing()
        self.free_block(<char *><uintptr_t>address, True, None)

    cdef int free_block(self, char *address, bint raw_only, object what) except -1:
        """The one free path: record the free traceback, free through the
        pool's hook or the core, raise what the core found. ``what`` names
        the block in an error message: a str, the Buffer, or None for "address
        0x..." (made only when there is an error to raise). The caller has
        checked the backing file (check_backing)."""
        cdef ga_damage_t damage
        cdef int code
        cdef long slot
        if wants_traces(self.tracebacks):
            slot = ga_live_slot_at(&self.a, address)
            if slot >= 0 and (not raw_only or self.a.slots[slot].flags & GA_FLAG_RAW):
                record_trace(&self.a, <uint32_t>slot, True)
        if self.free_hook != NULL:
            code = self.free_hook(self.free_hook_ctx, address, raw_only, &damage)
        else:
            code = ga_free(&self.a, address, raw_only, &damage)
        if code != GA_OK:
            raise_free_error(self, code, <uintptr_t>address, &damage, what)
        return 0

    cdef int _free_buffer(self, Buffer buf) except -1:
        if buf.is_freed:
            raise DoubleFreeError(f"double free of {buf!r}", <uintptr_t>buf.ptr, buf.slot_)
        self._check_open()
        self.check_backing()
        if buf.exports:
            raise BufferError(
                f"cannot free {buf!r} while {buf.exports} memoryview(s) or arrays export it; "
                "release them first")
        buf.is_freed = True
        self.free_block(buf.ptr, False, buf)
        return 0

    # -- introspection ----------------------------------------------------

    def slot_of(self, address):
        """The slot whose data holds address, or None (guard page, outside).

        Raises:
            TypeError: address is not an integer.
            ValueError: the arena is closed.
        """
        self._check_open()
        address = _address(address)
        if address is None:
            return None
        slot = ga_slot_of(&self.a, <void *><uintptr_t>address)
        return None if slot < 0 else slot

    def slot_address(self, slot) -> int:
        """Address of the first data byte of a slot.

        Raises:
            TypeError, ValueError: slot is not an integer in 0..slots-1, or
                the arena is closed.
        """
        self._check_open()
        slot = check_int("slot", slot, 0, self.a.nslots - 1)
        return <uintptr_t>ga_slot_start(&self.a, slot)

    def owns(self, address) -> bool:
        """Whether address lies inside this arena's mapping (guards included);
        False once the arena is closed.

        Raises:
            TypeError: address is not an integer.
        """
        address = _address(address)
        return (address is not None and not self.is_closed
                and <size_t>self.a.base <= address < <size_t>self.a.base + self.a.size)

    def block_size(self, address) -> int:
        """Requested size of the live buffer that starts at address, else 0.

        Raises:
            TypeError: address is not an integer.
        """
        cdef long slot
        address = _address(address)
        if address is None or self.is_closed:
            return 0
        slot = ga_live_slot_at(&self.a, <void *><uintptr_t>address)
        return 0 if slot < 0 else self.a.slots[slot].nbytes

    def close(self):
        """Unmap the arena. Idempotent.

        Buffers still alive become unusable (their methods raise
        ValueError).

        Raises:
            BufferError: a buffer is still exported (memoryview, numpy array).
            ValueError: the arena belongs to a Pool.
        """
        if self.is_closed:
            return
        if self.free_hook != NULL:
            raise ValueError("this arena belongs to a guardalloc.Pool: close the pool instead")
        if self.exports:
            raise BufferError(
                f"cannot close the arena while {self.exports} memoryview(s) or arrays export "
                "its buffers; release them first")
        self.release()

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def stats(self) -> ArenaStats:
        """Counts, as a :class:`guardalloc.stats.ArenaStats` (attributes,
        and keys as in a dict): slots, live, free, quarantined, retired,
        slot_size, guard_pages, backend, batched (the guards went in through
        process_madvise), guard_syscalls (spent installing the arena's
        guards), uaf_syscalls (guarding freed slots and unguarding reused
        ones), allocations, faults_continued, size, uaf, quarantine.

        Raises:
            ValueError: the arena is closed.
        """
        cdef uint64_t counts[4]
        self._check_open()
        ga_count_states(&self.a, counts)
        return ArenaStats(
            slots=self.a.nslots,
            live=counts[GA_SLOT_LIVE],
            free=counts[GA_SLOT_FREE],
            quarantined=counts[GA_SLOT_QUARANTINED],
            retired=counts[GA_SLOT_RETIRED],
            slot_size=self.a.slot_size,
            guard_pages=self.guard_pages,
            backend=self.backend,
            batched=bool(self.a.batched),
            guard_syscalls=self.a.guard_syscalls,
            uaf_syscalls=self.a.uaf_syscalls,
            allocations=self.a.allocations,
            faults_continued=self.a.faults_continued,
            size=self.a.size,
            uaf=bool(self.a.uaf),
            quarantine=self.a.quarantine_limit if self.a.uaf else 0,
        )

    @property
    def address(self) -> int:
        """Start of the mapping (the first guard page)."""
        self._check_open()
        return <uintptr_t>self.a.base

    @property
    def size(self) -> int:
        """Bytes from address to the end: guards and slots (the bookkeeping
        pages mapped after them are not counted)."""
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
        if self.options is None:
            return "<guardalloc.Arena (not initialised)>"
        if self.is_closed:
            return f"<guardalloc.Arena closed, {self.a.nslots} x {self.a.slot_size} B, {self.backend}>"
        return (f"<guardalloc.Arena at {<uintptr_t>self.a.base:#x}, {self.a.nslots} x "
                f"{self.a.slot_size} B slots, {self.guard_pages} guard page(s), {self.backend}>")


# Where a pooled block has no traceback: the pool's C callers record none
# (native stacks instead, with Pool(native_stacks=True), which the PyMem hooks
# and the numpy handler use), except the numpy handler with tracebacks=True;
# Pool.alloc() records them.
cdef const char *POOLED_UNTRACED = (
    b"C callers of a Pool -- the numpy handler, the PyMem hooks -- record no Python "
    b"traceback unless guardalloc.numpy's tracebacks=True; native stacks with "
    b"native_stacks=True; Pool.alloc() records one with Pool(tracebacks=True) or "
    b"guardalloc.enable_tracebacks()")


cdef Arena new_pooled_arena(char *placement, size_t slot_size, unsigned int slots,
                            object options, ga_free_hook_t hook, void *ctx,
                            bint native_stacks=False):
    cdef Arena arena = Arena.__new__(Arena)
    arena.placement = placement
    arena.a.untraced_hint = POOLED_UNTRACED
    if native_stacks:
        arena.stacks_size = ga_stacks_table_size(slots, PAGE)
    arena._configure(slot_size, slots, options, True)
    arena._build(None, False, options.backend)
    arena.free_hook = hook
    arena.free_hook_ctx = ctx
    return arena


cdef Buffer make_buffer(Arena arena, long slot, object pool):
    return _new_buffer(arena, slot, pool)


cdef inline Buffer _new_buffer(Arena arena, long slot, object pool):
    cdef Buffer buf = Buffer.__new__(Buffer)
    buf.owner = arena
    buf.pool = pool
    buf.slot_ = slot
    buf.nbytes_ = arena.a.slots[slot].nbytes
    buf.shape[0] = buf.nbytes_
    buf.ptr = ga_block_start(&arena.a, slot)
    return buf


cdef int raise_free_error(Arena arena, int code, size_t address, ga_damage_t *damage,
                          object what) except -1:
    cdef int err = errno   # before any Python call can change it
    cdef ga_arena_t *a = &arena.a
    cdef long index = ga_slot_of(a, <void *><uintptr_t>address)
    slot = None if index < 0 else index
    if what is None:
        what = f"address {address:#x}"
    elif not isinstance(what, str):
        what = repr(what)
    if code == GA_ERR_FOREIGN:
        raise ForeignBufferError(f"{what} is not in this arena ({arena!r})", address, None)
    if code == GA_ERR_DOUBLE:
        raise DoubleFreeError(f"double free of {what} (slot {slot})", address, slot)
    if code == GA_ERR_OWNED:
        raise InvalidFreeError(
            f"{what} is the start of slot {slot}'s Buffer object: free the Buffer, not its address",
            address, slot)
    if code == GA_ERR_INVALID:
        raise InvalidFreeError(
            f"invalid free of {what}: not the start of a live buffer "
            f"(slot {slot}, {_STATE_NAMES[a.slots[index].state] if index >= 0 else 'outside every slot'})",
            address, slot)
    if code == GA_ERR_CORRUPT:
        nbytes = a.slots[index].nbytes
        raise CorruptionError(
            f"heap corruption in {what}: {damage.damaged} slack byte(s) past the end of the "
            f"{nbytes}-byte buffer were overwritten, the first at offset {damage.first_offset} "
            f"({damage.first_offset - nbytes} bytes past the end); the buffer was freed",
            address, slot, nbytes, damage.first_offset, damage.damaged)
    raise GuardInstallError(err, f"{what} was freed, but installing its use-after-free guard failed: "
                                 f"{strerror(err).decode()}{_einval_hint(err, arena.fd_ >= 0)}")


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
    if usable or usable is None:
        # None: the probe could not run (no descriptor or memory left), which
        # says nothing about the kernel; the arena's own calls will tell.
        return "madvise"
    what = "file-backed mappings" if file_backed else "anonymous memory"
    why = found.reason or (f"kernel {found.kernel} cannot guard {what} (Linux 6.15+ needed)"
                           if file_backed else f"kernel {found.kernel} has no guard pages")
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
    """A buffer in an arena slot; made by :meth:`Arena.alloc` or :meth:`Pool.alloc`.

    Supports the buffer protocol (writable, format "B", 1-D, contiguous):
    ``memoryview(buf)``, ``bytes(buf)``, ``numpy.frombuffer(buf, ...)``,
    ``f.readinto(buf)``, ``struct.pack_into(fmt, buf, ...)``. Freed by
    :meth:`free`, by leaving a ``with`` block, or when garbage collected.

    Behaves as a fixed-size ``bytearray`` (as ``mmap`` does): ``buf[i]``
    (an int), ``buf[i:j:k]`` (a new ``bytes``, negative indices and steps
    allowed), ``buf[i] = byte``, ``buf[i:j:k] = data`` (data of exactly the
    slice's length: a Buffer never changes size), iteration, ``in``,
    ``==``/``!=`` by content against any bytes-like object, :meth:`hex`,
    :meth:`tobytes`, :meth:`find`, :meth:`index`, :meth:`count`. Buffers are
    unhashable (their content changes), and cannot be pickled or copied: a
    copy would live in unguarded memory; copy ``bytes(buf)`` into a new
    buffer instead.

    Once the buffer is freed, or its arena or pool closed, every access
    (``len()``, indexing, ``memoryview()``, ``address``, ...) raises
    ``ValueError``; :attr:`freed` is then True and ``repr()`` says which.
    """

    def __cinit__(self):
        self.shape[0] = 0

    def __init__(self):
        raise TypeError("guardalloc.Buffer cannot be created directly: use Arena.alloc() or Pool.alloc()")

    cdef int _check(self) except -1:
        if self.owner is None:
            raise ValueError("this guardalloc.Buffer was not made by an arena (Buffer.__new__ alone): "
                             "use Arena.alloc() or Pool.alloc()")
        if self.is_freed:
            raise ValueError("operation on a freed guardalloc.Buffer")
        if self.owner.is_closed:
            raise ValueError("operation on a guardalloc.Buffer whose arena is closed (the buffer "
                             "is gone with it)")
        return 0

    cdef object address_or_none(self):
        return None if self.is_freed or self.owner is None else <uintptr_t>self.ptr

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
        self._check()
        return self.nbytes_

    # -- the sequence of bytes ------------------------------------------
    # Every method converts its arguments (which may run Python code, even
    # code that frees this buffer) before _check(), and touches the memory
    # only after it, without running Python in between.

    cdef Py_ssize_t _index(self, index) except? -1:
        """index as a position in 0..nbytes-1 (negative: from the end)."""
        cdef Py_ssize_t i
        if not PyIndex_Check(index):
            raise TypeError(f"guardalloc.Buffer indices must be integers or slices, not "
                            f"{type(index).__name__}")
        i = PyNumber_AsSsize_t(index, IndexError)
        if i < 0:
            i += self.nbytes_
        if not 0 <= i < self.nbytes_:
            raise IndexError("guardalloc.Buffer index out of range")
        return i

    def __getitem__(self, index):
        cdef Py_ssize_t start, stop, step, length, i, k
        cdef char *out
        if isinstance(index, slice):
            PySlice_GetIndicesEx(index, self.nbytes_, &start, &stop, &step, &length)
            self._check()
            if step == 1:
                return PyBytes_FromStringAndSize(self.ptr + start, length)
            result = PyBytes_FromStringAndSize(NULL, length)
            out = PyBytes_AS_STRING(result)
            i = start
            for k in range(length):
                out[k] = self.ptr[i]
                i += step
            return result
        i = self._index(index)
        self._check()
        return <unsigned char>self.ptr[i]

    def __setitem__(self, index, value):
        cdef Py_ssize_t start, stop, step, length, i, k
        cdef Py_buffer view
        cdef const char *src
        if not isinstance(index, slice):
            i = self._index(index)
            byte = _byte("byte", value)
            self._check()
            self.ptr[i] = <char><unsigned char>byte
            return
        PySlice_GetIndicesEx(index, self.nbytes_, &start, &stop, &step, &length)
        data = _bytes_like(value)
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:   # not contiguous (a strided memoryview): copy it
            data = memoryview(data).tobytes()
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._check()
            if view.len != length:
                if step == 1:
                    raise ValueError(
                        f"guardalloc.Buffer cannot change size: cannot assign {view.len} byte(s) "
                        f"to a slice of {length}")
                raise ValueError(f"attempt to assign bytes of size {view.len} to extended slice "
                                 f"of size {length}")
            src = <const char *>view.buf
            if step == 1:
                memmove(self.ptr + start, src, length)   # the data may be a view of this buffer
                return
            if src + view.len > self.ptr and src < self.ptr + self.nbytes_:
                data = PyBytes_FromStringAndSize(src, view.len)   # overlaps: copy it first
                src = PyBytes_AS_STRING(data)
            i = start
            for k in range(length):
                self.ptr[i] = src[k]
                i += step
        finally:
            PyBuffer_Release(&view)

    def __delitem__(self, index):
        raise TypeError("guardalloc.Buffer cannot change size: its items cannot be deleted")

    def __iter__(self):
        cdef Py_ssize_t i
        self._check()
        for i in range(self.nbytes_):
            self._check()   # the loop body may have freed the buffer
            yield <unsigned char>self.ptr[i]

    def __contains__(self, item):
        return self._search(item, None, None, False, "in") >= 0

    def find(self, sub, start=None, end=None) -> int:
        """Lowest index where ``sub`` (a bytes-like object or a byte value
        0..255) is found in ``buf[start:end]``, or -1, as ``bytes.find``.

        Raises:
            TypeError: sub is neither bytes-like nor an int; start or end
                not an integer or None.
            ValueError: a byte value out of 0..255; the buffer is freed.
        """
        return self._search(sub, start, end, False, "find")

    def index(self, sub, start=None, end=None) -> int:
        """Like :meth:`find`, but raise ``ValueError`` when not found."""
        found = self._search(sub, start, end, False, "index")
        if found < 0:
            raise ValueError("subsection not found")
        return found

    def count(self, sub, start=None, end=None) -> int:
        """Non-overlapping occurrences of ``sub`` in ``buf[start:end]``, as
        ``bytes.count`` (arguments and errors: see :meth:`find`)."""
        return self._search(sub, start, end, True, "count")

    cdef Py_ssize_t _search(self, sub, start, end, bint counting, str what) except -2:
        """find (counting=False) or count of sub in [start, end): memchr or
        memmem over the slot, no copy."""
        cdef Py_ssize_t s = _bound(start, 0, self.nbytes_, "start")
        cdef Py_ssize_t e = _bound(end, self.nbytes_, self.nbytes_, "end")
        cdef Py_ssize_t m, found = 0
        cdef Py_buffer view
        cdef unsigned char byte
        cdef const char *needle
        cdef const char *at
        cdef const char *stop
        cdef bint have_view = False
        if PyIndex_Check(sub):
            byte = _byte("byte", sub)
            needle = <const char *>&byte
            m = 1
        elif PyObject_CheckBuffer(sub):
            PyObject_GetBuffer(sub, &view, PyBUF_SIMPLE)
            have_view = True
            needle = <const char *>view.buf
            m = view.len
        elif what == "in":
            raise TypeError(f"a bytes-like object is required, not '{type(sub).__name__}'")
        else:
            raise TypeError(f"argument should be integer or bytes-like object, not "
                            f"'{type(sub).__name__}'")
        try:
            self._check()
            if e - s < m:
                return 0 if counting else -1
            if m == 0:
                return e - s + 1 if counting else s
            at = self.ptr + s
            stop = self.ptr + e
            while True:
                if m == 1:
                    at = <const char *>memchr(at, needle[0], stop - at)
                else:
                    at = <const char *>memmem(at, stop - at, needle, m)
                if at == NULL:
                    return found if counting else -1
                if not counting:
                    return at - self.ptr
                found += 1
                at += m
                if stop - at < m:
                    return found
        finally:
            if have_view:
                PyBuffer_Release(&view)

    def __eq__(self, other):
        return self._equals(other)

    def __ne__(self, other):
        equal = self._equals(other)
        return equal if equal is NotImplemented else not equal

    cdef object _equals(self, other):
        cdef Py_buffer view
        if other is self:
            self._check()
            return True
        if not PyObject_CheckBuffer(other):
            return NotImplemented
        try:
            PyObject_GetBuffer(other, &view, PyBUF_SIMPLE)
        except BufferError:
            return NotImplemented   # not contiguous: let the other side compare
        try:
            self._check()
            return view.len == self.nbytes_ and memcmp(view.buf, self.ptr, self.nbytes_) == 0
        finally:
            PyBuffer_Release(&view)

    def tobytes(self) -> bytes:
        """A copy of the content as ``bytes`` (ordinary, unguarded memory).

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        self._check()
        return PyBytes_FromStringAndSize(self.ptr, self.nbytes_)

    def hex(self, *args) -> str:
        """The content in hexadecimal, as ``bytes.hex([sep[, bytes_per_sep]])``.

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        # The view's export keeps the buffer from being freed meanwhile
        # (sep may run Python code); released before returning, so that
        # free() is not blocked afterwards.
        with memoryview(self) as view:
            return view.hex(*args)

    def __reduce_ex__(self, protocol):
        raise TypeError(_NO_COPY.format("pickle"))

    def __copy__(self):
        raise TypeError(_NO_COPY.format("copy"))

    def __deepcopy__(self, memo):
        raise TypeError(_NO_COPY.format("copy"))

    # -- lifetime ---------------------------------------------------------

    def free(self):
        """Return the slot to its arena (see :meth:`Arena.free`).

        Raises:
            DoubleFreeError, BufferError, CorruptionError, ValueError: as
                :meth:`Arena.free`.
        """
        if self.owner is None:
            self._check()
        self.owner._free_buffer(self)

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc_info):
        # A buffer freed already, or gone with its closed arena, has
        # nothing left to free.
        if not self.is_freed and self.owner is not None and not self.owner.is_closed:
            self.owner._free_buffer(self)

    def __dealloc__(self):
        if self.is_freed or self.owner is None or self.owner.is_closed:
            return
        self.is_freed = True
        try:
            self.owner.check_backing()
            self.owner.free_block(self.ptr, False, f"a garbage-collected {self.nbytes_}-byte buffer")
        except BackingFileError as exc:
            # Checking the slack would raise SIGBUS: the slot stays taken.
            _write_unraisable(exc, self.owner)
        except Exception as exc:
            _write_unraisable(exc, self.owner)

    @property
    def address(self) -> int:
        """Address of the first byte (for ctypes and C code).

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        self._check()
        return <uintptr_t>self.ptr

    @property
    def nbytes(self) -> int:
        """The size it was allocated with (kept after it is freed)."""
        return self.nbytes_

    @property
    def slot(self) -> int:
        """The slot it was placed in (-1 for a Buffer never allocated)."""
        return -1 if self.owner is None else self.slot_

    @property
    def arena(self):
        return self.owner

    @property
    def freed(self) -> bool:
        """True once freed, or once its arena (or pool) is closed."""
        return self.is_freed or (self.owner is not None and self.owner.is_closed)

    def __repr__(self):
        if self.owner is None:
            return "<guardalloc.Buffer (not allocated)>"
        state = "freed " if self.is_freed else "closed " if self.owner.is_closed else ""
        return (f"<guardalloc.Buffer {state}{self.nbytes_} bytes at {<uintptr_t>self.ptr:#x}, "
                f"slot {self.slot_} of {self.owner.a.nslots}>")


_NO_COPY = ("cannot {} a guardalloc.Buffer: the copy would live in ordinary memory, without "
            "guard pages; copy bytes(buf) into a new buffer from an Arena or Pool instead")


cdef object _byte(str name, value):
    """value (an integer) as a byte, as bytearray checks it.

    Raises:
        TypeError: not an integer.
        ValueError: not in range(0, 256).
    """
    number = PyNumber_Index(value)
    if not 0 <= number < 256:
        raise ValueError(f"{name} must be in range(0, 256)")
    return number


cdef object _bytes_like(value):
    """value as an object with a contiguous buffer: itself if it has one,
    else the bytes of an iterable of ints (as bytearray slice assignment)."""
    if PyObject_CheckBuffer(value):
        return value
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise TypeError(f"can assign only bytes, buffers, or iterables of ints in range(0, 256), "
                        f"not {type(value).__name__}")
    return bytes(value)


cdef Py_ssize_t _bound(value, Py_ssize_t default, Py_ssize_t n, str name) except? -1:
    """A find()/count() start or end as bytes.find clamps it: None is the
    default, negative counts from the end, out of range is clamped."""
    cdef Py_ssize_t i
    if value is None:
        return default
    if not PyIndex_Check(value):
        raise TypeError(f"{name} must be an integer or None, not {type(value).__name__}")
    i = _index_clamped(value, NULL)
    if i < 0:
        i += n
        if i < 0:
            i = 0
    return n if i > n and name == "end" else i


cdef void _write_unraisable(exc, obj) noexcept:
    """Hand exc to sys.unraisablehook ("Exception ignored in: obj"): a
    garbage-collected buffer has nobody to raise to. obj must not be the
    dying buffer itself: a hook that keeps it would keep a freed object."""
    PyErr_SetObject(type(exc), exc)
    PyErr_WriteUnraisable(obj)

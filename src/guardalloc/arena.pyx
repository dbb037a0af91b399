# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Arena and Buffer: Python objects over one arena of the C core.

The slot bookkeeping (free stack, quarantine ring, slot states) is typed C
data in the ``ga_arena_t`` descriptor, worked by ``_c/core.c``; ``alloc``
and ``free`` touch no Python containers. Guards are installed by
``_c/guards.c``, up to 1024 per process_madvise() call, so they add no VMA.
"""

import sys
import warnings

cimport cython
from libc.errno cimport EINVAL, ENOMEM, ENOSYS, EPERM, errno
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport strerror
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
from guardalloc.backing import choose_backend, einval_hint, einval_reason, open_backing
from guardalloc.introspect.probe import max_map_count, support

cdef size_t PAGE = ga_page_size()
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
        self.a.owner = b"a guardalloc Arena"

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
        self.pystacks_size = ga_pystacks_table_size(slots, PAGE) if file is None and wants_traces(self.tracebacks) else 0
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

    cdef int _build(self, file, bint shared, str requested, str resolved=None) except -1:
        """Map the arena, lay out its bookkeeping, install its guards and
        register it with the fault handler; nothing is left on failure.
        resolved: see new_pooled_arena."""
        self.backend = choose_backend(requested, file is not None) if resolved is None else resolved
        self.a.backend = _BACKENDS[self.backend]
        while True:
            self._map(file, shared)
            try:
                self._install_guards(resolved is not None)
                register_arena(&self.a)
                break
            except GuardInstallError as exc:
                self.release()
                if resolved is not None:
                    raise MemoryError("installing the arena's guards failed") from None
                if not (requested == "auto" and exc.errno == EINVAL and self.a.backend == GA_BACKEND_MADVISE):
                    raise
                # The kernel has guard pages but refuses them on this very
                # mapping (mlocked memory): "auto" means guards all the same.
                warnings.warn(
                    f"guardalloc: the kernel refused MADV_GUARD_INSTALL on the new arena (EINVAL: "
                    f"{einval_reason(file is not None)}); falling back to mprotect guards, which "
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
            self.mapped_size = self.stacks_size + self.pystacks_size + ga_anonymous_mapping_size(
                self.a.slot_size, self.a.nslots, self.a.guard_size, self.a.uaf, PAGE)
            # Inside a pool's reservation when placed (replaces PROT_NONE).
            base = ga_map_anonymous(self.placement, self.mapped_size)
            tables = NULL if base == NULL else <char *>base + self.a.size
        else:
            # A file's bookkeeping must stay private to each process that
            # maps it, so it lives on the heap instead.
            self.fd_, self.backing_fixed = open_backing(file, self.a.size, shared)
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
            self.a.stacks = <ga_packed_stack_t *>(<char *>base + self.mapped_size - self.stacks_size)
        if self.pystacks_size:   # before them
            self.a.pystacks = <ga_pystack_t *>(<char *>base + self.mapped_size - self.stacks_size - self.pystacks_size)
        return 0

    cdef int _install_guards(self, bint keep_gil=False) except -1:
        cdef int rc, err
        if keep_gil:
            # Inside an allocator hook: no other thread may run meanwhile.
            rc = ga_arena_guard_all(&self.a)
            err = errno
            if rc != 0:
                raise GuardInstallError(err, "installing guards failed")
            return 0
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
                                     f"{strerror(err).decode()}{einval_hint(err, self.fd_ >= 0)}")

    cdef void release(self) noexcept:
        """Unregister, unmap and free everything; safe on a half-built arena."""
        if self.registered:
            unregister_arena(&self.a)
            self.registered = False
        self.a.pystacks = NULL if self.pystacks_size else self.a.pystacks   # the mapping's is not freed
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
        cdef long want = -1, result
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
    b"traceback unless guardalloc.numpy's tracebacks=True (native stacks unless "
    b"native_stacks=False); Pool.alloc() records one with Pool(tracebacks=True) or "
    b"guardalloc.enable_tracebacks()")


cdef Arena new_pooled_arena(char *placement, size_t slot_size, unsigned int slots,
                            object options, ga_free_hook_t hook, void *ctx,
                            bint native_stacks=False, str resolved=None,
                            const char *owner=b"a guardalloc Pool"):
    cdef Arena arena = Arena.__new__(Arena)
    arena.placement = placement
    arena.a.untraced_hint = POOLED_UNTRACED
    arena.a.owner = owner
    if native_stacks:
        arena.stacks_size = ga_stacks_table_size(slots, PAGE)
    arena._configure(slot_size, slots, options, True)
    arena._build(None, False, options.backend, resolved)
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


include "free_errors.pxi"
include "buffer.pxi"

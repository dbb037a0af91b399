# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The pool: guarded buffers of any size from size-classed arenas.

A pool reserves one range of address space up front (``PROT_NONE``,
``MAP_NORESERVE``: it costs no memory) and maps every arena it creates inside
it, one after the other. So :meth:`Pool.owns` is two comparisons, without a
lock, which the allocator hooks run on every free they see; and neighbouring
arenas are neighbouring mappings, which keeps the VMA count down to a handful
per pool.

Requests are rounded up to a size class (whole pages: 1..8 pages, then four
classes per doubling). Each class has arenas created on demand, each with
twice the slots of the one before; requests of 1 MiB and more get a
dedicated one-slot arena, guarded on both sides, which is reused by the next
request of the same class. A freed large block keeps its pages for that reuse
while the pool's freed large blocks hold at most ``keep_bytes`` (glibc's
dynamic mmap threshold does the same for its heap); past that budget, and
always with ``uaf=True``, its pages go back to the kernel (``MADV_DONTNEED``).
With ``hugepages=True`` (numpy's handler follows numpy's own setting) a
dedicated arena is placed so that its slot ends on a 2 MiB boundary (the
block ends at the guard, so its interior is 2 MiB-aligned) and, from 4 MiB
on (numpy's threshold), asks for transparent huge pages (``MADV_HUGEPAGE``:
the aligned part becomes a VMA of its own).

The C methods (``malloc``, ``calloc``, ``realloc``, ``free_ptr``,
``owns_ptr``, ``size_of``; see pool.pxd) take the pool's own pthread mutex, never the
GIL. They grow the pool in one of three ways (``grow`` option): "sync" takes
the GIL and creates the arena right away (numpy's handler, Python callers);
"pending" never runs Python inside the call: it asks the main thread to
create the arena at its next safe point (``Py_AddPendingCall``) and fails
this one request (the interpreter's allocator hooks, which forward it);
"never" only uses what :meth:`Pool.prepare` made.
"""

import threading
import warnings

cimport cython
from cpython.exc cimport PyErr_Fetch, PyErr_Restore
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset, strerror

from guardalloc._core cimport *
from guardalloc.arena cimport Arena, Buffer, make_buffer, size_arg, new_pooled_arena, raise_free_error
from guardalloc.tracebacks cimport record_trace, wants_traces

from guardalloc.arena import _address
from guardalloc.backing import choose_backend
from guardalloc.errors import AddressSpaceError, ForeignBufferError, GuardInstallError, InvalidFreeError
from guardalloc.options import (
    POOL_OPTIONS as _POOL_OPTIONS, GuardOptions, address_space_left, check_bool, check_choice, check_int,
    MAX_DEFAULT_MAX_BYTES as _MAX_DEFAULT_MAX_BYTES, check_option_names, default_max_bytes, fitting_max_bytes,
)
from guardalloc.stats import PoolStats

cdef extern from "Python.h":
    int Py_AddPendingCall(int (*func)(void *) noexcept, void *arg) nogil

# fork() while another thread holds a pool's mutex would leave it locked for
# ever in the child: every pool's mutex is in the core's table of locks held
# across fork() (_c/locks.h), at the outermost level of the lock order (a
# pool's lock is held while it calls malloc, which may be the native heap,
# and while it registers an arena).
cdef extern from "_c/locks.h" nogil:
    int GA_LOCK_FRONT
    int ga_fork_lock_add(pthread_mutex_t *m, int level)
    void ga_fork_lock_remove(pthread_mutex_t *m)


cdef size_t PAGE = ga_page_size()
cdef size_t MAX_BLOCK = GA_MAX_CLASS_PAGES * PAGE
# Native stacks start at the pool's caller: this module's frames are left out.
ga_stacks_skip_library(<const void *>_free_hook)

# The most a pool takes by default (guardalloc.options.default_max_bytes():
# 256 GiB, a quarter of RAM under strict overcommit, less when RLIMIT_AS
# would not leave the program room).
DEFAULT_MAX_BYTES = _MAX_DEFAULT_MAX_BYTES
DEFAULT_KEEP_BYTES = 64 << 20
DEFAULT_MAX_ARENAS = 16384
MAX_MAX_BYTES = 1 << 44
MAX_MAX_ARENAS = 262144

_GROW_MODES = {"sync": GROW_SYNC, "pending": GROW_PENDING, "never": GROW_NEVER}


cdef int _free_hook(void *ctx, char *address, int raw_only, ga_damage_t *damage) noexcept nogil:
    """Arena free hook: every free of a pooled arena's block goes through the pool."""
    return pool_free_locked(<Pool>ctx, address, raw_only, damage)


include "pool_slots.pxi"
include "pool_growth.pxi"
include "pool_c_api.pxi"


@cython.auto_pickle(False)
@cython.final
@cython.no_gc_clear   # the C table borrows the arenas that `arenas` holds
cdef class Pool:
    """Guarded buffers of any size, from size-classed arenas made on demand.

    Pool(*, guard_pages=1, backend="auto", align="right", alignment=16,
         uaf=False, quarantine=None, tracebacks=None, on_fault="abort",
         max_bytes=None, max_arenas=None, grow="sync",
         hugepages=False, keep_bytes=64 MiB, native_stacks=True)

    The arena options mean what they mean for :class:`guardalloc.Arena` and
    apply to every arena of the pool (``quarantine`` is per arena). Limits:

    Args:
        max_bytes: bytes of slots (the memory buffers may occupy, guard
            pages not counted) the pool may map in all. The pool reserves
            ``max_bytes * (1 + guard_pages)`` bytes of address space for
            it up front (no memory). None: :func:`default_max_bytes`
            (256 GiB; a quarter of RAM under strict overcommit; less when
            ``RLIMIT_AS`` limits what the process may map).
        max_arenas: arenas the pool may create; None: 16384, or fewer for a
            small ``max_bytes`` (one per page of it).
        grow: "sync", "pending" or "never" (see the module docstring); only
            the C methods look at it, Python methods always grow.
        hugepages: lay large (1 MiB and more) blocks out for transparent
            huge pages and ask for them from 4 MiB on, as numpy does.
        keep_bytes: freed large blocks keep their pages for reuse while
            they hold at most this many bytes (0: always give them back;
            ignored with ``uaf=True``, which always gives them back).
        native_stacks: the C methods (what the numpy handler and the PyMem
            hooks call) record the native stack of each allocation and free
            per slot (up to 64 frames captured, the innermost ~50 kept in
            384 bytes per slot of the arena's mapping), and fault reports
            show them, symbolized. On by default; False saves the unwinding
            (a few hundred ns per alloc+free, bench/bench_pool.py measures
            it). Python callers get Python tracebacks instead
            (``tracebacks``).

    Thread-safe: the pool's own mutex serialises every allocation and free,
    with or without the GIL.

    Raises:
        TypeError: an option has the wrong type, or is unknown.
        ValueError: an option is out of range.
        GuardUnsupportedError: ``backend="madvise"`` without guard pages.
        AddressSpaceError: (a MemoryError) the address space reservation
            failed (``RLIMIT_AS``); the message says which ``max_bytes``
            would fit.
    """

    def __cinit__(self):
        self.is_closed = True
        self.arenas = []
        self.owner = b"a guardalloc Pool"

    cdef void set_owner(self, const char *owner) noexcept:
        cdef Arena arena
        self.owner = owner
        for arena in self.arenas:
            arena.a.owner = owner

    def __init__(self, *, guard_pages=1, backend="auto", align="right", alignment=16,
                 uaf=False, quarantine=None, tracebacks=None, on_fault="abort",
                 max_bytes=None, max_arenas=None, grow="sync",
                 hugepages=False, keep_bytes=DEFAULT_KEEP_BYTES, native_stacks=True):
        cdef size_t reserve
        cdef void *base
        cdef int i
        if self.lock_ready:
            raise RuntimeError("Pool.__init__ called twice")
        options = GuardOptions(guard_pages=guard_pages, backend=backend, align=align,
                               alignment=alignment, uaf=uaf, quarantine=quarantine,
                               tracebacks=tracebacks, on_fault=on_fault)
        grow = check_choice("grow", grow, tuple(_GROW_MODES))
        if max_bytes is None:
            max_bytes = default_max_bytes(options.guard_pages)
        max_bytes = check_int("max_bytes", max_bytes, PAGE, MAX_MAX_BYTES)
        arenas_given = max_arenas is not None
        if max_arenas is None:
            max_arenas = _default_max_arenas(max_bytes)
        max_arenas = check_int("max_arenas", max_arenas, 1, MAX_MAX_ARENAS)
        self.hugepages = check_bool("hugepages", hugepages)
        self.native_stacks = check_bool("native_stacks", native_stacks)
        self.keep_bytes_ = 0 if options.uaf else check_int("keep_bytes", keep_bytes, 0, 1 << 44)

        self.backend = choose_backend(options.backend, False)
        # Every arena gets the backend chosen once, here.
        self.options = options.replace(backend=self.backend)
        self.tracebacks = options.tracebacks
        self.guard_pages = options.guard_pages
        self.align = options.align
        self.alignment = options.alignment
        self.uaf = options.uaf
        self.on_fault = options.on_fault
        self.grow_mode = _GROW_MODES[grow]
        self.max_bytes_ = max_bytes
        self.max_arenas_ = max_arenas
        self.guard_size = <size_t>options.guard_pages * PAGE
        for i in range(GA_NCLASSES):
            self.classes[i].slot_size = ga_class_pages(i) * PAGE
            self.classes[i].next_slots = _first_slots(self.classes[i].slot_size)

        # Every slot costs at most guard_pages guard pages on top (1-page
        # slots), every arena one more guard at its start.
        reserve = _reservation(max_bytes, options.guard_pages, max_arenas, self.native_stacks)
        base = ga_reserve(NULL, reserve)
        if base == NULL:
            raise _reservation_error(reserve, strerror(errno).decode(), max_bytes, options.guard_pages,
                                     max_arenas if arenas_given else None, self.native_stacks)
        self.reserve_start = <char *>base
        self.reserve_end = self.reserve_start + reserve
        self.reservation_mapped = True
        self.bump = self.reserve_start
        if pthread_mutex_init(&self.lock, NULL) != 0:
            ga_unmap(base, reserve)
            self.reserve_start = self.reserve_end = self.bump = NULL
            raise MemoryError("cannot initialise the pool's mutex")
        self.lock_ready = True
        self.grow_token = <grow_token_t *>calloc(1, sizeof(grow_token_t))
        if self.grow_token == NULL:
            self._release()
            raise MemoryError("no memory for the pool's growth token")
        self.grow_token.pool = <void *>self
        if ga_fork_lock_add(&self.lock, GA_LOCK_FRONT) != 0:
            self._release()
            raise MemoryError("no memory to hold the pool's mutex across fork()")
        self.lock_registered = True
        self.is_closed = False

    # -- lifetime -----------------------------------------------------------

    cdef void _release(self) noexcept:
        """Release every arena, then the reservation. Safe on a half-built pool."""
        cdef uint32_t i
        cdef int k
        cdef Arena arena
        if self.lock_ready:
            pthread_mutex_lock(&self.lock)
        self.is_closed = True
        for i in range(self.narenas):
            arena = <Arena>self.table[i].arena
            arena.free_hook = NULL
            arena.free_hook_ctx = NULL
            arena.release()
            Py_DECREF(arena)    # the table's reference (see _add_arena)
        self.narenas = 0
        free(self.table)
        self.table = NULL
        self.cap_table = 0
        for k in range(GA_NCLASSES):
            free(self.classes[k].avail)
            self.classes[k].avail = NULL
            self.classes[k].navail = self.classes[k].cap_avail = 0
        if self.growing == 0:
            # Else the last grower unmaps it, after releasing its arena.
            self._unmap_reservation()
        self.live = self.live_bytes = 0
        if self.lock_ready:
            pthread_mutex_unlock(&self.lock)
        if self.lock_registered:
            ga_fork_lock_remove(&self.lock)
            self.lock_registered = False

    cdef void _unmap_reservation(self) noexcept nogil:
        if self.reservation_mapped:
            ga_unmap(self.reserve_start, <size_t>(self.reserve_end - self.reserve_start))
            self.reservation_mapped = False
            # reserve_start/end stay set: owns() is False once closed.

    def __dealloc__(self):
        self._release()
        if self.grow_token != NULL:
            # GIL held, no other reference: nobody can queue a call now.
            if self.grow_token.queued:
                self.grow_token.pool = NULL    # the callback frees it
            else:
                free(self.grow_token)
            self.grow_token = NULL
        if self.lock_ready:
            pthread_mutex_destroy(&self.lock)
            self.lock_ready = False

    def close(self):
        """Unmap every arena and the reservation. Idempotent.

        Buffers still alive become unusable (their methods raise
        ValueError); C callers get NULL / -1 from then on.

        Raises:
            BufferError: a buffer is still exported (memoryview, numpy array).
        """
        cdef Arena arena
        if self.is_closed:
            return
        for arena in self.arenas:
            if arena.exports:
                raise BufferError(
                    "cannot close the pool while memoryviews or arrays export its buffers; "
                    "release them first")
        self._release()
        self.arenas = []

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    cdef int _check_open(self) except -1:
        if self.is_closed:
            raise ValueError("operation on a closed guardalloc.Pool")
        return 0

    # -- the C interface (pool.pxd; bodies in pool_c_api.pxi) -------------------

    cdef void *malloc(self, size_t nbytes, bint gil=False) noexcept nogil:
        return pool_malloc(self, nbytes, gil)

    cdef void *calloc(self, size_t count, size_t size, bint gil=False) noexcept nogil:
        return pool_calloc(self, count, size, gil)

    cdef void *realloc(self, void *ptr, size_t nbytes, ga_damage_t *damage, bint gil=False) noexcept nogil:
        return pool_realloc(self, ptr, nbytes, damage, gil)

    cdef int free_ptr(self, void *ptr, ga_damage_t *damage) noexcept nogil:
        return pool_free_ptr(self, ptr, damage)

    cdef bint owns_ptr(self, const void *ptr) noexcept nogil:
        return pool_owns_ptr(self, ptr)

    cdef size_t size_of(self, const void *ptr) noexcept nogil:
        return pool_size_of(self, ptr)

    cdef ga_arena_t *arena_of(self, const void *ptr) noexcept nogil:
        return pool_arena_of(self, ptr)

    # -- Python API -----------------------------------------------------------

    cdef int _class_for(self, nbytes) except -1:
        self._check_open()
        return ga_class_of(size_arg("nbytes", nbytes, MAX_BLOCK, None), PAGE)

    cdef long _py_take(self, object nbytes, bint zero, bint raw, void **where) except? -1:
        """Allocate from Python: grows the class as needed (GIL held), records
        the allocation traceback when the pool's arenas want one."""
        cdef int cls = self._class_for(nbytes)
        cdef size_t n = nbytes
        cdef long slot
        while True:
            pthread_mutex_lock(&self.lock)
            slot = pool_take(self, cls, n, zero, raw, where)
            pthread_mutex_unlock(&self.lock)
            if slot >= 0:
                if wants_traces(self.tracebacks):
                    record_trace(&(<Arena>where[0]).a, <uint32_t>slot, False)
                return slot
            if slot == GA_ERR_SYSCALL:
                raise GuardInstallError(errno, f"removing a use-after-free guard failed: "
                                               f"{strerror(errno).decode()}")
            grow_class(self, cls)

    def alloc(self, nbytes, *, zero=True):
        """Return a :class:`guardalloc.Buffer` of nbytes, ending right before a
        guard page (``align="right"``, to ``alignment``).

        The Buffer behaves as one from :meth:`Arena.alloc`; ``buf.arena`` is
        the pool's arena that holds it.

        Raises:
            TypeError: nbytes is not an int.
            ValueError: nbytes out of 1..3.5 GiB, or the pool is closed.
            MemoryError: max_bytes or max_arenas reached, or no memory.
        """
        cdef void *where = NULL
        cdef long slot = self._py_take(nbytes, zero is True or (zero is not False and check_bool("zero", zero)), False, &where)
        return make_buffer(<Arena>where, slot, self)

    def alloc_raw(self, nbytes, *, zero=True) -> int:
        """Like :meth:`alloc`, but return the block's address (for ctypes or C
        code); free it with :meth:`free` or :meth:`realloc_raw` it."""
        cdef void *where = NULL
        cdef long slot = self._py_take(nbytes, zero is True or (zero is not False and check_bool("zero", zero)), True, &where)
        return <uintptr_t>ga_block_start(&(<Arena>where).a, slot)

    cdef Arena _arena_at(self, size_t address):
        """The arena whose mapping holds address, or None."""
        cdef long index
        cdef Arena arena = None
        pthread_mutex_lock(&self.lock)
        index = pool_find(self, <char *>address) if not self.is_closed else -1
        if index >= 0:
            arena = <Arena>self.table[index].arena
        pthread_mutex_unlock(&self.lock)
        return arena

    def free(self, buffer):
        """Free a :class:`Buffer` of this pool or an address from
        :meth:`alloc_raw`.

        Raises:
            TypeError: neither a Buffer nor an integer address.
            BufferError: the buffer is still exported.
            DoubleFreeError, InvalidFreeError, CorruptionError: as
                :meth:`Arena.free`.
            ForeignBufferError: not this pool's buffer or address.
            ValueError: the pool is closed.
        """
        cdef Buffer buf
        cdef Arena arena
        self._check_open()
        if isinstance(buffer, Buffer):
            buf = <Buffer>buffer
            if buf.pool is not self:
                raise ForeignBufferError(f"{buf!r} belongs to another arena or pool",
                                         buf.address_or_none(), None)
            buf.owner._free_buffer(buf)
            return
        if isinstance(buffer, bool) or not isinstance(buffer, int):
            raise TypeError(f"free() takes a guardalloc.Buffer or an address, not {type(buffer).__name__}")
        address = _address(buffer)
        if address is None or not self.owns_ptr(<const void *><uintptr_t>address):
            raise ForeignBufferError(f"address {_hex(address, buffer)} is not in this pool", address, None)
        arena = self._arena_at(address)
        if arena is None:
            raise InvalidFreeError(f"invalid free of address {address:#x}: not in any of the "
                                   "pool's arenas", address, None)
        arena.free_block(<char *><uintptr_t>address, True, None)

    def realloc_raw(self, address, nbytes) -> int:
        """Move the raw block at address to a new block of nbytes (its first
        min(old, new) bytes copied), free the old one and return the new
        address. ``address=0`` allocates.

        Raises:
            TypeError: address or nbytes is not an integer.
            InvalidFreeError: address is not a live raw block of this pool
                (nothing changes).
            ValueError, MemoryError: as :meth:`alloc_raw` (nothing changes).
        """
        cdef size_t old, moved
        cdef long slot
        cdef Arena arena
        self._check_open()
        original = address
        address = _address(address)
        if address == 0:
            return self.alloc_raw(nbytes, zero=False)
        arena = None if address is None else self._arena_at(address)
        if arena is None:
            raise InvalidFreeError(f"realloc of {_hex(address, original)}: not a live block of this pool",
                                   address, None)
        slot = ga_live_slot_at(&arena.a, <void *><uintptr_t>address)
        if slot < 0:
            raise_free_error(arena, GA_ERR_INVALID, address, NULL, f"realloc of address {address:#x}")
        if not arena.a.slots[slot].flags & GA_FLAG_RAW:
            raise_free_error(arena, GA_ERR_OWNED, address, NULL, f"address {address:#x}")
        old = arena.a.slots[slot].nbytes
        moved = self.alloc_raw(nbytes, zero=False)
        memcpy(<void *><uintptr_t>moved, <void *><uintptr_t>address, old if old < <size_t>nbytes else <size_t>nbytes)
        self.free(address)
        return moved

    def owns(self, address) -> bool:
        """Whether address lies in the pool's reserved range (any arena,
        guard pages included); False once the pool is closed.

        Raises:
            TypeError: address is not an integer.
        """
        address = _address(address)
        return address is not None and self.owns_ptr(<const void *><uintptr_t>address)

    def block_size(self, address) -> int:
        """Requested size of the live block that starts at address, else 0.

        Raises:
            TypeError: address is not an integer.
        """
        address = _address(address)
        return 0 if address is None else self.size_of(<const void *><uintptr_t>address)

    def owns_address(self, address) -> bool:
        """Deprecated alias of :meth:`owns`."""
        warnings.warn("Pool.owns_address() is deprecated: use Pool.owns()", DeprecationWarning, stacklevel=2)
        return self.owns(address)

    def block_nbytes(self, address) -> int:
        """Deprecated alias of :meth:`block_size`."""
        warnings.warn("Pool.block_nbytes() is deprecated: use Pool.block_size()", DeprecationWarning,
                      stacklevel=2)
        return self.block_size(address)

    def prepare(self, nbytes, arenas=1) -> None:
        """Create ``arenas`` more arenas for the size class of nbytes now (for
        callers that must not grow later, ``grow="never"``/``"pending"``).

        Raises:
            TypeError, ValueError: nbytes as for :meth:`alloc`; arenas not an
                integer of 1 or more.
            MemoryError: as :meth:`alloc`.
        """
        cdef int cls = self._class_for(nbytes)
        for _ in range(check_int("arenas", arenas, 1)):
            grow_class(self, cls)

    @staticmethod
    def slot_size_for(nbytes) -> int:
        """The slot size (size class) that serves a request of nbytes.

        Raises:
            ValueError: nbytes out of 1..3.5 GiB.
        """
        return ga_class_pages(ga_class_of(<size_t>check_int("nbytes", nbytes, 1, MAX_BLOCK), PAGE)) * PAGE

    def stats(self) -> PoolStats:
        """Counts, as a :class:`guardalloc.stats.PoolStats` (attributes, and
        keys as in a dict): arenas, live (blocks), live_bytes (requested), allocations,
        frees, corruptions (slack damage found by C-level frees), refused (C
        requests answered with NULL), refused_growing (of those, requests
        whose size class was waiting for the arena that ``grow="pending"``
        adds at the next safe point), mapped_bytes (slot bytes of all
        arenas), address_space (bytes of the reservation in use),
        reserved, max_bytes, max_arenas, kept_bytes (pages of freed large
        blocks kept resident, see keep_bytes), classes (slot_size -> dict of
        arenas, slots, exhausted)."""
        cdef int i
        cdef uint64_t counts[14]
        cdef uint64_t per_class[GA_NCLASSES][3]
        self._check_open()
        # Copied under the lock, turned into Python objects after it.
        pthread_mutex_lock(&self.lock)
        counts[:] = [self.narenas, self.live, self.live_bytes, self.allocations, self.frees,
                     self.corruptions, self.refused, self.mapped_bytes,
                     <size_t>(self.bump - self.reserve_start),
                     <size_t>(self.reserve_end - self.reserve_start),
                     self.max_bytes_, self.max_arenas_, self.kept_bytes, self.refused_growing]
        for i in range(GA_NCLASSES):
            per_class[i][0] = self.classes[i].narenas
            per_class[i][1] = self.classes[i].slots
            per_class[i][2] = self.classes[i].exhausted
        pthread_mutex_unlock(&self.lock)
        names = ("arenas", "live", "live_bytes", "allocations", "frees", "corruptions", "refused",
                 "mapped_bytes", "address_space", "reserved", "max_bytes", "max_arenas",
                 "kept_bytes", "refused_growing")
        result = {name: counts[i] for i, name in enumerate(names)}
        result["classes"] = {
            self.classes[i].slot_size: {"arenas": per_class[i][0], "slots": per_class[i][1],
                                        "exhausted": bool(per_class[i][2])}
            for i in range(GA_NCLASSES) if per_class[i][0]
        }
        return PoolStats(**result)

    @property
    def address(self) -> int:
        """Start of the reserved range."""
        return <uintptr_t>self.reserve_start

    @property
    def reserved(self) -> int:
        """Bytes of address space reserved for the pool's arenas."""
        return <size_t>(self.reserve_end - self.reserve_start)

    @property
    def max_bytes(self) -> int:
        return self.max_bytes_

    @property
    def max_arenas(self) -> int:
        return self.max_arenas_

    @property
    def grow(self) -> str:
        return {GROW_SYNC: "sync", GROW_PENDING: "pending", GROW_NEVER: "never"}[self.grow_mode]

    @property
    def closed(self) -> bool:
        return self.is_closed

    def __repr__(self):
        if self.is_closed:
            return "<guardalloc.Pool closed>"
        return (f"<guardalloc.Pool at {<uintptr_t>self.reserve_start:#x}, {self.narenas} arena(s), "
                f"{self.live} live block(s), {self.backend}>")


def _hex(address, original) -> str:
    """An address for a message: hex when it is one, else as given."""
    return f"{address:#x}" if address is not None else repr(original)


include "default_pool.pxi"

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
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset, strerror

from guardalloc._core cimport *
from guardalloc.arena cimport Arena, Buffer, make_buffer, size_arg, new_pooled_arena, raise_free_error
from guardalloc.tracebacks cimport record_trace, wants_traces

from guardalloc.arena import _address, _choose_backend
from guardalloc.errors import AddressSpaceError, ForeignBufferError, GuardInstallError, InvalidFreeError
from guardalloc.options import (
    POOL_OPTIONS as _POOL_OPTIONS, GuardOptions, address_space_left, check_bool, check_choice, check_int,
    MAX_DEFAULT_MAX_BYTES as _MAX_DEFAULT_MAX_BYTES, check_option_names, default_max_bytes, fitting_max_bytes,
)
from guardalloc.stats import PoolStats

cdef extern from "Python.h":
    int Py_AddPendingCall(int (*func)(void *) noexcept, void *arg) nogil

# fork() while another thread holds a pool's mutex would leave it locked for
# ever in the child: every pool mutex is taken around fork() and released (or
# re-initialised in the child) afterwards.
cdef extern from *:
    """
    #include <pthread.h>
    #include <stdlib.h>
    static pthread_mutex_t ga_pool_registry_lock = PTHREAD_MUTEX_INITIALIZER;
    static pthread_mutex_t **ga_pool_locks;
    static size_t ga_pool_nlocks, ga_pool_caplocks;
    static int ga_pool_atfork_done;

    static void ga_pool_prefork(void) {
        size_t i;
        pthread_mutex_lock(&ga_pool_registry_lock);
        for (i = 0; i < ga_pool_nlocks; i++) pthread_mutex_lock(ga_pool_locks[i]);
    }
    static void ga_pool_postfork_parent(void) {
        size_t i;
        for (i = ga_pool_nlocks; i > 0; i--) pthread_mutex_unlock(ga_pool_locks[i - 1]);
        pthread_mutex_unlock(&ga_pool_registry_lock);
    }
    static void ga_pool_postfork_child(void) {
        size_t i;
        for (i = 0; i < ga_pool_nlocks; i++) pthread_mutex_init(ga_pool_locks[i], NULL);
        pthread_mutex_init(&ga_pool_registry_lock, NULL);
    }
    static int ga_pool_register_lock(pthread_mutex_t *m) {
        int rc = 0;
        pthread_mutex_lock(&ga_pool_registry_lock);
        if (!ga_pool_atfork_done) {
            if (pthread_atfork(ga_pool_prefork, ga_pool_postfork_parent, ga_pool_postfork_child) == 0)
                ga_pool_atfork_done = 1;
        }
        if (ga_pool_nlocks == ga_pool_caplocks) {
            size_t cap = ga_pool_caplocks ? 2 * ga_pool_caplocks : 16;
            pthread_mutex_t **grown = realloc(ga_pool_locks, cap * sizeof(*grown));
            if (grown == NULL) rc = -1;
            else { ga_pool_locks = grown; ga_pool_caplocks = cap; }
        }
        if (rc == 0) ga_pool_locks[ga_pool_nlocks++] = m;
        pthread_mutex_unlock(&ga_pool_registry_lock);
        return rc;
    }
    static void ga_pool_unregister_lock(pthread_mutex_t *m) {
        size_t i;
        pthread_mutex_lock(&ga_pool_registry_lock);
        for (i = 0; i < ga_pool_nlocks; i++) {
            if (ga_pool_locks[i] == m) {
                ga_pool_locks[i] = ga_pool_locks[--ga_pool_nlocks];
                break;
            }
        }
        pthread_mutex_unlock(&ga_pool_registry_lock);
    }
    """
    int ga_pool_register_lock(pthread_mutex_t *m) nogil
    void ga_pool_unregister_lock(pthread_mutex_t *m) nogil


cdef size_t PAGE = ga_page_size()
cdef size_t MAX_BLOCK = GA_MAX_CLASS_PAGES * PAGE
# Native stacks start at the pool's caller: this module's frames are left out.
ga_stacks_skip_library(<const void *>_free_hook)

# From this slot size on, one dedicated one-slot arena per block.
cdef size_t LARGE_SLOT = <size_t>1 << 20
# Slot counts of a class's arenas: the first arena holds about FIRST_ARENA
# bytes of slots (between MIN_SLOTS and MAX_FIRST_SLOTS slots), each next
# one twice as many, up to MAX_ARENA_SLOTS slots or MAX_POOLED_ARENA_BYTES.
cdef size_t FIRST_ARENA = <size_t>1 << 20
cdef uint32_t MIN_SLOTS = 4
cdef uint32_t MAX_FIRST_SLOTS = 256
cdef uint32_t MAX_ARENA_SLOTS = 65536
cdef size_t MAX_POOLED_ARENA_BYTES = <size_t>1 << 30

# The most a pool takes by default (guardalloc.options.default_max_bytes():
# a quarter of RAM, less when RLIMIT_AS would not leave the program room).
DEFAULT_MAX_BYTES = _MAX_DEFAULT_MAX_BYTES
DEFAULT_KEEP_BYTES = 64 << 20
# Transparent huge pages: the PMD size on x86-64, and numpy's threshold.
cdef size_t HUGE_PAGE = <size_t>2 << 20
cdef size_t HUGEPAGE_MIN_SLOT = <size_t>4 << 20
DEFAULT_MAX_ARENAS = 16384
MAX_MAX_BYTES = 1 << 44
MAX_MAX_ARENAS = 262144

_GROW_MODES = {"sync": GROW_SYNC, "pending": GROW_PENDING, "never": GROW_NEVER}


cdef int _pending_grow(void *arg) noexcept with gil:
    """Py_AddPendingCall callback: the main thread, the GIL, a safe point."""
    cdef grow_token_t *token = <grow_token_t *>arg
    cdef Pool pool
    if token.pool == NULL:
        free(token)     # the pool died while the call was queued
        return 0
    pool = <Pool>token.pool
    try:
        pool._grow_wanted()
    except BaseException:
        pass    # growth is best effort; the hook forwards meanwhile
    return 0


cdef int _free_hook(void *ctx, char *address, int raw_only, ga_damage_t *damage) noexcept nogil:
    """Arena free hook: every free of a pooled arena's block goes through the pool."""
    return (<Pool>ctx)._free_locked(address, raw_only, damage)


cdef void _ask_hugepages(ga_arena_t *a) noexcept nogil:
    """MADV_HUGEPAGE on the 2 MiB-aligned part of a dedicated arena's slot
    (best effort: THP may be off, the range too small)."""
    cdef char *start = ga_slot_start(a, 0)
    cdef char *end = start + a.slot_size
    cdef char *aligned = <char *>ga_round_up(<uintptr_t>start, HUGE_PAGE)
    if aligned < end:
        ga_hugepage(aligned, <size_t>(end - aligned))


@cython.auto_pickle(False)
@cython.final
@cython.no_gc_clear   # the C table borrows the arenas that `arenas` holds
cdef class Pool:
    """Guarded buffers of any size, from size-classed arenas made on demand.

    Pool(*, guard_pages=1, backend="auto", align="right", alignment=16,
         uaf=False, quarantine=None, tracebacks=None, on_fault="abort",
         max_bytes=None, max_arenas=None, grow="sync",
         hugepages=False, keep_bytes=64 MiB, native_stacks=False)

    The arena options mean what they mean for :class:`guardalloc.Arena` and
    apply to every arena of the pool (``quarantine`` is per arena). Limits:

    Args:
        max_bytes: bytes of slots (the memory buffers may occupy, guard
            pages not counted) the pool may map in all. The pool reserves
            ``max_bytes * (1 + guard_pages)`` bytes of address space for
            it up front (no memory). None: :func:`default_max_bytes` (a
            quarter of RAM, less when ``RLIMIT_AS`` limits what the
            process may map).
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
            per slot (a few return addresses; 128 bytes per slot, in the
            arena's mapping), and fault reports show them, symbolized. Off
            by default: it makes a C alloc+free several times slower
            (bench/bench_pool.py measures it); Python callers get Python
            tracebacks instead (``tracebacks``).

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

    def __init__(self, *, guard_pages=1, backend="auto", align="right", alignment=16,
                 uaf=False, quarantine=None, tracebacks=None, on_fault="abort",
                 max_bytes=None, max_arenas=None, grow="sync",
                 hugepages=False, keep_bytes=DEFAULT_KEEP_BYTES, native_stacks=False):
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

        self.backend = _choose_backend(options.backend, False)
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
        reserve = _reservation(max_bytes, options.guard_pages, max_arenas)
        if self.native_stacks:
            # Every arena's stack table (two stacks per slot, at most
            # max_bytes / PAGE slots, a page of rounding per arena).
            reserve += ga_stacks_table_size(max_bytes // PAGE, PAGE) + max_arenas * PAGE
        base = ga_reserve(NULL, reserve)
        if base == NULL:
            raise _reservation_error(reserve, strerror(errno).decode(), max_bytes,
                                     options.guard_pages, max_arenas if arenas_given else None)
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
        if ga_pool_register_lock(&self.lock) != 0:
            self._release()
            raise MemoryError("no memory to register the pool's mutex for fork()")
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
            ga_pool_unregister_lock(&self.lock)
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

    # -- the core (caller holds self.lock) ----------------------------------

    cdef inline long _find(self, const char *address) noexcept nogil:
        """Table index of the arena whose mapping holds address, or -1."""
        cdef long lo = 0, hi = <long>self.narenas - 1, mid
        while lo <= hi:
            mid = (lo + hi) >> 1
            if address < self.table[mid].start:
                hi = mid - 1
            elif address >= self.table[mid].end:
                lo = mid + 1
            else:
                return mid
        return -1

    cdef long _take(self, int cls, size_t nbytes, bint zero, bint raw,
                    void **where) noexcept nogil:
        """A live slot for nbytes from the class's arenas: its index (and
        where[0] its arena), GA_ERR_FULL or GA_ERR_SYSCALL."""
        cdef pool_class_t *c = &self.classes[cls]
        cdef pool_arena_t *e
        cdef int result
        if self.is_closed:
            return GA_ERR_FULL
        ga_altstack_ensure()   # this thread may fault in the block: report on a stack of known size
        while c.navail > 0:
            e = &self.table[c.avail[c.navail - 1]]
            result = ga_alloc(&(<Arena>e.arena).a, nbytes, zero, raw, -1)
            if result >= 0:
                if (<Arena>e.arena).a.stacks != NULL:
                    # The C caller records the new ones; a Python caller none.
                    memset(&(<Arena>e.arena).a.stacks[2 * result], 0, 2 * sizeof(ga_stack_t))
                if e.kept:
                    e.kept = False
                    self.kept_bytes -= c.slot_size
                self.live += 1
                self.live_bytes += nbytes
                self.allocations += 1
                where[0] = e.arena   # not e: the table may move once unlocked
                return result
            if result != GA_ERR_FULL:
                return result
            e.in_avail = False
            c.navail -= 1
        return GA_ERR_FULL

    cdef int _free_locked(self, char *address, int raw_only, ga_damage_t *damage,
                          const ga_stack_t *stack=NULL) noexcept nogil:
        """Free the block at address through the core: its result code.

        ``raw_only`` refuses (GA_ERR_OWNED) blocks that a Python Buffer
        owns: C callers must not free those behind the Buffer's back.
        ``stack``: the caller's native stack, kept as the slot's free stack
        (under the lock: the slot may be handed out again right after).
        """
        cdef long index, slot
        cdef pool_arena_t *e
        cdef pool_class_t *c
        cdef ga_arena_t *a
        cdef int code
        pthread_mutex_lock(&self.lock)
        index = self._find(address) if not self.is_closed else -1
        if index < 0:
            pthread_mutex_unlock(&self.lock)
            return GA_ERR_FOREIGN
        e = &self.table[index]
        a = &(<Arena>e.arena).a
        code = ga_free(a, address, raw_only, damage)
        if code == GA_OK or code == GA_ERR_CORRUPT or code == GA_ERR_SYSCALL:
            self.live -= 1
            self.live_bytes -= damage.nbytes
            self.frees += 1
            if code == GA_ERR_CORRUPT:
                self.corruptions += 1
            c = &self.classes[e.cls]
            slot = ga_slot_of(a, address)
            if stack != NULL:
                ga_stacks_record(a, slot, 1, stack)
            if c.slot_size >= LARGE_SLOT and not a.uaf and a.slots[slot].state == GA_SLOT_FREE:
                # A dedicated arena keeps its address range for the next
                # block of its class, and its memory within the budget.
                if self.kept_bytes + a.slot_size <= self.keep_bytes_:
                    e.kept = True
                    self.kept_bytes += a.slot_size
                elif ga_discard(ga_slot_start(a, slot), a.slot_size) == 0:
                    a.slots[slot].flags &= ~GA_FLAG_DIRTY
            if not e.in_avail and c.navail < c.cap_avail:
                e.in_avail = True
                c.avail[c.navail] = <uint32_t>index
                c.navail += 1
        pthread_mutex_unlock(&self.lock)
        return code

    # -- the C interface (pool.pxd) ------------------------------------------

    cdef void *malloc(self, size_t nbytes) noexcept nogil:
        return self._c_alloc(nbytes, False)

    cdef void *calloc(self, size_t count, size_t size) noexcept nogil:
        if size != 0 and count > (<size_t>-1) // size:
            return NULL
        return self._c_alloc(count * size, True)

    cdef void *_c_alloc(self, size_t nbytes, bint zero) noexcept nogil:
        cdef int cls
        cdef long slot
        cdef void *arena = NULL
        cdef ga_arena_t *a
        cdef ga_stack_t stack
        if nbytes == 0:
            nbytes = 1    # a unique pointer, like malloc(0)
        if nbytes > MAX_BLOCK:
            return NULL
        if self.native_stacks:
            ga_stack_capture(&stack)   # before the lock: unwinding is the slow part
        cls = ga_class_of(nbytes, PAGE)
        pthread_mutex_lock(&self.lock)
        slot = self._take(cls, nbytes, zero, True, &arena)
        if slot == GA_ERR_FULL and self.grow_mode == GROW_PENDING:
            self._schedule_growth(cls)
        pthread_mutex_unlock(&self.lock)
        if slot == GA_ERR_FULL and self.grow_mode == GROW_SYNC:
            slot = self._grow_sync(cls, nbytes, zero, &arena)
        if slot < 0:
            self.refused += 1   # a statistic: a lost update is harmless
            return NULL
        if self.native_stacks:
            ga_stacks_record(&(<Arena>arena).a, slot, 0, &stack)   # the slot is ours
        return ga_block_start(&(<Arena>arena).a, slot)

    cdef void _schedule_growth(self, int cls) noexcept nogil:
        """Pending mode, lock held: have the main thread add an arena."""
        cdef pool_class_t *c = &self.classes[cls]
        if c.exhausted or c.grow_wanted:
            return
        c.grow_wanted = True
        if self.grow_token != NULL and not self.grow_token.queued:
            if Py_AddPendingCall(_pending_grow, <void *>self.grow_token) == 0:
                self.grow_token.queued = True
            else:
                c.grow_wanted = False   # queue full: ask again next time

    cdef long _grow_sync(self, int cls, size_t nbytes, bint zero, void **where) noexcept nogil:
        cdef long slot
        with gil:
            while True:
                # Another thread may have grown the class meanwhile.
                pthread_mutex_lock(&self.lock)
                slot = self._take(cls, nbytes, zero, True, where)
                pthread_mutex_unlock(&self.lock)
                if slot != GA_ERR_FULL or self.is_closed:
                    return slot
                try:
                    self._grow(cls)
                except BaseException:
                    return GA_ERR_FULL

    cdef void *realloc(self, void *ptr, size_t nbytes, ga_damage_t *damage) noexcept nogil:
        cdef size_t old
        cdef void *moved
        cdef ga_damage_t undo
        cdef int code
        damage.damaged = 0
        if ptr == NULL:
            return self.malloc(nbytes)
        old = self.size_of(ptr)
        if old == 0:
            return NULL
        # Always move: a block that shrank or grew in place would no longer
        # end at its guard page.
        moved = self.malloc(nbytes)
        if moved == NULL:
            return NULL
        memcpy(moved, ptr, old if old < nbytes else nbytes)
        code = self.free_ptr(ptr, damage)
        if code != GA_OK and code != GA_ERR_CORRUPT and code != GA_ERR_SYSCALL:
            # Not the C interface's block (a Python Buffer owns it): undo.
            self.free_ptr(moved, &undo)
            return NULL
        return moved

    cdef int free_ptr(self, void *ptr, ga_damage_t *damage) noexcept nogil:
        cdef ga_stack_t stack
        damage.damaged = 0
        if not self.owns_ptr(ptr):
            return GA_ERR_FOREIGN
        if self.native_stacks:
            ga_stack_capture(&stack)
            return self._free_locked(<char *>ptr, True, damage, &stack)
        return self._free_locked(<char *>ptr, True, damage)

    cdef bint owns_ptr(self, const void *ptr) noexcept nogil:
        return (not self.is_closed and <const char *>ptr >= self.reserve_start
                and <const char *>ptr < self.reserve_end)

    cdef size_t size_of(self, const void *ptr) noexcept nogil:
        cdef long index, slot
        cdef ga_arena_t *a
        cdef size_t nbytes = 0
        if not self.owns_ptr(ptr):
            return 0
        pthread_mutex_lock(&self.lock)
        index = self._find(<const char *>ptr) if not self.is_closed else -1
        if index >= 0:
            a = &(<Arena>self.table[index].arena).a
            slot = ga_live_slot_at(a, ptr)
            if slot >= 0:
                nbytes = a.slots[slot].nbytes
        pthread_mutex_unlock(&self.lock)
        return nbytes

    cdef ga_arena_t *arena_of(self, const void *ptr) noexcept nogil:
        cdef long index
        cdef ga_arena_t *a = NULL
        if not self.owns_ptr(ptr):
            return NULL
        pthread_mutex_lock(&self.lock)
        index = self._find(<const char *>ptr) if not self.is_closed else -1
        if index >= 0:
            a = &(<Arena>self.table[index].arena).a
        pthread_mutex_unlock(&self.lock)
        return a

    # -- growth (GIL held, lock not held) -------------------------------------

    cdef int _grow(self, int cls) except -1:
        """Add an arena to a class (GIL held, lock not held).

        Raises:
            MemoryError: a limit (max_bytes, max_arenas, the reservation) or
                the kernel refused.
        """
        cdef pool_class_t *c = &self.classes[cls]
        cdef size_t slot_size = c.slot_size
        cdef size_t budget, footprint, pad = 0
        cdef uint32_t slots
        cdef char *place
        cdef Arena arena
        cdef bint finish
        cdef int problem = 0
        self._check_open()
        # No Python object may be made while the lock is held: the lock is
        # also taken inside allocator hooks (pymem), which would deadlock.
        pthread_mutex_lock(&self.lock)
        slots = 0
        footprint = 0
        if self.narenas + self.growing >= self.max_arenas_:
            problem = 1
        else:
            budget = (self.max_bytes_ - self.mapped_bytes) // slot_size \
                if self.mapped_bytes < self.max_bytes_ else 0
            slots = c.next_slots if c.next_slots <= budget else <uint32_t>budget
            footprint = ga_anonymous_mapping_size(slot_size, slots, self.guard_size, self.uaf, PAGE)
            if self.native_stacks:
                footprint += ga_stacks_table_size(slots, PAGE)
            if slots == 0:
                problem = 2
            elif footprint > <size_t>(self.reserve_end - self.bump):
                problem = 3
            elif self.hugepages and slot_size >= LARGE_SLOT:
                # The slot (and so the right-aligned block) ends on a huge
                # page boundary; skipped when the reservation has no room.
                pad = (HUGE_PAGE - <size_t>(<uintptr_t>(self.bump + self.guard_size + slot_size)
                                            % HUGE_PAGE)) % HUGE_PAGE
                if footprint + pad > <size_t>(self.reserve_end - self.bump):
                    pad = 0
        if problem:
            c.exhausted = True
        else:
            # Claim the range now: another thread may grow while this one
            # builds its arena (guard installation releases the GIL).
            place = self.bump + pad
            self.bump += pad + footprint
            self.mapped_bytes += <size_t>slots * slot_size
            self.growing += 1
        pthread_mutex_unlock(&self.lock)
        if problem == 1:
            raise MemoryError(f"the pool reached max_arenas ({self.max_arenas_} arenas)")
        if problem == 2:
            raise MemoryError(
                f"the pool reached max_bytes ({self.max_bytes_} bytes of slots; "
                f"{self.mapped_bytes} mapped, no room for a {slot_size}-byte slot)")
        if problem == 3:
            raise MemoryError("the pool's address space reservation is used up")

        arena = None
        options = self.options
        if options.quarantine is not None and options.quarantine > slots:
            options = options.replace(quarantine=slots)   # the quarantine is per arena
        try:
            arena = new_pooled_arena(place, slot_size, slots, options, _free_hook, <void *>self,
                                     self.native_stacks)
            if self.hugepages and slot_size >= HUGEPAGE_MIN_SLOT:
                _ask_hugepages(&arena.a)
            self._add_arena(arena, cls, slots)
        except BaseException:
            if arena is not None:
                arena.free_hook = NULL
                arena.release()    # the range goes back to PROT_NONE
            pthread_mutex_lock(&self.lock)
            self.mapped_bytes -= <size_t>slots * slot_size
            if self.bump == place + footprint:
                self.bump = place - pad    # nobody claimed after us: give it back
            pthread_mutex_unlock(&self.lock)
            raise
        finally:
            pthread_mutex_lock(&self.lock)
            self.growing -= 1
            finish = self.is_closed and self.growing == 0
            pthread_mutex_unlock(&self.lock)
            if finish:
                self._unmap_reservation()   # close() left it to us
        self.arenas.append(arena)
        return 0

    cdef int _add_arena(self, Arena arena, int cls, uint32_t slots) except -1:
        """Put a new arena in the table and on its class's avail stack."""
        cdef pool_class_t *c = &self.classes[cls]
        cdef pool_arena_t *grown_table
        cdef uint32_t *grown_avail
        cdef uint32_t cap
        cdef int problem = 0
        pthread_mutex_lock(&self.lock)
        if self.is_closed:
            problem = 1
        if not problem and self.narenas == self.cap_table:
            cap = self.cap_table * 2 if self.cap_table else 64
            grown_table = <pool_arena_t *>realloc(self.table, cap * sizeof(pool_arena_t))
            if grown_table == NULL:
                problem = 2
            else:
                self.table = grown_table
                self.cap_table = cap
        if not problem and c.cap_avail < c.narenas + 1:
            # Room for every arena of the class: frees never drop one.
            cap = 2 * (c.narenas + 1) if c.narenas >= 4 else 8
            grown_avail = <uint32_t *>realloc(c.avail, cap * sizeof(uint32_t))
            if grown_avail == NULL:
                problem = 2
            else:
                c.avail = grown_avail
                c.cap_avail = cap
        if not problem:
            # Arenas claimed concurrently may finish out of order: insert
            # sorted (indices of later arenas shift: fix the avail stacks).
            self._insert_sorted(arena, cls)
            # The table's own reference: the cycle collector may clear the
            # `arenas` list before the pool's __dealloc__ walks the table.
            Py_INCREF(arena)
            c.narenas += 1
            c.slots += slots
            if c.slot_size < LARGE_SLOT:
                c.next_slots = _next_slots(slots, c.slot_size)
        pthread_mutex_unlock(&self.lock)
        if problem == 1:
            raise ValueError("operation on a closed guardalloc.Pool (closed while it grew)")
        if problem == 2:
            raise MemoryError("no memory for the pool's arena table")
        return 0

    cdef void _insert_sorted(self, Arena arena, int cls) noexcept nogil:
        cdef uint32_t at = self.narenas, i
        cdef int k
        cdef pool_class_t *c
        while at > 0 and self.table[at - 1].start > arena.a.base:
            at -= 1
        if at < self.narenas:
            i = self.narenas
            while i > at:
                self.table[i] = self.table[i - 1]
                i -= 1
            for k in range(GA_NCLASSES):
                c = &self.classes[k]
                for i in range(c.navail):
                    if c.avail[i] >= at:
                        c.avail[i] += 1
        self.table[at].start = arena.a.base
        self.table[at].end = arena.a.base + arena.a.size
        self.table[at].arena = <void *>arena
        self.table[at].kept = False
        self.table[at].cls = cls
        self.table[at].in_avail = True
        self.narenas += 1
        c = &self.classes[cls]
        c.avail[c.navail] = at
        c.navail += 1

    cdef int _grow_wanted(self) except -1:
        """Pending mode: add an arena to every class that asked for one."""
        cdef int i, n = 0
        cdef int wanted[GA_NCLASSES]
        pthread_mutex_lock(&self.lock)
        self.grow_token.queued = False
        for i in range(GA_NCLASSES):
            if self.classes[i].grow_wanted:
                self.classes[i].grow_wanted = False
                wanted[n] = i
                n += 1
        pthread_mutex_unlock(&self.lock)
        if self.is_closed:
            return 0
        for i in range(n):
            try:
                self._grow(wanted[i])
            except MemoryError:
                pass    # the class is marked exhausted; requests forward
        return 0

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
            slot = self._take(cls, n, zero, raw, where)
            pthread_mutex_unlock(&self.lock)
            if slot >= 0:
                if wants_traces(self.tracebacks):
                    record_trace(&(<Arena>where[0]).a, <uint32_t>slot, False)
                return slot
            if slot == GA_ERR_SYSCALL:
                raise GuardInstallError(errno, f"removing a use-after-free guard failed: "
                                               f"{strerror(errno).decode()}")
            self._grow(cls)

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
        index = self._find(<char *>address) if not self.is_closed else -1
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
            self._grow(cls)

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
        requests answered with NULL), mapped_bytes (slot bytes of all
        arenas), address_space (bytes of the reservation in use),
        reserved, max_bytes, max_arenas, kept_bytes (pages of freed large
        blocks kept resident, see keep_bytes), classes (slot_size -> dict of
        arenas, slots, exhausted)."""
        cdef int i
        cdef uint64_t counts[13]
        cdef uint64_t per_class[GA_NCLASSES][3]
        self._check_open()
        # Copied under the lock, turned into Python objects after it.
        pthread_mutex_lock(&self.lock)
        counts[:] = [self.narenas, self.live, self.live_bytes, self.allocations, self.frees,
                     self.corruptions, self.refused, self.mapped_bytes,
                     <size_t>(self.bump - self.reserve_start),
                     <size_t>(self.reserve_end - self.reserve_start),
                     self.max_bytes_, self.max_arenas_, self.kept_bytes]
        for i in range(GA_NCLASSES):
            per_class[i][0] = self.classes[i].narenas
            per_class[i][1] = self.classes[i].slots
            per_class[i][2] = self.classes[i].exhausted
        pthread_mutex_unlock(&self.lock)
        names = ("arenas", "live", "live_bytes", "allocations", "frees", "corruptions", "refused",
                 "mapped_bytes", "address_space", "reserved", "max_bytes", "max_arenas",
                 "kept_bytes")
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


cdef uint32_t _first_slots(size_t slot_size) noexcept nogil:
    cdef size_t n
    if slot_size >= LARGE_SLOT:
        return 1
    n = FIRST_ARENA // slot_size
    if n < MIN_SLOTS:
        n = MIN_SLOTS
    if n > MAX_FIRST_SLOTS:
        n = MAX_FIRST_SLOTS
    return <uint32_t>n


cdef uint32_t _next_slots(uint32_t slots, size_t slot_size) noexcept nogil:
    cdef size_t n = <size_t>slots * 2
    if n > MAX_ARENA_SLOTS:
        n = MAX_ARENA_SLOTS
    if n * slot_size > MAX_POOLED_ARENA_BYTES:
        n = MAX_POOLED_ARENA_BYTES // slot_size
    if n < slots:
        n = slots
    return <uint32_t>n


def _hex(address, original) -> str:
    """An address for a message: hex when it is one, else as given."""
    return f"{address:#x}" if address is not None else repr(original)


# ---------------------------------------------------------------------------
# Sizing the reservation

def _reservation(max_bytes, guard_pages, max_arenas) -> int:
    """Bytes of address space a pool reserves: every slot costs at most
    guard_pages guard pages on top (1-page slots), every arena one more
    guard at its start."""
    return -(-max_bytes // PAGE) * PAGE * (1 + guard_pages) + max_arenas * guard_pages * PAGE


def _default_max_arenas(max_bytes) -> int:
    """16384, or one per page of max_bytes when fewer (each arena holds at
    least one page of slots, so a pool can never use more)."""
    return max(1, min(DEFAULT_MAX_ARENAS, max_bytes // PAGE))


def _reservation_error(reserve, why, max_bytes, guard_pages, max_arenas):
    left = address_space_left()
    limit = "" if left is None else f"; RLIMIT_AS lets this process map {left:,} more bytes"
    fits = None
    if left is not None:
        fits = fitting_max_bytes(left, guard_pages, max_arenas) or None
    return AddressSpaceError(
        f"cannot reserve {reserve:,} bytes of address space for a pool of max_bytes={max_bytes:,} "
        f"with guard_pages={guard_pages} ({why}{limit})", reserve, fits)


# ---------------------------------------------------------------------------
# The default pool behind guardalloc.alloc()

cdef Pool _default_pool = None
_default_options = {}
_default_lock = threading.Lock()


def configure(**options) -> None:
    """Set the options of the default pool behind :func:`alloc` (those of
    :class:`Pool`: ``max_bytes``, ``guard_pages``, ``uaf``, ...), for
    example ``guardalloc.configure(max_bytes=1 << 30)`` under a tight
    ``RLIMIT_AS``. Takes effect at once: the next :func:`alloc` uses a new
    default pool; buffers from the previous one keep working (each keeps
    its pool alive). ``configure()`` with no options restores the defaults.

    Raises:
        TypeError, ValueError: an unknown option or a bad value (named).
        AddressSpaceError: the new pool's reservation does not fit.
        GuardUnsupportedError: as :class:`Pool`.
    """
    global _default_pool, _default_options
    check_option_names(options, _POOL_OPTIONS, "guardalloc.configure()")
    try:
        pool = Pool(**options)
    except AddressSpaceError as exc:
        raise exc.instead("guardalloc.configure()") from None
    with _default_lock:
        _default_pool = pool
        _default_options = dict(options)


def default_pool() -> Pool:
    """The pool behind :func:`alloc`, created on first use with the options
    of :func:`configure` (defaults: those of :class:`Pool`).

    Raises:
        AddressSpaceError: its reservation does not fit (the message names
            the ``guardalloc.configure(max_bytes=...)`` that would).
    """
    global _default_pool
    if _default_pool is None or _default_pool.is_closed:
        with _default_lock:
            if _default_pool is None or _default_pool.is_closed:
                try:
                    _default_pool = Pool(**_default_options)
                except AddressSpaceError as exc:
                    raise exc.instead("guardalloc.configure() before guardalloc.alloc()") from None
    return _default_pool


def alloc(nbytes, *, zero=True):
    """A guarded :class:`guardalloc.Buffer` of any size (1 byte to 3.5 GiB)
    from the default pool: ``default_pool().alloc(nbytes, zero=zero)``;
    :func:`configure` sets that pool's options.

    Raises:
        TypeError, ValueError, MemoryError: as :meth:`Pool.alloc`.
        AddressSpaceError: as :func:`default_pool`.
    """
    return default_pool().alloc(nbytes, zero=check_bool("zero", zero))

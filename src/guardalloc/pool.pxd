# cython: language_level=3
"""C-level interface of the size-classed pool, for allocator hooks (numpy's
PyDataMem_Handler, PyMem_SetAllocator) to cimport:

    from guardalloc.pool cimport Pool

Every method here is thread-safe (the pool's own lock, not the GIL) and
callable without the GIL. None of them raises: failures return NULL / -1.
The state and internals below the contract are pool.pyx's own.
"""

from libc.stdint cimport uint32_t, uint64_t

from guardalloc._core cimport ga_arena_t, ga_damage_t, ga_stack_t
from guardalloc.arena cimport Arena

cdef extern from "_c/classes.h" nogil:
    enum:
        GA_EXACT_CLASSES
        GA_NCLASSES
    const size_t GA_MAX_CLASS_PAGES
    int ga_class_of(size_t nbytes, size_t page)
    size_t ga_class_pages(int cls)

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *mutex, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *mutex)
    int pthread_mutex_lock(pthread_mutex_t *mutex)
    int pthread_mutex_unlock(pthread_mutex_t *mutex)

# How the C methods grow a full size class (Pool(grow=...)).
cdef enum:
    GROW_SYNC = 0       # take the GIL and add an arena now
    GROW_PENDING = 1    # fail now; Py_AddPendingCall adds one later
    GROW_NEVER = 2      # only what prepare() made


# One arena of the pool, in address order: arenas are placed by a bump
# pointer, but concurrent growers may finish out of order, so insertion keeps
# the table sorted and shifts the indices of later arenas.
cdef struct pool_arena_t:
    char *start
    char *end
    void *arena          # borrowed: Pool.arenas holds the reference
    int cls
    bint in_avail        # listed on its class's avail stack
    bint kept            # large: its freed block's pages stay resident (keep_bytes)


# What a queued Py_AddPendingCall holds instead of the Pool itself (whose
# reference count a hook without the GIL cannot touch): the pool nulls
# `pool` when it dies first, and the callback then frees the token.
cdef struct grow_token_t:
    void *pool
    bint queued


cdef struct pool_class_t:
    size_t slot_size
    uint32_t narenas
    uint32_t slots       # slots in all its arenas
    uint32_t next_slots  # slot count of the next arena
    uint32_t *avail      # arenas (table indices) that may have a free slot
    uint32_t navail
    uint32_t cap_avail
    uint32_t live        # live blocks (pending mode grows ahead of demand)
    bint grow_wanted     # pending mode: the main thread should add an arena
    bint exhausted       # a limit stopped its growth


cdef class Pool:
    # malloc/calloc semantics; NULL when the pool cannot serve the request
    # (limit reached, out of memory): the caller then fails or forwards.
    # gil: the caller holds the GIL (an allocator hook of the MEM or OBJ
    # domain); a pending-mode pool then adds an arena to a full class at
    # once, running no Python code, with the collector paused and the
    # caller's exception kept; requests made meanwhile are not grown for.
    cdef void *malloc(self, size_t nbytes, bint gil=*) noexcept nogil
    cdef void *calloc(self, size_t count, size_t size, bint gil=*) noexcept nogil
    # realloc semantics for a pointer this pool owns (NULL ptr: malloc); the
    # old block's free is reported in *damage / the result as by free_ptr
    # (damage.damaged > 0: its slack was overwritten).
    cdef void *realloc(self, void *ptr, size_t nbytes, ga_damage_t *damage, bint gil=*) noexcept nogil
    # A core result code: GA_OK, or GA_ERR_CORRUPT (freed; *damage says what
    # was overwritten) or GA_ERR_SYSCALL (freed; its UAF guard failed); any
    # other code: ptr is not a live C block of this pool and nothing changed
    # (the caller decides: forward it to another allocator, or report).
    cdef int free_ptr(self, void *ptr, ga_damage_t *damage) noexcept nogil
    # Whether ptr lies in one of this pool's mappings (cheap, lock-free).
    cdef bint owns_ptr(self, const void *ptr) noexcept nogil
    # Requested size of the live block at ptr, 0 if not a live block.
    cdef size_t size_of(self, const void *ptr) noexcept nogil
    # The arena whose mapping holds ptr, or NULL. The arena lives as long as
    # the pool; its slot of ptr is the caller's while ptr is live.
    cdef ga_arena_t *arena_of(self, const void *ptr) noexcept nogil

    # -- state (pool.pyx) -------------------------------------------------
    cdef pthread_mutex_t lock
    cdef bint lock_ready
    cdef bint lock_registered
    cdef char *reserve_start
    cdef char *reserve_end
    cdef char *bump
    cdef pool_arena_t *table
    cdef uint32_t narenas
    cdef uint32_t cap_table
    cdef pool_class_t classes[GA_NCLASSES]
    cdef size_t mapped_bytes       # slot bytes of all arenas
    cdef size_t max_bytes_
    cdef size_t keep_bytes_        # budget of freed large blocks' resident pages
    cdef size_t kept_bytes         # resident pages of freed large blocks now
    cdef bint hugepages            # MADV_HUGEPAGE on large blocks (numpy's policy)
    cdef uint32_t max_arenas_
    cdef size_t guard_size
    cdef int grow_mode
    cdef grow_token_t *grow_token   # pending mode
    cdef bint is_closed
    cdef uint32_t growing          # _grow calls between claim and insert
    cdef bint reservation_mapped
    cdef uint64_t live
    cdef uint64_t live_bytes
    cdef uint64_t allocations
    cdef uint64_t frees
    cdef uint64_t corruptions
    cdef uint64_t refused           # C requests that returned NULL
    cdef uint64_t refused_growing   # of those: their class awaited a pending arena
    cdef list arenas                # owns the Arena objects
    cdef readonly str backend
    cdef readonly int guard_pages
    cdef readonly str align
    cdef readonly size_t alignment
    cdef readonly bint uaf
    cdef readonly str on_fault
    cdef readonly object options      # GuardOptions of every arena
    cdef object tracebacks            # options.tracebacks, read on every alloc
    cdef readonly bint native_stacks  # the C methods record native stacks per slot
    cdef const char *owner            # ga_arena_t.owner of its arenas (a static string)
    cdef object __weakref__

    # What reports call the pool's arenas' maker, those made already too
    # (owner: a static string, e.g. "the guardalloc numpy handler's Pool").
    cdef void set_owner(self, const char *owner) noexcept

    # -- internals (pool.pyx) ---------------------------------------------
    cdef void _release(self) noexcept
    cdef void _unmap_reservation(self) noexcept nogil
    cdef int _check_open(self) except -1
    cdef int _class_for(self, nbytes) except -1
    cdef Arena _arena_at(self, size_t address)
    cdef long _py_take(self, object nbytes, bint zero, bint raw, void **where) except? -1

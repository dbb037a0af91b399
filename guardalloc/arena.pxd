# cython: language_level=3
"""C-level interface of the arena, for other Cython modules to cimport.

    from guardalloc.arena cimport Arena, GA_OK

The ``Arena._alloc_slot`` / ``Arena._free_address`` pair is the allocation
core: typed C data only, no Python objects, callable without the GIL. They are
not locked: callers serialize (the GIL for Python users, a lock for pools and
allocator hooks).
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from guardalloc._layout cimport *


# Result codes of the C-level core (negative: failure).
cdef enum:
    GA_OK = 0
    GA_ERR_FULL = -1        # no free slot
    GA_ERR_SYSCALL = -2     # a guard syscall failed; errno says why
    GA_ERR_FOREIGN = -3     # address outside this arena
    GA_ERR_INVALID = -4     # not the start of a live buffer
    GA_ERR_DOUBLE = -5      # the buffer was already freed
    GA_ERR_CORRUPT = -6     # freed, but the slack pattern was damaged
    GA_ERR_NOT_FREE = -7    # the requested slot is not free


cdef struct ga_corruption_t:
    size_t first_offset     # from the buffer's start
    size_t damaged          # bytes that differ from the pattern


cdef int install_guards(char *first, size_t stride, size_t count,
                        size_t guard_size, int backend, bint batched,
                        uint64_t *syscalls) noexcept nogil


cdef int check_guard_options(int guard_pages, str backend, str align, size_t alignment,
                             str on_fault, bint uaf, object tracebacks) except -1

cdef size_t anonymous_mapping_size(size_t slot_size, uint32_t nslots, size_t guard_size,
                                   bint uaf) noexcept nogil


cdef class Buffer


# Set by a Pool on the arenas it owns: frees of their Buffers go through the
# pool (its lock, its bookkeeping) instead of straight to _free_address.
ctypedef int (*ga_free_hook_t)(void *ctx, char *address, ga_corruption_t *damage) noexcept nogil


cdef class Arena:
    cdef ga_arena_t a
    cdef uint32_t *free_stack
    cdef size_t mapped_size   # a.size, plus the bookkeeping of anonymous arenas
    cdef uint32_t free_top
    cdef uint32_t *quarantine_ring
    cdef uint32_t quarantine_head
    cdef uint32_t quarantine_len
    cdef uint32_t quarantine_limit
    cdef uint64_t guard_syscalls
    cdef uint64_t uaf_syscalls
    cdef uint64_t allocations
    cdef Py_ssize_t exports
    cdef bint is_closed
    cdef bint registered
    cdef bint batched
    cdef int fd_
    cdef bint backing_fixed    # the backing file cannot shrink (sealed memfd)
    cdef object tracebacks
    cdef readonly object file
    cdef readonly str backend
    cdef readonly int guard_pages
    cdef readonly str align
    cdef readonly str on_fault
    # Pool ownership (NULL/False for a standalone arena): a pooled arena is
    # mapped at `placement` inside the pool's reservation, gives the range
    # back to it (PROT_NONE) when released and refuses alloc()/close().
    cdef char *placement
    cdef ga_free_hook_t free_hook
    cdef void *free_hook_ctx
    cdef bint pooled

    cdef _map(self, file, bint shared)
    cdef _allocate_bookkeeping(self)
    cdef _install_all_guards(self)
    cdef void _release(self) noexcept
    cdef int _guard_data(self, uint32_t slot, bint install) noexcept nogil
    cdef void _push_free(self, uint32_t slot) noexcept nogil
    cdef long _take_slot(self) noexcept nogil
    cdef int _alloc_slot(self, size_t nbytes, bint zero, bint raw, long want) noexcept nogil
    cdef int _free_address(self, char *address, ga_corruption_t *damage) noexcept nogil
    cdef int _free_through_owner(self, char *address, ga_corruption_t *damage) noexcept nogil
    cdef int _check_open(self) except -1
    cdef int _check_backing(self) except -1
    cdef bint _wants_traces(self)
    cdef int _record_trace(self, uint32_t slot, bint at_free) except -1
    cdef int _start_alloc(self, Py_ssize_t nbytes, bint zero, bint raw, slot) except -1
    cdef _free_buffer(self, Buffer buf)
    cdef object _raise_free_error(self, int code, size_t address, ga_corruption_t *damage, object what)
    cdef object _slot_of(self, size_t address)


cdef class Buffer:
    cdef Arena owner
    cdef char *ptr
    cdef Py_ssize_t nbytes_
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t exports
    cdef uint32_t slot_
    cdef bint is_freed
    # The pool of a pooled buffer: kept alive as long as the buffer (the
    # pool owns the arena; nothing points back, so no reference cycle).
    cdef object pool

    cdef int _check(self) except -1
    cdef object address_or_none(self)

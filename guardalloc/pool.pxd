# cython: language_level=3
"""C-level interface of the size-classed pool, for allocator hooks (numpy's
PyDataMem_Handler, PyMem_SetAllocator) to cimport:

    from guardalloc.pool cimport Pool

Every method here is thread-safe (the pool's own lock, not the GIL) and
callable without the GIL. None of them raises: failures return NULL / -1.
"""


cdef class Pool:
    # malloc/calloc semantics; NULL when the pool cannot serve the request
    # (limit reached, out of memory): the caller then fails or forwards.
    cdef void *malloc(self, size_t nbytes) noexcept nogil
    cdef void *calloc(self, size_t count, size_t size) noexcept nogil
    # realloc semantics for a pointer this pool owns (NULL ptr: malloc).
    cdef void *realloc(self, void *ptr, size_t nbytes) noexcept nogil
    # 0 when freed; -1 when ptr is not a live block of this pool (the caller
    # decides: forward it to another allocator, or report an invalid free).
    cdef int free_ptr(self, void *ptr) noexcept nogil
    # Whether ptr lies in one of this pool's mappings (cheap, lock-free).
    cdef bint owns(self, const void *ptr) noexcept nogil
    # Requested size of the live block at ptr, 0 if not a live block.
    cdef size_t block_size(self, const void *ptr) noexcept nogil

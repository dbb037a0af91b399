# cython: language_level=3
from guardalloc._core cimport ga_arena_t

# Make an arena visible to the fault reporter / hide it before unmapping.
cdef int register_arena(ga_arena_t *arena) except -1
cdef void unregister_arena(ga_arena_t *arena) noexcept

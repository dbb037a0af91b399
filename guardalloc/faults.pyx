# cython: language_level=3
"""The fault reporter: knows every live arena, so that a SIGSEGV inside one
can be explained (the handler itself lives in ``_c/faults.c``)."""

from guardalloc._layout cimport ga_arena_t

cdef extern from "_c/faults.h":
    int ga_register_arena(ga_arena_t *arena)
    void ga_unregister_arena(ga_arena_t *arena)
    size_t ga_registered_arenas()


cdef int register_arena(ga_arena_t *arena) except -1:
    if ga_register_arena(arena) != 0:
        raise MemoryError("guardalloc: too many live arenas (262144); close some")
    return 0


cdef void unregister_arena(ga_arena_t *arena) noexcept:
    ga_unregister_arena(arena)


def registered_arenas() -> int:
    """How many arenas the fault reporter knows about (open arenas)."""
    return ga_registered_arenas()

# cython: language_level=3
"""Allocation and free tracebacks: compact Python frames kept per slot for
the fault handler (``ga_arena_t.pystacks``, ``_c/pyframes.h``)."""

from libc.stdint cimport uint32_t

from guardalloc._core cimport ga_arena_t

# Whether an allocator whose own choice is `choice` (True, False or None:
# the process default) records tracebacks. noexcept: it cannot raise, and
# without it Cython checks PyErr_Occurred() after every call (twice per
# Arena alloc/free cycle).
cdef bint wants_traces(object choice) noexcept
# The process default (enable_tracebacks()), readable without the GIL.
cdef bint tracebacks_default() noexcept nogil
# Record the caller's Python frames as the slot's allocation (or free)
# entry; recording an allocation drops the slot's stale free traceback.
# MemoryError when the arena's first traceback finds no memory for its table.
cdef int record_trace(ga_arena_t *a, uint32_t slot, bint at_free) except -1
# Drop one slot's tracebacks (no GIL needed: the caller owns the slot).
cdef void forget_traces(ga_arena_t *a, uint32_t slot) noexcept nogil
# Free the arena's table of Python frames.
cdef void release_traces(ga_arena_t *a) noexcept

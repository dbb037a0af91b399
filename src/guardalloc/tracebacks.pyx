# cython: language_level=3, boundscheck=False, wraparound=False
"""Allocation and free tracebacks for fault reports.

Off unless an allocator asks for them (``tracebacks=True``) or
:func:`enable_tracebacks` turns them on for every allocator that does not
choose for itself. A block's allocation and free record the innermost 16
Python frames compactly (code object, instruction, entry flag: about 60 ns,
``_c/pyframes.h``) in a per-slot table the arena gets at its first
traceback; the fault handler names their functions, files and lines when it
reports.
"""

import warnings

from libc.stdint cimport uint32_t

from guardalloc._core cimport (
    ga_arena_t, ga_pystacks_ensure, ga_pystacks_forget, ga_pystacks_record, ga_pystacks_release,
)


cdef bint _default = False


def enable_tracebacks() -> None:
    """Record allocation and free tracebacks in every allocator that does not
    choose for itself (``tracebacks=None``). Costs about 60 ns per
    allocation and free, and 528 bytes of address space per slot of an arena
    that records them."""
    global _default
    _default = True


def disable_tracebacks() -> None:
    """Stop recording tracebacks where allocators do not choose for themselves."""
    global _default
    _default = False


def tracebacks_enabled() -> bool:
    """Whether allocators record tracebacks by default."""
    return _default


def set_tracebacks(enabled) -> None:
    """Deprecated: use :func:`enable_tracebacks` / :func:`disable_tracebacks`.

    Raises:
        TypeError: enabled is not True or False.
    """
    warnings.warn("guardalloc.set_tracebacks() is deprecated: use enable_tracebacks() or "
                  "disable_tracebacks()", DeprecationWarning, stacklevel=2)
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, not {enabled!r}")
    global _default
    _default = enabled


def get_tracebacks() -> bool:
    """Deprecated: use :func:`tracebacks_enabled`."""
    warnings.warn("guardalloc.get_tracebacks() is deprecated: use tracebacks_enabled()",
                  DeprecationWarning, stacklevel=2)
    return _default


cdef bint tracebacks_default() noexcept nogil:
    return _default


cdef bint wants_traces(object choice) noexcept:
    return _default if choice is None else choice is True


cdef int record_trace(ga_arena_t *a, uint32_t slot, bint at_free) except -1:
    if ga_pystacks_ensure(a) != 0:
        raise MemoryError(f"no memory for the Python frames of {a.nslots} slots")
    ga_pystacks_record(a, slot, at_free)
    return 0


cdef void forget_traces(ga_arena_t *a, uint32_t slot) noexcept nogil:
    ga_pystacks_forget(a, slot)


cdef void release_traces(ga_arena_t *a) noexcept:
    ga_pystacks_release(a)

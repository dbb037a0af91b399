# cython: language_level=3
"""The C-level contract of Arena and Buffer, for the pool to cimport.

    from guardalloc.arena cimport Arena, Buffer, new_pooled_arena, make_buffer

An Arena is a Python object over one ``ga_arena_t`` (``arena.a``), which the
C core (``_c/core.h``) allocates from and frees into. The pool builds its
arenas with :func:`new_pooled_arena`, calls the core on ``arena.a`` under its
own lock, and routes frees of its Buffers through its hook.
"""

from cpython.long cimport PyLong_AsLongAndOverflow
from libc.stdint cimport uint32_t

from guardalloc._core cimport ga_arena_t, ga_damage_t

# A pooled arena's frees go through its pool (its lock, its bookkeeping).
ctypedef int (*ga_free_hook_t)(void *ctx, char *address, int raw_only,
                               ga_damage_t *damage) noexcept nogil


cdef class Buffer


cdef class Arena:
    cdef ga_arena_t a
    cdef size_t mapped_size   # bytes mapped at a.base (bookkeeping included)
    cdef void *heap_tables    # a file-backed arena's bookkeeping (calloc)
    cdef Py_ssize_t exports
    cdef bint is_closed
    cdef bint registered
    cdef int fd_
    cdef bint backing_fixed   # the backing file cannot shrink (sealed memfd)
    cdef readonly object options      # GuardOptions
    cdef readonly object tracebacks   # True, False or None (the default)
    cdef readonly object file
    cdef readonly str backend
    cdef readonly int guard_pages
    cdef readonly str align
    cdef readonly str on_fault
    # Pool ownership (NULL for a standalone arena): a pooled arena is mapped
    # at `placement` inside its pool's reservation and hands the range back
    # (PROT_NONE) when released.
    cdef char *placement
    # Bytes of the per-slot native stack table after the bookkeeping (0: the
    # arena records none); set by new_pooled_arena(native_stacks=True).
    cdef size_t stacks_size
    # Bytes of the per-slot Python frame table before it (0: none in the
    # mapping; a traceback then gets one on the heap): an anonymous Arena
    # that wants tracebacks when it is made.
    cdef size_t pystacks_size
    cdef ga_free_hook_t free_hook
    cdef void *free_hook_ctx

    cdef void release(self) noexcept
    cdef int check_backing(self) except -1
    cdef int _stat_backing(self) except -1
    cdef int free_block(self, char *address, bint raw_only, object what) except -1
    cdef _configure(self, size_t slot_size, uint32_t slots, object options, bint batch)
    cdef int _build(self, file, bint shared, str requested, str resolved=*) except -1
    cdef int _map(self, file, bint shared) except -1
    cdef int _install_guards(self, bint keep_gil=*) except -1
    cdef int _check_open(self) except -1
    cdef long _start_alloc(self, nbytes, bint zero, bint raw, slot) except -1
    cdef int _free_buffer(self, Buffer buf) except -1


cdef class Buffer:
    cdef Arena owner
    cdef char *ptr
    cdef Py_ssize_t nbytes_
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t exports
    # 4 bytes beside is_freed keep the object at 80 bytes, which the
    # freelist's memset in tp_new clears with a few stores instead of a
    # rep stos (measurably slower per alloc). Meaningless while owner is None.
    cdef uint32_t slot_
    cdef bint is_freed
    # The pool of a pooled buffer: kept alive as long as the buffer (the
    # pool owns the arena; nothing points back, so no reference cycle).
    cdef readonly object pool

    cdef int _check(self) except -1
    cdef object address_or_none(self)
    cdef Py_ssize_t _index(self, index) except? -1
    cdef Py_ssize_t _search(self, sub, start, end, bint counting, str what) except -2
    cdef object _equals(self, other)


cdef extern from *:
    """
    #if PY_VERSION_HEX < 0x030B0000
    #include <longintrepr.h>
    #endif
    /* The value of an exact int of at most one digit (|v| < 2**30), read in
     * place: PyLong_AsLongAndOverflow is a call through the PLT, a few ns
     * of an alloc/free cycle. Returns 0 for a longer int. */
    static inline int ga_small_int(PyObject *v, long *value)
    {
    #if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Long_IsCompact((PyLongObject *)v))
            return 0;
        *value = (long)PyUnstable_Long_CompactValue((PyLongObject *)v);
    #else
        Py_ssize_t size = Py_SIZE(v);
        if (size < -1 || size > 1)
            return 0;
        *value = (long)size * (long)((PyLongObject *)v)->ob_digit[0];
    #endif
        return 1;
    }
    """
    bint ga_small_int(object v, long *value)


# A size argument in 1..largest: C comparisons for the common case (an int
# in range), size_arg_error's TypeError/ValueError naming it for the rest
# (accepted: how the message describes the range, or None).
cdef size_t size_arg_error(str name, value, size_t largest, str accepted) except 0

cdef inline size_t size_arg(str name, value, size_t largest, str accepted) except 0:
    cdef int overflow = 0
    cdef long n
    if type(value) is int:
        if not ga_small_int(value, &n):
            n = PyLong_AsLongAndOverflow(value, &overflow)
        if not overflow and n >= 1 and <size_t>n <= largest:
            return <size_t>n
    return size_arg_error(name, value, largest, accepted)

# A pooled arena at `placement`, its frees routed through hook(ctx, ...);
# with native_stacks, a per-slot native stack table (a.stacks) in its mapping.
# resolved: the backend already chosen (the pool's); then the build runs no
# Python code and keeps the GIL (it may run inside an allocator hook), and a
# guard failure raises MemoryError, with no fallback. owner: what reports
# call the arena's maker (a static string, ga_arena_t.owner).
cdef Arena new_pooled_arena(char *placement, size_t slot_size, unsigned int slots,
                            object options, ga_free_hook_t hook, void *ctx,
                            bint native_stacks=*, str resolved=*, const char *owner=*)

# The Buffer object over a live slot of arena (pool: the pool that owns it).
cdef Buffer make_buffer(Arena arena, long slot, object pool)

# Raise the exception for a core result code of freeing `address`, described
# as `what` in the message (the one mapping from codes to exceptions).
cdef int raise_free_error(Arena arena, int code, size_t address, ga_damage_t *damage,
                          object what) except -1

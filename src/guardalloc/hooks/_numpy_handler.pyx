# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C side of :mod:`guardalloc.numpy`: a NEP 49 ``PyDataMem_Handler``
whose memory comes from a :class:`guardalloc.Pool`.

Nothing here is compiled against numpy. The handler struct is declared in
``_c/numpy_abi.h`` (numpy's ABI since 1.22) and ``PyDataMem_SetHandler`` /
``PyDataMem_GetHandler`` are taken at run time from the C-API table that
numpy exports as the ``_ARRAY_API`` capsule, after checking numpy's ABI and
C-API feature versions.

The four allocator functions run without the GIL (numpy may call them from
any thread; the pool has its own lock). They take the GIL only to report a
bad free or a damaged slack pattern, through ``sys.unraisablehook``
(PyErr_WriteUnraisable), since a ``free`` has no way to raise.

Stacks for fault reports: the pool records the native stack of every block
it serves and frees (``native_stacks``); with tracebacks (``tracebacks=True``,
or ``None`` after :func:`guardalloc.enable_tracebacks`) a call made with the
GIL held -- numpy holds it for nearly every allocation -- also records the
Python traceback of the slot (calls made without it record native stacks
only).
"""

import sys

cimport cython
from cpython.exc cimport PyErr_Fetch, PyErr_Restore, PyErr_SetObject, PyErr_WriteUnraisable
from cpython.mem cimport PyMem_RawCalloc
from cpython.pycapsule cimport (
    PyCapsule_CheckExact, PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New,
)
from cpython.ref cimport Py_INCREF, PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport realloc as c_realloc
from libc.string cimport memcpy, memset, strncpy

from guardalloc._core cimport (
    GA_ERR_CORRUPT, GA_ERR_SYSCALL, GA_OK, ga_arena_t, ga_damage_t, ga_live_slot_at, ga_page_size,
    ga_stacks_skip_library,
)
from guardalloc.tracebacks cimport forget_traces, record_trace, tracebacks_default
from guardalloc.pool cimport (
    GA_MAX_CLASS_PAGES, Pool, pthread_mutex_init, pthread_mutex_lock, pthread_mutex_t,
    pthread_mutex_unlock,
)

from guardalloc.arena import _address
from guardalloc.errors import CorruptionError, ForeignBufferError, InvalidFreeError
from guardalloc.stats import HandlerStats, PoolStats



cdef extern from "_c/locks.h" nogil:
    int GA_LOCK_FRONT
    int ga_fork_lock_add(pthread_mutex_t *m, int level)
    void ga_fork_lock_remove(pthread_mutex_t *m)

cdef extern from "_c/numpy_abi.h":
    ctypedef struct ga_np_allocator_t:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil

    ctypedef struct ga_np_handler_t:
        char name[127]
        uint8_t version
        ga_np_allocator_t allocator

    const char *GA_NP_CAPSULE_NAME
    const int GA_NP_HANDLER_VERSION
    const int GA_NP_API_GET_ABI_VERSION
    const int GA_NP_API_GET_FEATURE_VERSION
    const int GA_NP_API_SET_HANDLER
    const int GA_NP_API_GET_HANDLER
    const unsigned int GA_NP_FEATURE_1_22

    void ga_np_count(uint64_t *counter) nogil
    uint64_t ga_np_read(uint64_t *counter) nogil


cdef extern from "Python.h":
    int PyGILState_Check() nogil


ctypedef unsigned int (*version_fn)() noexcept
ctypedef object (*set_handler_fn)(object handler)
ctypedef object (*get_handler_fn)()

#: The name every guardalloc handler carries (``get_handler_name(arr)``).
HANDLER_NAME = "guardalloc"
# numpy ABI majors whose handler layout and table indices were checked:
# 0x01000009 (numpy 1.x) and 0x02000000 (numpy 2.x).
SUPPORTED_ABI_MAJORS = (1, 2)

cdef size_t PAGE = ga_page_size()
# Native stacks start at numpy's call: this module's frames are left out.
ga_stacks_skip_library(<const void *>_np_malloc)
# The largest block a pool size class holds; larger arrays go to numpy's own
# allocator unless the handler is strict.
cdef size_t MAX_BLOCK = GA_MAX_CLASS_PAGES * PAGE

# numpy's functions, filled by load_numpy_api().
cdef void *_set_handler_ptr = NULL
cdef void *_get_handler_ptr = NULL
cdef unsigned int _abi_version = 0
cdef unsigned int _feature_version = 0

# Every handler ever made, by the address of its C struct. Handlers are never
# freed: each array keeps a reference to its handler's capsule and frees its
# data through the struct, long after the guarded() block that made it.
_handlers = {}

# Counter indices.
cdef enum:
    C_MALLOC = 0
    C_CALLOC
    C_REALLOC
    C_FREE
    C_FALLBACK      # served by numpy's default allocator
    C_FAILED        # NULL returned to numpy (it raises MemoryError)
    C_BAD_FREE      # free/realloc of a pointer that is not a live block
    C_CORRUPT       # slack pattern damaged when the block was freed
    C_OVERSIZE      # larger than the largest class: served by numpy's allocator
    N_COUNTERS

# Kinds of trouble reported through sys.unraisablehook.
cdef enum:
    BAD_FOREIGN = 1
    BAD_NOT_LIVE = 2
    BAD_SLACK = 3


def load_numpy_api(api_capsule):
    """Take PyDataMem_SetHandler/GetHandler from numpy's ``_ARRAY_API`` capsule.

    Returns ``(abi_version, feature_version)``.

    Raises:
        TypeError: api_capsule is not a capsule.
        ImportError: numpy's ABI major version is not one guardalloc knows,
            or its C API predates NEP 49 (numpy < 1.22).
    """
    global _set_handler_ptr, _get_handler_ptr, _abi_version, _feature_version
    cdef void **table
    if not PyCapsule_CheckExact(api_capsule):
        raise TypeError(f"numpy's _ARRAY_API is not a capsule but {type(api_capsule).__name__}")
    table = <void **>PyCapsule_GetPointer(api_capsule, NULL)
    abi = (<version_fn>table[GA_NP_API_GET_ABI_VERSION])()
    if abi >> 24 not in SUPPORTED_ABI_MAJORS:
        raise ImportError(
            f"guardalloc.numpy knows numpy's C ABI versions 1.x and 2.x; this numpy has ABI "
            f"{abi:#010x}, whose PyDataMem_Handler layout guardalloc has not been checked against")
    feature = (<version_fn>table[GA_NP_API_GET_FEATURE_VERSION])()
    if feature < GA_NP_FEATURE_1_22:
        raise ImportError(
            f"guardalloc.numpy needs numpy >= 1.22 (NEP 49 memory handlers); this numpy's "
            f"C API is version {feature:#x}")
    _set_handler_ptr = table[GA_NP_API_SET_HANDLER]
    _get_handler_ptr = table[GA_NP_API_GET_HANDLER]
    _abi_version = abi
    _feature_version = feature
    return abi, feature


cdef int _check_loaded() except -1:
    if _set_handler_ptr == NULL:
        raise RuntimeError("numpy's C API is not loaded: import guardalloc.numpy")
    return 0


def set_handler(capsule):
    """Make ``capsule`` numpy's handler in the current context (None: numpy's
    default) and return the previous one, as PyDataMem_SetHandler does.

    Raises:
        TypeError: capsule is not a ``mem_handler`` capsule.
    """
    _check_loaded()
    if capsule is not None and not PyCapsule_IsValid(capsule, GA_NP_CAPSULE_NAME):
        raise TypeError(f"expected a 'mem_handler' capsule or None, not {capsule!r}")
    return (<set_handler_fn>_set_handler_ptr)(capsule)


def get_handler():
    """numpy's handler capsule in the current context (PyDataMem_GetHandler)."""
    _check_loaded()
    return (<get_handler_fn>_get_handler_ptr)()


# ---------------------------------------------------------------------------
# Handler

@cython.auto_pickle(False)
@cython.final
cdef class Handler:
    """A ``PyDataMem_Handler`` named "guardalloc", backed by one Pool.

    Made by :func:`guardalloc.numpy.handler`; lives as long as the process.
    """

    cdef ga_np_handler_t *c
    cdef readonly object capsule
    # Not exposed: closing it would unmap the data of live arrays.
    cdef Pool pool
    cdef readonly dict options
    cdef size_t alignment_
    # numpy's default handler: serves oversize requests (unless strict) and,
    # with fallback, what the pool refuses; NULL when neither applies.
    cdef ga_np_handler_t *numpy_handler
    cdef object numpy_capsule
    cdef bint fallback_
    cdef bint strict_
    # Python tracebacks per slot: 1 record, 0 never, -1 follow
    # guardalloc.enable_tracebacks().
    cdef int traces
    cdef uint64_t counters[N_COUNTERS]
    cdef size_t largest_oversize   # a statistic: a lost update is harmless
    # The live oversize blocks (numpy's), so that a free of any other
    # foreign pointer is still reported rather than handed to numpy's free.
    cdef pthread_mutex_t big_lock
    cdef bint big_lock_in_fork_table   # held across fork() (_c/locks.h)
    cdef void **big
    cdef size_t nbig, capbig

    def __init__(self):
        raise TypeError("guardalloc.numpy handlers are made by guardalloc.numpy.handler()")

    def __dealloc__(self):
        if self.big_lock_in_fork_table:
            ga_fork_lock_remove(&self.big_lock)

    cdef int _check(self) except -1:
        if self.c == NULL:
            raise ValueError("this guardalloc.numpy Handler was not made by guardalloc.numpy.handler() "
                             "(Handler.__new__ alone)")
        return 0

    @property
    def alignment(self) -> int:
        """Alignment of every array's data (1: byte-exact)."""
        self._check()
        return self.alignment_

    @property
    def fallback(self) -> bool:
        """Whether requests the pool refuses go to numpy's default allocator."""
        self._check()
        return self.fallback_

    @property
    def strict(self) -> bool:
        """Whether requests larger than the pool's largest block fail
        (MemoryError in numpy) instead of going to numpy's allocator."""
        self._check()
        return self.strict_

    @property
    def name(self) -> str:
        self._check()
        return self.c.name.decode()

    def owns(self, address) -> bool:
        """Whether address lies in this handler's pool (guards included).

        Raises:
            TypeError: address is not an integer.
        """
        self._check()
        return self.pool.owns(address)

    def block_size(self, address) -> int:
        """Requested size of the live block starting at address, 0 if none.

        Raises:
            TypeError: address is not an integer.
        """
        self._check()
        return self.pool.block_size(address)

    def pool_stats(self) -> PoolStats:
        """:meth:`guardalloc.Pool.stats` of the pool behind the handler."""
        self._check()
        return self.pool.stats()

    def stats(self) -> HandlerStats:
        """Counts since the handler was made, as a
        :class:`guardalloc.stats.HandlerStats` (attributes, and keys as in a
        dict): malloc, calloc, realloc, free,
        fallback (served by numpy's allocator), failed (NULL returned),
        bad_free (free or realloc of a pointer that is no live block),
        corrupt (damaged slack found on free or realloc), oversize
        (requests larger than the pool's largest block, served unguarded by
        numpy's allocator), largest_oversize (bytes of the largest of
        those), oversize_live (those still allocated)."""
        self._check()
        names = ("malloc", "calloc", "realloc", "free", "fallback", "failed", "bad_free", "corrupt",
                 "oversize")
        result = {name: ga_np_read(&self.counters[i]) for i, name in enumerate(names)}
        return HandlerStats(**result, largest_oversize=self.largest_oversize, oversize_live=self.nbig)

    def __repr__(self):
        if self.c == NULL:
            return "<guardalloc.numpy handler (not made by guardalloc.numpy.handler())>"
        return (f"<guardalloc.numpy handler {self.c.name.decode()!r}, alignment {self.alignment_}, "
                f"fallback {self.fallback_}, strict {self.strict_}, options {self.options!r}>")


def max_block() -> int:
    """Bytes of the largest block a handler's pool serves; larger arrays
    go to numpy's allocator (or fail, for a strict handler)."""
    return MAX_BLOCK


def make_handler(Pool pool, numpy_capsule, dict options, bint fallback=False, bint strict=False,
                 tracebacks=None):
    """A new Handler over pool, registered for life.

    ``tracebacks``: True records the Python traceback of each allocation
    and free made with the GIL held, False never, None follows
    :func:`guardalloc.enable_tracebacks`.

    ``numpy_capsule``: numpy's default handler capsule, or None (then
    ``fallback`` must be False and ``strict`` True). With ``fallback``, it
    serves what the pool refuses; unless ``strict``, requests larger than
    the pool's largest block.

    Raises:
        TypeError: numpy_capsule is not a version-1 handler capsule.
        ValueError: numpy_capsule is None while a request may need it.
    """
    cdef Handler h = Handler.__new__(Handler)
    cdef ga_np_handler_t *default = NULL
    cdef ga_np_handler_t *c
    if numpy_capsule is not None:
        if not PyCapsule_IsValid(numpy_capsule, GA_NP_CAPSULE_NAME):
            raise TypeError(f"numpy_capsule must be a 'mem_handler' capsule, not {numpy_capsule!r}")
        default = <ga_np_handler_t *>PyCapsule_GetPointer(numpy_capsule, GA_NP_CAPSULE_NAME)
        if default.version != GA_NP_HANDLER_VERSION:
            raise TypeError(f"numpy's handler has version {default.version}, not {GA_NP_HANDLER_VERSION}")
    elif fallback or not strict:
        raise ValueError("numpy_capsule is needed unless fallback=False and strict=True")
    c = <ga_np_handler_t *>PyMem_RawCalloc(1, sizeof(ga_np_handler_t))
    if c == NULL:
        raise MemoryError("no memory for a numpy handler")
    if pthread_mutex_init(&h.big_lock, NULL) != 0:
        raise MemoryError("cannot initialise a numpy handler's mutex")
    # Held while realloc (maybe the native heap) runs: the outer level of the
    # lock order, taken around fork() so that a child never inherits it held.
    if ga_fork_lock_add(&h.big_lock, GA_LOCK_FRONT) != 0:
        raise MemoryError("no memory to hold a numpy handler's mutex across fork()")
    h.big_lock_in_fork_table = True
    strncpy(c.name, HANDLER_NAME.encode(), 126)
    c.version = GA_NP_HANDLER_VERSION
    c.allocator.ctx = <void *>h
    c.allocator.malloc = _np_malloc
    c.allocator.calloc = _np_calloc
    c.allocator.realloc = _np_realloc
    c.allocator.free = _np_free
    h.c = c
    h.pool = pool
    pool.set_owner(b"the guardalloc numpy handler's Pool")
    h.options = options
    h.numpy_capsule = numpy_capsule
    h.numpy_handler = default
    h.fallback_ = fallback
    h.strict_ = strict
    h.traces = -1 if tracebacks is None else (1 if tracebacks else 0)
    h.alignment_ = pool.alignment
    # No destructor: the struct must outlive every array made through it.
    h.capsule = PyCapsule_New(<void *>c, GA_NP_CAPSULE_NAME, NULL)
    Py_INCREF(h)   # never deallocated, even if the registry were cleared
    _handlers[<uintptr_t>c] = h
    return h


# ---------------------------------------------------------------------------
# The allocator functions numpy calls (any thread, GIL or not)

# numpy calls these four through the struct; ctx is the Handler (borrowed:
# handlers are immortal).

cdef void *_np_malloc(void *ctx, size_t size) noexcept nogil:
    return _malloc(<Handler>ctx, size)


cdef void *_np_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    return _calloc(<Handler>ctx, nelem, elsize)


cdef void *_np_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil:
    return _realloc(<Handler>ctx, ptr, new_size)


cdef void _np_free(void *ctx, void *ptr, size_t size) noexcept nogil:
    _free(<Handler>ctx, ptr, size)


cdef inline bint _oversize(Handler h, size_t size) noexcept nogil:
    """Whether a request is larger than any block the pool serves and goes
    to numpy's allocator (counted); False for a strict handler."""
    if size <= MAX_BLOCK or h.strict_:
        return False
    ga_np_count(&h.counters[C_OVERSIZE])
    if size > h.largest_oversize:
        h.largest_oversize = size
    return True


cdef bint _track_big(Handler h, void *p) noexcept nogil:
    """Record a live oversize block; False (nothing recorded) without memory."""
    cdef void **grown
    cdef size_t cap
    pthread_mutex_lock(&h.big_lock)
    if h.nbig == h.capbig:
        cap = 2 * h.capbig if h.capbig else 16
        grown = <void **>c_realloc(h.big, cap * sizeof(void *))
        if grown == NULL:
            pthread_mutex_unlock(&h.big_lock)
            return False
        h.big = grown
        h.capbig = cap
    h.big[h.nbig] = p
    h.nbig += 1
    pthread_mutex_unlock(&h.big_lock)
    return True


cdef bint _untrack_big(Handler h, void *p, void *replacement) noexcept nogil:
    """Whether p is a live oversize block; if so it is replaced by
    replacement in the record (NULL: forgotten)."""
    cdef size_t i
    cdef bint found = False
    pthread_mutex_lock(&h.big_lock)
    for i in range(h.nbig):
        if h.big[i] == p:
            found = True
            if replacement != NULL:
                h.big[i] = replacement
            else:
                h.nbig -= 1
                h.big[i] = h.big[h.nbig]
            break
    pthread_mutex_unlock(&h.big_lock)
    return found


cdef void *_big_malloc(Handler h, size_t size, bint zero) noexcept nogil:
    """An oversize block from numpy's allocator, recorded."""
    cdef ga_np_allocator_t *numpy = &h.numpy_handler.allocator
    cdef void *p = numpy.calloc(numpy.ctx, 1, size) if zero else numpy.malloc(numpy.ctx, size)
    if p != NULL and not _track_big(h, p):
        numpy.free(numpy.ctx, p, size)
        p = NULL
    if p == NULL:
        ga_np_count(&h.counters[C_FAILED])
    return p


cdef void *_malloc(Handler h, size_t size) noexcept nogil:
    cdef void *p
    ga_np_count(&h.counters[C_MALLOC])
    if _oversize(h, size):
        return _big_malloc(h, size, False)
    p = h.pool.malloc(size if size else 1)
    if p == NULL:
        return _fallback_malloc(h, size)
    _trace(h, p, False)
    return p


cdef void *_calloc(Handler h, size_t nelem, size_t elsize) noexcept nogil:
    cdef void *p
    ga_np_count(&h.counters[C_CALLOC])
    if elsize and nelem > (<size_t>-1) // elsize:
        ga_np_count(&h.counters[C_FAILED])
        return NULL
    if nelem == 0 or elsize == 0:
        nelem = elsize = 1
    if _oversize(h, nelem * elsize):
        return _big_malloc(h, nelem * elsize, True)
    p = h.pool.calloc(nelem, elsize)
    if p != NULL:
        _trace(h, p, False)
    if p == NULL:
        if h.fallback_:
            ga_np_count(&h.counters[C_FALLBACK])
            p = h.numpy_handler.allocator.calloc(h.numpy_handler.allocator.ctx, nelem, elsize)
        if p == NULL:
            ga_np_count(&h.counters[C_FAILED])
    return p


cdef inline void *_fallback_malloc(Handler h, size_t size) noexcept nogil:
    cdef void *p = NULL
    if h.fallback_:
        ga_np_count(&h.counters[C_FALLBACK])
        p = h.numpy_handler.allocator.malloc(h.numpy_handler.allocator.ctx, size)
    if p == NULL:
        ga_np_count(&h.counters[C_FAILED])
    return p


cdef void *_realloc(Handler h, void *ptr, size_t new_size) noexcept nogil:
    cdef size_t old_size
    cdef void *p
    cdef ga_damage_t damage
    damage.damaged = 0
    ga_np_count(&h.counters[C_REALLOC])
    if ptr == NULL:
        return _malloc(h, new_size)
    if new_size == 0:
        new_size = 1
    if not h.pool.owns_ptr(ptr):
        if h.numpy_handler != NULL and _untrack_big(h, ptr, ptr):
            # An oversize block stays with numpy's allocator, whatever its new size.
            p = h.numpy_handler.allocator.realloc(h.numpy_handler.allocator.ctx, ptr, new_size)
            if p != NULL:
                _untrack_big(h, ptr, p)
            return p
        if h.fallback_:
            # A block numpy's allocator served while the pool was at its limit.
            return h.numpy_handler.allocator.realloc(h.numpy_handler.allocator.ctx, ptr, new_size)
        ga_np_count(&h.counters[C_BAD_FREE])
        _report(h, BAD_FOREIGN, ptr, 0, 0, 0)
        return NULL   # numpy raises MemoryError; the block is left alone
    old_size = h.pool.size_of(ptr)
    if old_size == 0:
        ga_np_count(&h.counters[C_BAD_FREE])
        _report(h, BAD_NOT_LIVE, ptr, 0, 0, 0)
        return NULL
    if _oversize(h, new_size):
        p = _big_malloc(h, new_size, False)
        if p == NULL:
            return NULL
        memcpy(p, ptr, old_size)
        h.pool.free_ptr(ptr, &damage)
    else:
        _trace(h, ptr, True)
        p = h.pool.realloc(ptr, new_size, &damage)
        if p != NULL:
            _trace(h, p, False)
    if p == NULL and h.fallback_:
        p = _fallback_malloc(h, new_size)
        if p != NULL:
            memcpy(p, ptr, old_size if old_size < new_size else new_size)
            h.pool.free_ptr(ptr, &damage)
    elif p == NULL:
        ga_np_count(&h.counters[C_FAILED])
    if p != NULL and damage.damaged:
        _corrupt(h, ptr, &damage)
    return p


cdef void _free(Handler h, void *ptr, size_t size) noexcept nogil:
    # ``size`` is numpy's idea of the block's size; the pool knows the size it
    # handed out, so that is what the slack check uses.
    cdef ga_damage_t damage
    cdef int code
    if ptr == NULL:
        return
    ga_np_count(&h.counters[C_FREE])
    if not h.pool.owns_ptr(ptr):
        if h.numpy_handler != NULL and (_untrack_big(h, ptr, NULL) or h.fallback_):
            h.numpy_handler.allocator.free(h.numpy_handler.allocator.ctx, ptr, size)
            return
        ga_np_count(&h.counters[C_BAD_FREE])
        _report(h, BAD_FOREIGN, ptr, 0, 0, 0)
        return
    _trace(h, ptr, True)   # while the slot is still ours
    code = h.pool.free_ptr(ptr, &damage)
    if code == GA_ERR_CORRUPT:
        _corrupt(h, ptr, &damage)
    elif code != GA_OK and code != GA_ERR_SYSCALL:
        # Not a live block: freed already, or not the start of one. Leaking
        # it is the only safe thing left to do.
        ga_np_count(&h.counters[C_BAD_FREE])
        _report(h, BAD_NOT_LIVE, ptr, 0, 0, 0)


cdef inline void _trace(Handler h, void *ptr, bint at_free) noexcept nogil:
    """The Python traceback of this allocation or free of the live block at
    ptr, when tracebacks are wanted: recorded when the GIL is held (numpy
    holds it around nearly every allocation; it is never taken here);
    without it an allocation drops the slot's previous tracebacks, which
    belong to an earlier block."""
    if h.traces == 0 or (h.traces < 0 and not tracebacks_default()):
        return
    if PyGILState_Check():
        _record_trace(h, ptr, at_free)
    elif not at_free:
        _forget_traces(h, ptr)


cdef void _forget_traces(Handler h, void *ptr) noexcept nogil:
    cdef ga_arena_t *a = h.pool.arena_of(ptr)
    cdef long slot = ga_live_slot_at(a, ptr) if a != NULL else -1
    if slot >= 0:
        forget_traces(a, <uint32_t>slot)


cdef void _record_trace(Handler h, void *ptr, bint at_free) noexcept with gil:
    """The Python traceback of this call into the slot of the live block at
    ptr (allocation or free), keeping any exception in flight."""
    cdef ga_arena_t *a = h.pool.arena_of(ptr)
    cdef long slot = ga_live_slot_at(a, ptr) if a != NULL else -1
    cdef PyObject *saved_type
    cdef PyObject *saved_value
    cdef PyObject *saved_tb
    if slot < 0:
        return
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb)
    try:
        record_trace(a, <uint32_t>slot, at_free)
    except BaseException:
        pass    # no traceback beats a failed allocation
    PyErr_Restore(saved_type, saved_value, saved_tb)


cdef inline void _corrupt(Handler h, void *ptr, ga_damage_t *damage) noexcept nogil:
    """The pool found the slack after a freed block overwritten."""
    ga_np_count(&h.counters[C_CORRUPT])
    _report(h, BAD_SLACK, ptr, damage.nbytes, damage.first_offset, damage.damaged)


cdef void _report(Handler h, int kind, void *ptr, size_t nbytes, size_t first,
                  size_t damaged) noexcept with gil:
    """Send a GuardError about a numpy data block to sys.unraisablehook
    ("Exception ignored in: <the handler>"), keeping any exception that is
    already in flight (arrays are often freed while one unwinds)."""
    cdef PyObject *saved_type
    cdef PyObject *saved_value
    cdef PyObject *saved_tb
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb)
    try:
        exc = _make_error(kind, <uintptr_t>ptr, nbytes, first, damaged)
        PyErr_SetObject(type(exc), exc)
        PyErr_WriteUnraisable(h)
    except BaseException:
        pass
    PyErr_Restore(saved_type, saved_value, saved_tb)


cdef object _make_error(int kind, uintptr_t address, size_t nbytes, size_t first, size_t damaged):
    if kind == BAD_SLACK:
        return CorruptionError(
            f"heap corruption in numpy array data at {address:#x}: {damaged} slack byte(s) "
            f"past the end of the {nbytes}-byte block were overwritten, the first at "
            f"offset {first} ({first - nbytes} bytes past the end); the block was freed",
            address, None, nbytes, first, damaged)
    if kind == BAD_FOREIGN:
        return ForeignBufferError(
            f"numpy asked the guardalloc handler to free or resize {address:#x}, which is "
            "not in its pool (the block was left alone)", address, None)
    return InvalidFreeError(
        f"numpy asked the guardalloc handler to free or resize {address:#x}, which is "
        "not a live block (double free, or not the start of a block; left alone)",
        address, None)

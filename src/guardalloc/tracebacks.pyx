# cython: language_level=3, boundscheck=False, wraparound=False
"""Allocation and free tracebacks for fault reports.

Rendering a Python stack costs a few microseconds, so it is off unless an
allocator asks for it (``tracebacks=True``) or :func:`enable_tracebacks`
turns it on for every allocator that does not choose for itself. The text
is rendered when a block is allocated or freed and kept per slot, so the
fault handler only has to write(2) it.
"""

import warnings

from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport uint32_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from guardalloc._core cimport ga_arena_t

# How many frames a recorded traceback keeps (the innermost ones).
cdef int TRACE_DEPTH = 32
# Each frame's line starts with its number.
cdef list _NUMBERS = [b"    #%d " % i for i in range(TRACE_DEPTH)]

cdef bint _default = False


def enable_tracebacks() -> None:
    """Record allocation and free tracebacks in every allocator that does not
    choose for itself (``tracebacks=None``). Costs a few microseconds per
    allocation and free."""
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


cdef extern from *:
    """
    #include <Python.h>
    #include <frameobject.h>
    /* PyFrame_GetLasti() is 3.11+; before, the field is public. */
    static inline int ga_frame_lasti(PyFrameObject *frame) {
    #if PY_VERSION_HEX >= 0x030B0000
        return PyFrame_GetLasti(frame);
    #else
        return frame->f_lasti;
    #endif
    }
    """
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject
    PyFrameObject *PyEval_GetFrame()
    PyFrameObject *PyFrame_GetBack(PyFrameObject *frame)    # new reference
    PyCodeObject *PyFrame_GetCode(PyFrameObject *frame)     # new reference
    int ga_frame_lasti(PyFrameObject *frame)
    int PyFrame_GetLineNumber(PyFrameObject *frame)

# Rendered traceback lines by (code object, instruction offset): rendering a
# frame (line-table lookup, formatting, encoding) costs far more than finding
# it again. Keyed by the code's address; the entry keeps the code alive and
# is checked against it. Cleared when it grows past TRACE_CACHE_MAX.
cdef dict _trace_lines = {}
cdef Py_ssize_t TRACE_CACHE_MAX = 65536
# Code objects whose frames recorded tracebacks leave out (the run
# launcher's and runpy's, below every frame of the program).
cdef set _hidden_code = set()


def _hide_frames(codes):
    """Leave frames running any of ``codes`` (code objects) out of the
    allocation and free tracebacks recorded from now on."""
    _hidden_code.update(codes)
    _trace_lines.clear()


cdef bytes _render_line(PyFrameObject *frame, object code):
    return (f'in {code.co_qualname} {code.co_filename}:{PyFrame_GetLineNumber(frame)}\n'
            ).encode("utf-8", "backslashreplace")


cdef bytes _render_stack():
    """The Python stack of the caller as the core prints Python frames
    (_c/pyframes.c): innermost first, numbered, ``    #0 in FUNCTION
    FILE:LINE`` (the innermost TRACE_DEPTH frames)."""
    cdef list parts = []
    cdef PyFrameObject *frame = PyEval_GetFrame()
    cdef PyFrameObject *back
    cdef PyObject *code_ref
    cdef int lasti
    cdef Py_ssize_t i
    cdef object code, key, entry
    if frame != NULL:
        Py_INCREF(<object><PyObject *>frame)
    try:
        while frame != NULL and len(parts) < TRACE_DEPTH:
            code_ref = <PyObject *>PyFrame_GetCode(frame)
            code = <object>code_ref
            Py_DECREF(code)             # ``code`` holds its own reference now
            lasti = ga_frame_lasti(frame)
            key = (<uintptr_t>code_ref, lasti)
            entry = _trace_lines.get(key)
            if entry is None or (<tuple>entry)[0] is not code:
                if len(_trace_lines) >= TRACE_CACHE_MAX:
                    _trace_lines.clear()
                entry = (code, b"" if code in _hidden_code else _render_line(frame, code))
                _trace_lines[key] = entry
            if (<tuple>entry)[1]:       # hidden frames do not count towards TRACE_DEPTH
                parts.append((<tuple>entry)[1])
            back = PyFrame_GetBack(frame)
            Py_DECREF(<object><PyObject *>frame)
            frame = back
    finally:
        if frame != NULL:
            Py_DECREF(<object><PyObject *>frame)
    cdef list out = []
    for i in range(len(parts)):
        out.append(_NUMBERS[i])
        out.append(parts[i])
    return b"".join(out)


cdef void _set_trace(char **table, uint32_t slot, bytes text) noexcept:
    cdef char *old = table[slot]
    cdef char *copy = NULL
    cdef Py_ssize_t n
    if text is not None:
        n = len(text)
        copy = <char *>malloc(n + 1)
        if copy != NULL:
            memcpy(copy, <char *>text, n)
            copy[n] = 0
    table[slot] = copy
    free(old)


cdef int record_trace(ga_arena_t *a, uint32_t slot, bint at_free) except -1:
    _set_trace(a.free_trace if at_free else a.alloc_trace, slot, _render_stack())
    if not at_free:
        _set_trace(a.free_trace, slot, None)   # stale now
    return 0


cdef void forget_traces(ga_arena_t *a, uint32_t slot) noexcept nogil:
    cdef char *old
    if a.alloc_trace == NULL:
        return
    old = a.alloc_trace[slot]
    a.alloc_trace[slot] = NULL
    free(old)
    old = a.free_trace[slot]
    a.free_trace[slot] = NULL
    free(old)


cdef void release_traces(ga_arena_t *a) noexcept:
    cdef uint32_t i
    if a.alloc_trace == NULL:
        return
    for i in range(a.nslots):
        forget_traces(a, i)

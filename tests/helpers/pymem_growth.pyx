# cython: language_level=3, boundscheck=False, wraparound=False
"""Test helper: C code that allocates with an exception pending, as CPython's
own C code may, to check that a PyMem hook growing the pool keeps it."""

from cpython.exc cimport PyErr_Clear, PyErr_Fetch, PyErr_Restore, PyErr_SetString
from cpython.mem cimport PyObject_Free, PyObject_Malloc
from cpython.object cimport PyObject
from libc.stdlib cimport free, malloc

from guardalloc.pool cimport Pool


def malloc_with_exception_pending(Pool pool, Py_ssize_t count, size_t nbytes):
    """Set ValueError("kept"), make ``count`` PyObject_Malloc(nbytes) calls,
    check the exception is still the one set, then free the blocks.

    Returns (kept, guarded): whether the exception survived, and how many
    blocks ``pool`` served.

    Raises:
        MemoryError: no memory for the pointer table, or a NULL block.
    """
    cdef void **blocks = <void **>malloc(count * sizeof(void *))
    cdef PyObject *exc_type
    cdef PyObject *exc_value
    cdef PyObject *exc_tb
    cdef Py_ssize_t i, guarded = 0, failed = 0
    if blocks == NULL:
        raise MemoryError()
    PyErr_SetString(ValueError, b"kept")
    for i in range(count):
        blocks[i] = PyObject_Malloc(nbytes)
        if blocks[i] == NULL:
            failed += 1
        elif pool.owns_ptr(blocks[i]):
            guarded += 1
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb)
    kept = (exc_type == <PyObject *>ValueError and exc_value != NULL
            and "kept" in str(<object>exc_value))
    PyErr_Restore(exc_type, exc_value, exc_tb)
    PyErr_Clear()
    for i in range(count):
        PyObject_Free(blocks[i])
    free(blocks)
    if failed:
        raise MemoryError(f"{failed} NULL blocks")
    return kept, guarded

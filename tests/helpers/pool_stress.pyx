# cython: language_level=3, boundscheck=False, wraparound=False
"""Test helper: drives a Pool's C interface (pool.pxd) without the GIL, as
the numpy handler and the PyMem hooks do. Built by tests/conftest.py."""

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memset

from guardalloc._core cimport GA_OK, ga_damage_t
from guardalloc.pool cimport Pool

cdef inline uint64_t _xorshift(uint64_t *state) noexcept nogil:
    cdef uint64_t x = state[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    state[0] = x
    return x


def pool_stress(Pool pool, Py_ssize_t iterations, uint64_t seed, size_t max_nbytes=65536) -> int:
    """Run the pool's C interface without the GIL: ``iterations`` random
    malloc / calloc / realloc / free_ptr calls over 64 live blocks, each block
    filled with a pattern that is checked when it is reallocated or freed.

    Returns how many checks failed (a pattern changed, calloc memory was not
    zero, free_ptr refused a live block): 0 unless the pool is broken.
    Requests the pool refuses (NULL) are skipped.
    """
    cdef void *blocks[64]
    cdef size_t sizes[64]
    cdef uint8_t tags[64]
    cdef uint64_t state = seed * 2654435761 + 1
    cdef Py_ssize_t it
    cdef size_t i, k, n, limit
    cdef uint64_t r
    cdef long failures = 0
    cdef uint8_t *p
    cdef void *q
    cdef ga_damage_t damage
    if max_nbytes < 1:
        raise ValueError("max_nbytes must be at least 1")
    memset(blocks, 0, sizeof(blocks))
    with nogil:
        for it in range(iterations):
            r = _xorshift(&state)
            i = r % 64
            n = (_xorshift(&state) % max_nbytes) + 1
            p = <uint8_t *>blocks[i]
            if p != NULL:
                # Check the pattern: first and last byte, and a middle one.
                if p[0] != tags[i] or p[sizes[i] - 1] != tags[i] or p[sizes[i] // 2] != tags[i]:
                    failures += 1
                if pool.size_of(p) != sizes[i]:
                    failures += 1
            if p != NULL and (r >> 8) % 3 == 0:
                q = pool.realloc(p, n, &damage)
                if q == NULL:
                    continue
                p = <uint8_t *>q
                limit = sizes[i] if sizes[i] < n else n
                if p[0] != tags[i] or p[limit - 1] != tags[i]:
                    failures += 1
            else:
                if p != NULL and pool.free_ptr(p, &damage) != GA_OK:
                    failures += 1
                blocks[i] = NULL
                if (r >> 8) % 3 == 1:
                    p = <uint8_t *>pool.calloc(n, 1)
                    if p != NULL:
                        for k in range(0, n, 509):
                            if p[k] != 0:
                                failures += 1
                                break
                else:
                    p = <uint8_t *>pool.malloc(n)
                if p == NULL:
                    continue
            tags[i] = <uint8_t>(r >> 32)
            memset(p, tags[i], n)
            blocks[i] = p
            sizes[i] = n
        for i in range(64):
            if blocks[i] != NULL and pool.free_ptr(blocks[i], &damage) != GA_OK:
                failures += 1
    return failures


def alloc_free_pairs(Pool pool, Py_ssize_t pairs, size_t nbytes) -> int:
    """``pairs`` malloc + free_ptr calls of nbytes through the pool's C
    interface without the GIL, one block live at a time (the cost of one
    allocation and free as a hook pays it). Returns the pairs the pool
    refused or failed to free (0 unless it is broken or full)."""
    cdef Py_ssize_t i
    cdef long failed = 0
    cdef void *p
    cdef ga_damage_t damage
    with nogil:
        for i in range(pairs):
            p = pool.malloc(nbytes)
            if p == NULL or pool.free_ptr(p, &damage) != GA_OK:
                failed += 1
    return failed

# cython: language_level=3
"""The arena descriptor (``_c/arena.h``), shared by the Cython core and the C
fault reporter. Cimport it from here; do not redeclare it."""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from "_c/arena.h":
    enum:
        GA_SLOT_FREE
        GA_SLOT_LIVE
        GA_SLOT_QUARANTINED
        GA_SLOT_RETIRED
        GA_FLAG_DATA_GUARDED
        GA_FLAG_RETIRE
        GA_FLAG_FAULTED
        GA_FLAG_USED
        GA_FLAG_RAW
        GA_FLAG_STACKED
        GA_FLAG_GUARD_BEFORE_LIFTED
        GA_FLAG_GUARD_AFTER_LIFTED
        GA_BACKEND_NONE
        GA_BACKEND_MADVISE
        GA_BACKEND_MPROTECT
        GA_SLACK_BYTE

    ctypedef struct ga_slot_t:
        uint32_t nbytes
        uint32_t offset
        uint8_t state
        uint8_t flags

    ctypedef struct ga_arena_t:
        char *base
        size_t size
        size_t slot_size
        size_t guard_size
        size_t stride
        size_t alignment
        uint32_t nslots
        int backend
        int align_right
        int on_fault_continue
        int uaf
        int shared
        ga_slot_t *slots
        char **alloc_trace
        char **free_trace
        uint64_t faults_continued

    char *GA_SLOT_START(ga_arena_t *a, size_t i) nogil



# cython: language_level=3
"""C-level view of the guard-page scanner's result types (pagemap.pyx)."""

from libc.stdint cimport uint64_t


cdef struct run_list_t:
    uint64_t *pairs     # start0, end0, start1, end1, ...
    size_t count        # runs
    size_t capacity     # runs
    size_t sealed       # runs that later ones may not merge into


cdef class Ranges:
    cdef run_list_t runs
    cdef object item_type

    cdef size_t _first_ending_after(self, uint64_t where) noexcept nogil


cdef class GuardRuns(Ranges):
    cdef readonly str method
    cdef readonly unsigned long long syscalls   # ioctl() or pread() calls spent

# cython: language_level=3
"""A Cython module in the stack for tests/test_unwinder.py: C-level recursion
of Cython functions that calls back into Python at the bottom."""


cdef object _down(object leaf, int depth):
    if depth <= 0:
        return leaf()
    result = _down(leaf, depth - 1)
    return result


def through(leaf, int depth):
    """leaf() under depth frames of this module's C functions."""
    return _down(leaf, depth)

# cython: language_level=3
"""The Python frame walker, compiled against this interpreter's headers and
registered with the C core when guardalloc is imported, so that reports
(written by a core that does not link libpython) name Python frames: the
line of a bad access, and the frames the malloc library records per block
(``_c/pyframes.h``, ``pyframes_walk.h``)."""

from libc.stdint cimport int32_t, uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from "pyframes_walk.h":
    ctypedef struct ga_pyframe_t:
        const void *code
        int32_t lasti
        uint32_t flags
    ctypedef struct ga_pyframe_info_t:
        char function[160]
        char file[512]
        int line
    int GA_PYFRAME_ENTRY
    int GA_PYSTACK_DEPTH
    size_t ga_pw_capture(ga_pyframe_t *out, size_t max, int checked) noexcept
    int ga_pw_describe(const ga_pyframe_t *f, ga_pyframe_info_t *out) noexcept
    void ga_pw_register() noexcept
    int ga_pw_add_stop(object code) except? -1

ga_pw_register()

# The code objects walks stop at, kept alive for as long as the walker may compare them.
cdef list _stops = []


def _stop_at(codes) -> None:
    """End every recorded Python stack at the first frame running one of
    ``codes`` (code objects; the launcher's frames below the program's).
    Beyond 64 code objects the others are not added.

    Raises:
        TypeError: an item is not a code object.
    """
    for code in codes:
        if type(code) is not type(_stop_at.__code__):
            raise TypeError(f"codes must be code objects, not {type(code).__name__}")
        if ga_pw_add_stop(code) == 0:
            _stops.append(code)


def stack(checked=False) -> list:
    """The calling thread's Python frames as the core records them (at most
    16, innermost first), described as reports describe them: a list of
    (function, file, line, entry) tuples, entry True for the first frame a
    call of the interpreter from C runs. checked: read every frame through
    the reads that cannot fault, as the signal path does."""
    cdef ga_pyframe_t frames[16]
    cdef ga_pyframe_info_t info
    cdef size_t n = ga_pw_capture(frames, min(16, GA_PYSTACK_DEPTH), 1 if checked else 0)
    cdef size_t i
    out = []
    for i in range(n):
        if ga_pw_describe(&frames[i], &info) != 0:
            out.append((None, None, None, bool(frames[i].flags & GA_PYFRAME_ENTRY)))
            continue
        out.append((info.function.decode("utf-8", "replace"), info.file.decode("utf-8", "replace"),
                    info.line or None, bool(frames[i].flags & GA_PYFRAME_ENTRY)))
    return out


def _capture_ns(int n) -> float:
    """Nanoseconds per capture of the caller's Python frames as the malloc
    library records them (plain reads, 16 frames at most), over n captures
    (the cost measured in docs/design.md).

    Raises:
        ValueError: n is below 1.
    """
    cdef ga_pyframe_t frames[16]
    cdef timespec t0, t1
    cdef int i
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    clock_gettime(CLOCK_MONOTONIC, &t0)
    for i in range(n):
        ga_pw_capture(frames, 16, 0)
    clock_gettime(CLOCK_MONOTONIC, &t1)
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n

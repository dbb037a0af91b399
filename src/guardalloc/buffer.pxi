# Buffer: the bytearray-like view of one slot. Included by arena.pyx, so that
# Buffer and Arena are one extension module: Arena.alloc builds a Buffer with
# an inlined constructor from a freelist (a separate module would call it
# through a capsule), and each reaches the other's C fields directly.

from cpython.buffer cimport (
    PyBUF_FORMAT, PyBUF_ND, PyBUF_SIMPLE, PyBUF_STRIDES, PyBuffer_Release, PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_SetObject, PyErr_WriteUnraisable
from cpython.number cimport PyIndex_Check, PyNumber_AsSsize_t, PyNumber_Index
from cpython.ref cimport PyObject
from cpython.slice cimport PySlice_GetIndicesEx
from libc.string cimport memchr, memcmp, memmove

cdef extern from "<string.h>" nogil:
    # GNU (pyconfig.h defines _GNU_SOURCE before any header).
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

cdef extern from "Python.h":
    # exc=NULL: clamp out-of-range integers instead of raising.
    Py_ssize_t _index_clamped "PyNumber_AsSsize_t"(object value, PyObject *exc) except? -1

cdef char *_FORMAT_B = "B"

@cython.auto_pickle(False)
@cython.final
@cython.freelist(64)
# The cycle collector must not clear ``owner`` before __dealloc__ runs, or a
# Buffer collected as part of a reference cycle would never free its slot.
@cython.no_gc_clear
cdef class Buffer:
    """A buffer in an arena slot; made by :meth:`Arena.alloc` or :meth:`Pool.alloc`.

    Supports the buffer protocol (writable, format "B", 1-D, contiguous):
    ``memoryview(buf)``, ``bytes(buf)``, ``numpy.frombuffer(buf, ...)``,
    ``f.readinto(buf)``, ``struct.pack_into(fmt, buf, ...)``. Freed by
    :meth:`free`, by leaving a ``with`` block, or when garbage collected.

    Behaves as a fixed-size ``bytearray`` (as ``mmap`` does): ``buf[i]``
    (an int), ``buf[i:j:k]`` (a new ``bytes``, negative indices and steps
    allowed), ``buf[i] = byte``, ``buf[i:j:k] = data`` (data of exactly the
    slice's length: a Buffer never changes size), iteration, ``in``,
    ``==``/``!=`` by content against any bytes-like object, :meth:`hex`,
    :meth:`tobytes`, :meth:`find`, :meth:`index`, :meth:`count`. Buffers are
    unhashable (their content changes), and cannot be pickled or copied: a
    copy would live in unguarded memory; copy ``bytes(buf)`` into a new
    buffer instead.

    Once the buffer is freed, or its arena or pool closed, every access
    (``len()``, indexing, ``memoryview()``, ``address``, ...) raises
    ``ValueError``; :attr:`freed` is then True and ``repr()`` says which.
    """

    def __cinit__(self):
        self.shape[0] = 0

    def __init__(self):
        raise TypeError("guardalloc.Buffer cannot be created directly: use Arena.alloc() or Pool.alloc()")

    cdef int _check(self) except -1:
        if self.owner is None:
            raise ValueError("this guardalloc.Buffer was not made by an arena (Buffer.__new__ alone): "
                             "use Arena.alloc() or Pool.alloc()")
        if self.is_freed:
            raise ValueError("operation on a freed guardalloc.Buffer")
        if self.owner.is_closed:
            raise ValueError("operation on a guardalloc.Buffer whose arena is closed (the buffer "
                             "is gone with it)")
        return 0

    cdef object address_or_none(self):
        return None if self.is_freed or self.owner is None else <uintptr_t>self.ptr

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check()
        # Filled by hand: PyBuffer_FillInfo would take a second reference
        # to self on top of the one Cython already holds in view.obj.
        view.buf = self.ptr
        view.obj = self
        view.len = self.nbytes_
        view.readonly = 0
        view.itemsize = 1
        view.format = _FORMAT_B if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = &view.itemsize if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        self.exports += 1
        self.owner.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1
        self.owner.exports -= 1

    def __len__(self):
        self._check()
        return self.nbytes_

    # -- the sequence of bytes ------------------------------------------
    # Every method converts its arguments (which may run Python code, even
    # code that frees this buffer) before _check(), and touches the memory
    # only after it, without running Python in between.

    cdef Py_ssize_t _index(self, index) except? -1:
        """index as a position in 0..nbytes-1 (negative: from the end)."""
        cdef Py_ssize_t i
        if not PyIndex_Check(index):
            raise TypeError(f"guardalloc.Buffer indices must be integers or slices, not "
                            f"{type(index).__name__}")
        i = PyNumber_AsSsize_t(index, IndexError)
        if i < 0:
            i += self.nbytes_
        if not 0 <= i < self.nbytes_:
            raise IndexError("guardalloc.Buffer index out of range")
        return i

    def __getitem__(self, index):
        cdef Py_ssize_t start, stop, step, length, i, k
        cdef char *out
        if isinstance(index, slice):
            PySlice_GetIndicesEx(index, self.nbytes_, &start, &stop, &step, &length)
            self._check()
            if step == 1:
                return PyBytes_FromStringAndSize(self.ptr + start, length)
            result = PyBytes_FromStringAndSize(NULL, length)
            out = PyBytes_AS_STRING(result)
            i = start
            for k in range(length):
                out[k] = self.ptr[i]
                i += step
            return result
        i = self._index(index)
        self._check()
        return <unsigned char>self.ptr[i]

    def __setitem__(self, index, value):
        cdef Py_ssize_t start, stop, step, length, i, k
        cdef Py_buffer view
        cdef const char *src
        if not isinstance(index, slice):
            i = self._index(index)
            byte = _byte("byte", value)
            self._check()
            self.ptr[i] = <char><unsigned char>byte
            return
        PySlice_GetIndicesEx(index, self.nbytes_, &start, &stop, &step, &length)
        data = _bytes_like(value)
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:   # not contiguous (a strided memoryview): copy it
            data = memoryview(data).tobytes()
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._check()
            if view.len != length:
                if step == 1:
                    raise ValueError(
                        f"guardalloc.Buffer cannot change size: cannot assign {view.len} byte(s) "
                        f"to a slice of {length}")
                raise ValueError(f"attempt to assign bytes of size {view.len} to extended slice "
                                 f"of size {length}")
            src = <const char *>view.buf
            if step == 1:
                memmove(self.ptr + start, src, length)   # the data may be a view of this buffer
                return
            if src + view.len > self.ptr and src < self.ptr + self.nbytes_:
                data = PyBytes_FromStringAndSize(src, view.len)   # overlaps: copy it first
                src = PyBytes_AS_STRING(data)
            i = start
            for k in range(length):
                self.ptr[i] = src[k]
                i += step
        finally:
            PyBuffer_Release(&view)

    def __delitem__(self, index):
        raise TypeError("guardalloc.Buffer cannot change size: its items cannot be deleted")

    def __iter__(self):
        cdef Py_ssize_t i
        self._check()
        for i in range(self.nbytes_):
            self._check()   # the loop body may have freed the buffer
            yield <unsigned char>self.ptr[i]

    def __contains__(self, item):
        return self._search(item, None, None, False, "in") >= 0

    def find(self, sub, start=None, end=None) -> int:
        """Lowest index where ``sub`` (a bytes-like object or a byte value
        0..255) is found in ``buf[start:end]``, or -1, as ``bytes.find``.

        Raises:
            TypeError: sub is neither bytes-like nor an int; start or end
                not an integer or None.
            ValueError: a byte value out of 0..255; the buffer is freed.
        """
        return self._search(sub, start, end, False, "find")

    def index(self, sub, start=None, end=None) -> int:
        """Like :meth:`find`, but raise ``ValueError`` when not found."""
        found = self._search(sub, start, end, False, "index")
        if found < 0:
            raise ValueError("subsection not found")
        return found

    def count(self, sub, start=None, end=None) -> int:
        """Non-overlapping occurrences of ``sub`` in ``buf[start:end]``, as
        ``bytes.count`` (arguments and errors: see :meth:`find`)."""
        return self._search(sub, start, end, True, "count")

    cdef Py_ssize_t _search(self, sub, start, end, bint counting, str what) except -2:
        """find (counting=False) or count of sub in [start, end): memchr or
        memmem over the slot, no copy."""
        cdef Py_ssize_t s = _bound(start, 0, self.nbytes_, "start")
        cdef Py_ssize_t e = _bound(end, self.nbytes_, self.nbytes_, "end")
        cdef Py_ssize_t m, found = 0
        cdef Py_buffer view
        cdef unsigned char byte
        cdef const char *needle
        cdef const char *at
        cdef const char *stop
        cdef bint have_view = False
        if PyIndex_Check(sub):
            byte = _byte("byte", sub)
            needle = <const char *>&byte
            m = 1
        elif PyObject_CheckBuffer(sub):
            PyObject_GetBuffer(sub, &view, PyBUF_SIMPLE)
            have_view = True
            needle = <const char *>view.buf
            m = view.len
        elif what == "in":
            raise TypeError(f"a bytes-like object is required, not '{type(sub).__name__}'")
        else:
            raise TypeError(f"argument should be integer or bytes-like object, not "
                            f"'{type(sub).__name__}'")
        try:
            self._check()
            if e - s < m:
                return 0 if counting else -1
            if m == 0:
                return e - s + 1 if counting else s
            at = self.ptr + s
            stop = self.ptr + e
            while True:
                if m == 1:
                    at = <const char *>memchr(at, needle[0], stop - at)
                else:
                    at = <const char *>memmem(at, stop - at, needle, m)
                if at == NULL:
                    return found if counting else -1
                if not counting:
                    return at - self.ptr
                found += 1
                at += m
                if stop - at < m:
                    return found
        finally:
            if have_view:
                PyBuffer_Release(&view)

    def __eq__(self, other):
        return self._equals(other)

    def __ne__(self, other):
        equal = self._equals(other)
        return equal if equal is NotImplemented else not equal

    cdef object _equals(self, other):
        cdef Py_buffer view
        if other is self:
            self._check()
            return True
        if not PyObject_CheckBuffer(other):
            return NotImplemented
        try:
            PyObject_GetBuffer(other, &view, PyBUF_SIMPLE)
        except BufferError:
            return NotImplemented   # not contiguous: let the other side compare
        try:
            self._check()
            return view.len == self.nbytes_ and memcmp(view.buf, self.ptr, self.nbytes_) == 0
        finally:
            PyBuffer_Release(&view)

    def tobytes(self) -> bytes:
        """A copy of the content as ``bytes`` (ordinary, unguarded memory).

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        self._check()
        return PyBytes_FromStringAndSize(self.ptr, self.nbytes_)

    def hex(self, *args) -> str:
        """The content in hexadecimal, as ``bytes.hex([sep[, bytes_per_sep]])``.

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        # The view's export keeps the buffer from being freed meanwhile
        # (sep may run Python code); released before returning, so that
        # free() is not blocked afterwards.
        with memoryview(self) as view:
            return view.hex(*args)

    def __reduce_ex__(self, protocol):
        raise TypeError(_NO_COPY.format("pickle"))

    def __copy__(self):
        raise TypeError(_NO_COPY.format("copy"))

    def __deepcopy__(self, memo):
        raise TypeError(_NO_COPY.format("copy"))

    # -- lifetime ---------------------------------------------------------

    def free(self):
        """Return the slot to its arena (see :meth:`Arena.free`).

        Raises:
            DoubleFreeError, BufferError, CorruptionError, ValueError: as
                :meth:`Arena.free`.
        """
        if self.owner is None:
            self._check()
        self.owner._free_buffer(self)

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc_info):
        # A buffer freed already, or gone with its closed arena, has
        # nothing left to free.
        if not self.is_freed and self.owner is not None and not self.owner.is_closed:
            self.owner._free_buffer(self)

    def __dealloc__(self):
        if self.is_freed or self.owner is None or self.owner.is_closed:
            return
        self.is_freed = True
        try:
            self.owner.check_backing()
            self.owner.free_block(self.ptr, False, f"a garbage-collected {self.nbytes_}-byte buffer")
        except BackingFileError as exc:
            # Checking the slack would raise SIGBUS: the slot stays taken.
            _write_unraisable(exc, self.owner)
        except Exception as exc:
            _write_unraisable(exc, self.owner)

    @property
    def address(self) -> int:
        """Address of the first byte (for ctypes and C code).

        Raises:
            ValueError: the buffer is freed or its arena closed.
        """
        self._check()
        return <uintptr_t>self.ptr

    @property
    def nbytes(self) -> int:
        """The size it was allocated with (kept after it is freed)."""
        return self.nbytes_

    @property
    def slot(self) -> int:
        """The slot it was placed in (-1 for a Buffer never allocated)."""
        return -1 if self.owner is None else self.slot_

    @property
    def arena(self):
        return self.owner

    @property
    def freed(self) -> bool:
        """True once freed, or once its arena (or pool) is closed."""
        return self.is_freed or (self.owner is not None and self.owner.is_closed)

    def __repr__(self):
        if self.owner is None:
            return "<guardalloc.Buffer (not allocated)>"
        state = "freed " if self.is_freed else "closed " if self.owner.is_closed else ""
        return (f"<guardalloc.Buffer {state}{self.nbytes_} bytes at {<uintptr_t>self.ptr:#x}, "
                f"slot {self.slot_} of {self.owner.a.nslots}>")


_NO_COPY = ("cannot {} a guardalloc.Buffer: the copy would live in ordinary memory, without "
            "guard pages; copy bytes(buf) into a new buffer from an Arena or Pool instead")


cdef object _byte(str name, value):
    """value (an integer) as a byte, as bytearray checks it.

    Raises:
        TypeError: not an integer.
        ValueError: not in range(0, 256).
    """
    number = PyNumber_Index(value)
    if not 0 <= number < 256:
        raise ValueError(f"{name} must be in range(0, 256)")
    return number


cdef object _bytes_like(value):
    """value as an object with a contiguous buffer: itself if it has one,
    else the bytes of an iterable of ints (as bytearray slice assignment)."""
    if PyObject_CheckBuffer(value):
        return value
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise TypeError(f"can assign only bytes, buffers, or iterables of ints in range(0, 256), "
                        f"not {type(value).__name__}")
    return bytes(value)


cdef Py_ssize_t _bound(value, Py_ssize_t default, Py_ssize_t n, str name) except? -1:
    """A find()/count() start or end as bytes.find clamps it: None is the
    default, negative counts from the end, out of range is clamped."""
    cdef Py_ssize_t i
    if value is None:
        return default
    if not PyIndex_Check(value):
        raise TypeError(f"{name} must be an integer or None, not {type(value).__name__}")
    i = _index_clamped(value, NULL)
    if i < 0:
        i += n
        if i < 0:
            i = 0
    return n if i > n and name == "end" else i


cdef void _write_unraisable(exc, obj) noexcept:
    """Hand exc to sys.unraisablehook ("Exception ignored in: obj"): a
    garbage-collected buffer has nobody to raise to. obj must not be the
    dying buffer itself: a hook that keeps it would keep a freed object."""
    PyErr_SetObject(type(exc), exc)
    PyErr_WriteUnraisable(obj)

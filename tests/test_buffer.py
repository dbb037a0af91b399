"""Buffer: the buffer protocol and the ways Python code fills buffers."""

from __future__ import annotations

import io
import socket
import struct

import pytest

import guardalloc

from conftest import PAGE


@pytest.fixture
def arena():
    with guardalloc.Arena(PAGE, 8, alignment=1) as arena:
        yield arena


def test_memoryview_shape_and_format(buffer_source):
    buf = buffer_source.alloc(100)
    with memoryview(buf) as view:
        assert (view.format, view.itemsize, view.ndim, view.shape, view.strides) == ("B", 1, 1, (100,), (1,))
        assert not view.readonly and view.c_contiguous and view.nbytes == 100
        view[-1] = 7
        assert view.obj is buf
    assert bytes(buf)[-1] == 7 and len(buf) == 100 and buf.nbytes == 100
    buf.free()


def test_views_are_counted_and_released(buffer_source):
    buf = buffer_source.alloc(10)
    first, second = memoryview(buf), memoryview(buf)
    with pytest.raises(BufferError, match="2 memoryview"):
        buf.free()
    first.release()
    with pytest.raises(BufferError, match="1 memoryview"):
        buf.free()
    second.release()
    buf.free()


def test_bytes_and_bytearray_copy(buffer_source):
    buf = buffer_source.alloc(5)
    memoryview(buf)[:] = b"hello"
    assert bytes(buf) == b"hello" and bytearray(buf) == b"hello"


def test_readinto(buffer_source):
    buf = buffer_source.alloc(11)
    assert io.BytesIO(b"hello world!").readinto(buf) == 11
    assert bytes(buf) == b"hello world"


def test_pack_into_and_unpack_from(buffer_source):
    buf = buffer_source.alloc(12)
    struct.pack_into("<iQ", buf, 0, -5, 2 ** 63)
    assert struct.unpack_from("<iQ", buf) == (-5, 2 ** 63)
    with pytest.raises(struct.error):
        struct.pack_into("<Q", buf, 8, 1)        # past the end: refused, not written


def test_socket_recv_into(buffer_source):
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"guarded payload")
        buf = buffer_source.alloc(15)
        assert right.recv_into(buf) == 15
        assert bytes(buf) == b"guarded payload"


def test_numpy_frombuffer_shares_memory(buffer_source):
    np = pytest.importorskip("numpy")
    buf = buffer_source.alloc(64)
    array = np.frombuffer(buf, dtype=np.uint32)
    array[:] = np.arange(16, dtype=np.uint32)
    assert struct.unpack_from("<16I", buf) == tuple(range(16))
    assert array.ctypes.data == buf.address
    del array


def test_ctypes_address(buffer_source):
    import ctypes
    buf = buffer_source.alloc(8)
    ctypes.memmove(buf.address, b"12345678", 8)
    assert bytes(buf) == b"12345678"


def test_repr(arena):
    buf = arena.alloc(100)
    assert repr(buf) == f"<guardalloc.Buffer 100 bytes at {buf.address:#x}, slot 0 of 8>"
    buf.free()
    assert repr(buf).startswith("<guardalloc.Buffer freed 100 bytes")


def test_freed_buffer_refuses_use(arena):
    buf = arena.alloc(10)
    buf.free()
    for action in (lambda: memoryview(buf), lambda: buf.address, lambda: bytes(buf), lambda: len(buf)):
        with pytest.raises(ValueError, match="freed"):
            action()
    assert buf.freed and buf.nbytes == 10 and buf.slot == 0


def test_slot_of_unallocated_and_claimed_buffers(arena):
    assert guardalloc.Buffer.__new__(guardalloc.Buffer).slot == -1
    last = arena.slots - 1
    buf = arena.alloc(8, slot=last)
    assert buf.slot == last and f"slot {last} of {arena.slots}" in repr(buf)
    buf.free()
    assert buf.slot == last


@pytest.mark.parametrize("nbytes", [0, -1, -(2 ** 30), 2 ** 30 - 1, 2 ** 30, 2 ** 31, 2 ** 64])
def test_nbytes_out_of_range_on_both_sides_of_one_digit(arena, nbytes):
    # Ints of one digit (< 2**30) are read in place, longer ones through
    # PyLong_AsLongAndOverflow: the same ValueError either way.
    with pytest.raises(ValueError, match=f"nbytes must be between 1 and the slot size .*not {nbytes}$"):
        arena.alloc(nbytes)


# ---------------------------------------------------------------------------
# A fixed-size bytearray: every answer checked against bytearray's own

import array
import copy
import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CONTENT = bytes(range(7, 47))   # 40 distinct-ish bytes
INDICES = st.one_of(st.none(), st.integers(-60, 60))
ONE_KIND = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _filled(source, data=CONTENT):
    buf = source.alloc(len(data))
    buf[:] = data
    return buf


def _same_outcome(action, buf, reference):
    """action(buf) and action(reference) return equal values or raise the same exception type."""
    try:
        expected = action(reference)
    except Exception as exc:
        with pytest.raises(type(exc)):
            action(buf)
        return
    got = action(buf)
    assert got == (bytes(expected) if isinstance(expected, bytearray) else expected)


@ONE_KIND
@given(start=INDICES, stop=INDICES, step=st.one_of(st.none(), st.integers(-7, 7).filter(bool)))
def test_slices_read_as_bytearray(buffer_source, start, stop, step):
    buf = _filled(buffer_source)
    with buf:
        assert buf[start:stop:step] == CONTENT[start:stop:step]
        assert type(buf[start:stop:step]) is bytes


@ONE_KIND
@given(start=INDICES, stop=INDICES, step=st.one_of(st.none(), st.integers(-7, 7).filter(bool)),
       fill=st.integers(0, 255))
def test_slice_assignment_matches_bytearray_or_refuses_resizing(buffer_source, start, stop, step, fill):
    buf = _filled(buffer_source)
    reference = bytearray(CONTENT)
    with buf:
        length = len(reference[start:stop:step])
        data = bytes([fill]) * length
        buf[start:stop:step] = data
        reference[start:stop:step] = data
        assert bytes(buf) == reference
        with pytest.raises(ValueError, match="cannot change size|extended slice"):
            buf[start:stop:step] = data + b"x"


@pytest.mark.parametrize("index", [0, 5, -1, -40, 39, 40, -41, 2**70, -2**70, True])
def test_item_get_and_set_as_bytearray(buffer_source, index):
    buf = _filled(buffer_source)
    reference = bytearray(CONTENT)
    _same_outcome(lambda b: b[index], buf, reference)

    def store(b):
        b[index] = 200
        return bytes(b)
    _same_outcome(store, buf, reference)
    buf.free()


@pytest.mark.parametrize("index, value, error", [
    ("a", 1, TypeError), (1.0, 1, TypeError), (None, 1, TypeError),
    (0, 256, ValueError), (0, -1, ValueError), (0, "a", TypeError), (0, 1.5, TypeError), (0, b"a", TypeError),
    (slice(0, 2), 5, TypeError), (slice(0, 2), "ab", TypeError), (slice(0, 2), [1, 300], ValueError),
])
def test_bad_items_raise_what_bytearray_raises(buffer_source, index, value, error):
    buf = _filled(buffer_source)
    reference = bytearray(CONTENT)
    with pytest.raises(error):
        reference[index] = value
    with pytest.raises(error):
        buf[index] = value
    assert bytes(buf) == CONTENT      # nothing written
    buf.free()


def test_never_changes_size(buffer_source):
    buf = _filled(buffer_source)
    with pytest.raises(TypeError, match="cannot change size"):
        del buf[0]
    with pytest.raises(TypeError, match="cannot change size"):
        del buf[0:2]
    with pytest.raises(ValueError, match="cannot change size"):
        buf[0:2] = b"abc"
    buf[0:3] = [1, 2, 3]                        # an iterable of ints, like bytearray
    buf[3:6] = memoryview(b"xyz")
    buf[6:9] = array.array("B", [9, 9, 9])
    assert bytes(buf[:9]) == b"\x01\x02\x03xyz\x09\x09\x09" and len(buf) == len(CONTENT)
    buf.free()


def test_overlapping_assignment_from_its_own_view(buffer_source):
    buf = _filled(buffer_source)
    reference = bytearray(CONTENT)
    with memoryview(buf) as view:
        buf[2:12] = view[0:10]
        buf[::-2] = view[1::2]
    reference[2:12] = reference[0:10]
    reference[::-2] = bytes(reference[1::2])
    assert bytes(buf) == reference
    buf.free()      # the temporary exports are gone


def test_iteration_and_membership(buffer_source):
    buf = _filled(buffer_source)
    assert list(buf) == list(CONTENT)
    assert 7 in buf and 6 not in buf and b"\x08\x09" in buf and b"" in buf
    assert memoryview(b"\x2d\x2e") in buf and bytearray(b"\x2e\x07") not in buf
    with pytest.raises(TypeError, match="bytes-like"):
        "a" in buf
    with pytest.raises(ValueError, match="range"):
        256 in buf
    buf.free()


def test_iteration_stops_when_the_buffer_is_freed(buffer_source):
    buf = _filled(buffer_source)
    items = iter(buf)
    assert next(items) == 7
    buf.free()
    with pytest.raises(ValueError, match="freed"):
        next(items)


@pytest.mark.parametrize("sub", [8, b"\x08", b"\x08\x09\x0a", b"", b"zz", bytearray(b"\x2e"), 46, 255])
@pytest.mark.parametrize("start, end", [(None, None), (3, None), (-5, None), (0, -30), (50, None),
                                        (5, 2), (-100, 100)])
def test_find_index_count_as_bytes(buffer_source, sub, start, end):
    buf = _filled(buffer_source, CONTENT + CONTENT[:12])
    reference = CONTENT + CONTENT[:12]
    for name in ("find", "index", "count"):
        _same_outcome(lambda b: getattr(b, name)(sub, start, end), buf, reference)
    buf.free()


def test_find_refuses_what_bytes_refuses(buffer_source):
    buf = _filled(buffer_source)
    with pytest.raises(TypeError, match="bytes-like"):
        buf.find("a")
    with pytest.raises(ValueError, match="range"):
        buf.count(-1)
    with pytest.raises(TypeError, match="start"):
        buf.find(b"a", "0")
    with pytest.raises(ValueError, match="not found"):
        buf.index(b"zz")
    buf.free()


def test_equality_by_content_against_any_bytes_like(buffer_source):
    buf = _filled(buffer_source)
    other = _filled(buffer_source)
    for same in (CONTENT, bytearray(CONTENT), memoryview(CONTENT), array.array("B", CONTENT), other, buf):
        assert buf == same and not buf != same and same == buf
    for different in (CONTENT[:-1], CONTENT + b"x", bytes(len(CONTENT)), "text", 5, None):
        assert buf != different and not buf == different
    assert buf == memoryview(bytes(b for b in CONTENT for _ in "ab"))[::2]   # strided: by content too
    with pytest.raises(TypeError, match="unhashable"):
        hash(buf)
    other.free()
    buf.free()


def test_hex_and_tobytes(buffer_source):
    buf = _filled(buffer_source, b"\x01\xab\xff\x00")
    assert buf.hex() == "01abff00" and buf.hex(":") == "01:ab:ff:00" and buf.hex("-", 2) == "01ab-ff00"
    assert buf.tobytes() == b"\x01\xab\xff\x00" and type(buf.tobytes()) is bytes
    buf.free()        # hex()'s temporary view left no export behind


@pytest.mark.parametrize("copier", [pickle.dumps, copy.copy, copy.deepcopy])
def test_pickle_and_copy_say_a_copy_would_not_be_guarded(buffer_source, copier):
    buf = _filled(buffer_source)
    with pytest.raises(TypeError, match="without guard pages"):
        copier(buf)
    buf.free()


def _accesses(buf):
    return {
        "len": lambda: len(buf), "index": lambda: buf[0], "slice": lambda: buf[1:3],
        "store": lambda: buf.__setitem__(0, 1), "iter": lambda: list(buf), "in": lambda: 7 in buf,
        "eq": lambda: buf == CONTENT, "hex": buf.hex, "tobytes": buf.tobytes, "find": lambda: buf.find(7),
        "count": lambda: buf.count(7), "memoryview": lambda: memoryview(buf), "bytes": lambda: bytes(buf),
        "address": lambda: buf.address, "enter": buf.__enter__,
    }


def test_after_close_every_access_says_so(buffer_source):
    buf = _filled(buffer_source)
    assert not buf.freed
    buffer_source.close()
    assert buf.freed and buf.nbytes == len(CONTENT)
    assert "closed" in repr(buf)
    for name, action in _accesses(buf).items():
        with pytest.raises(ValueError, match="closed"):
            action()
    buf.__exit__(None, None, None)     # nothing left to free: no error


def test_after_free_every_access_says_so(buffer_source):
    buf = _filled(buffer_source)
    buf.free()
    assert buf.freed and "freed" in repr(buf)
    for name, action in _accesses(buf).items():
        with pytest.raises(ValueError, match="freed"):
            action()


def test_an_index_that_frees_the_buffer_is_refused_not_read(buffer_source):
    buf = _filled(buffer_source)

    class Sneaky:
        def __index__(self):
            buf.free()
            return 0

    with pytest.raises(ValueError, match="freed"):
        buf[Sneaky()]


def test_a_uaf_buffer_freed_by_an_index_does_not_fault(child):
    proc = child("""
        import guardalloc
        arena = guardalloc.Arena(4096, 4, uaf=True)
        buf = arena.alloc(10)
        class Sneaky:
            def __index__(self):
                buf.free()
                return 0
        for action in (lambda: buf[Sneaky()], lambda: buf.__setitem__(Sneaky(), 1),
                       lambda: buf[Sneaky():2], lambda: buf.find(1, Sneaky())):
            try:
                action()
            except ValueError as exc:
                print("refused", "freed" in str(exc))
            buf = arena.alloc(10)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == ["refused True"] * 4

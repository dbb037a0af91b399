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


def test_memoryview_shape_and_format(arena):
    buf = arena.alloc(100)
    with memoryview(buf) as view:
        assert (view.format, view.itemsize, view.ndim, view.shape, view.strides) == ("B", 1, 1, (100,), (1,))
        assert not view.readonly and view.c_contiguous and view.nbytes == 100
        view[-1] = 7
        assert view.obj is buf
    assert bytes(buf)[-1] == 7 and len(buf) == 100 and buf.nbytes == 100
    buf.free()


def test_views_are_counted_and_released(arena):
    buf = arena.alloc(10)
    first, second = memoryview(buf), memoryview(buf)
    with pytest.raises(BufferError, match="2 memoryview"):
        buf.free()
    first.release()
    with pytest.raises(BufferError, match="1 memoryview"):
        buf.free()
    second.release()
    buf.free()


def test_bytes_and_bytearray_copy(arena):
    buf = arena.alloc(5)
    memoryview(buf)[:] = b"hello"
    assert bytes(buf) == b"hello" and bytearray(buf) == b"hello"


def test_readinto(arena):
    buf = arena.alloc(11)
    assert io.BytesIO(b"hello world!").readinto(buf) == 11
    assert bytes(buf) == b"hello world"


def test_pack_into_and_unpack_from(arena):
    buf = arena.alloc(12)
    struct.pack_into("<iQ", buf, 0, -5, 2 ** 63)
    assert struct.unpack_from("<iQ", buf) == (-5, 2 ** 63)
    with pytest.raises(struct.error):
        struct.pack_into("<Q", buf, 8, 1)        # past the end: refused, not written


def test_socket_recv_into(arena):
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"guarded payload")
        buf = arena.alloc(15)
        assert right.recv_into(buf) == 15
        assert bytes(buf) == b"guarded payload"


def test_numpy_frombuffer_shares_memory(arena):
    np = pytest.importorskip("numpy")
    buf = arena.alloc(64)
    array = np.frombuffer(buf, dtype=np.uint32)
    array[:] = np.arange(16, dtype=np.uint32)
    assert struct.unpack_from("<16I", buf) == tuple(range(16))
    assert array.ctypes.data == buf.address
    del array


def test_ctypes_address(arena):
    import ctypes
    buf = arena.alloc(8)
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
    for action in (lambda: memoryview(buf), lambda: buf.address, lambda: bytes(buf)):
        with pytest.raises(ValueError, match="freed"):
            action()
    assert buf.freed and len(buf) == 10 and buf.slot == 0

"""The pipe protocol between the session and its forked children: messages
framed by a 4-byte little-endian length."""

from __future__ import annotations

import os
import struct


def send(fd: int, payload: bytes) -> None:
    """Write one framed message to fd (all of it)."""
    data = struct.pack("<I", len(payload)) + payload
    while data:
        done = os.write(fd, data)
        data = data[done:]


def receive_all(fd: int) -> list[bytes]:
    """Every whole message until end of file (a message cut short is dropped)."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    messages = []
    while len(data) >= 4:
        (n,) = struct.unpack("<I", data[:4])
        if len(data) < 4 + n:
            break
        messages.append(data[4:4 + n])
        data = data[4 + n:]
    return messages


def read_message(fd: int) -> bytes | None:
    """One framed message (see send), or None at end of file."""
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack("<I", head)[0])

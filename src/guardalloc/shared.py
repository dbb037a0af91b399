"""Arenas that several processes map at once: a file or memfd plus a layout.

A :class:`SharedArena` is an :class:`~guardalloc.Arena` on a ``MAP_SHARED``
file or memfd. Pickling one (which is what ``multiprocessing`` does to a
worker's arguments) sends the file (its path, or the memfd itself through
multiprocessing's fd passing) and the layout; the worker maps the same file
with guards of its own. The slot contents are shared, nothing else is: each
process keeps its own slot states, and its own guards (installing or lifting
a guard in one process never changes another's).

    shared = SharedArena(4096, 1000)              # a sealed memfd
    buf = shared.alloc(100, slot=7)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.apply(work, (shared,))               # work: shared.attach(7, 100)

Slots are claimed by number: a process that calls ``alloc()`` without a slot
does not know which slots other processes use.
"""

from __future__ import annotations

import os
import typing
from typing import Any, Literal

from guardalloc.arena import Arena, Buffer
from guardalloc.options import check_int

__all__ = ["SharedArena"]

if typing.TYPE_CHECKING:   # annotations only (they are strings at run time)
    _Backend = Literal["auto", "madvise", "mprotect", "none"]
    _Align = Literal["right", "left", "random"]


class SharedArena:
    """An arena on a shared file or memfd that other processes can map.

    SharedArena(slot_size, slots, *, file="memfd", guard_pages=1,
                backend="auto", align="right", alignment=16, uaf=False,
                **arena_options)

    ``file``: "memfd" (anonymous, sealed against shrinking, reachable by
    fork or fd passing), a path (created and sized as needed; its contents
    outlive the arena) or an open read-write file descriptor (duplicated).
    The other arguments are those of :class:`~guardalloc.Arena`; the layout
    ones (slot_size, slots, guard_pages, align, alignment) must match in
    every process, and :meth:`open` and pickling carry them along.

    Raises:
        ValueError, TypeError: as for Arena, or ``file=None``.
        PermissionError: the file descriptor is open read-only.
        OSError, GuardInstallError, GuardUnsupportedError: as for Arena.
    """

    def __init__(self, slot_size: int, slots: int, *, file: Any = "memfd", guard_pages: int = 1,
                 backend: _Backend = "auto", align: _Align = "right", alignment: int = 16, uaf: bool = False,
                 **arena_options: Any) -> None:
        if getattr(self, "arena", None) is not None:
            raise RuntimeError("SharedArena.__init__ called twice")
        if file is None:
            raise ValueError("a SharedArena needs a file: a path, a file descriptor or 'memfd'")
        if "shared" in arena_options:
            raise TypeError("a SharedArena is always shared (MAP_SHARED); use Arena(shared=False)")
        self.arena = Arena(slot_size, slots, guard_pages=guard_pages, backend=backend, align=align,
                           alignment=alignment, uaf=uaf, file=file, shared=True, **arena_options)
        self.path: str | None = None
        if isinstance(file, (str, bytes, os.PathLike)) and file != "memfd":
            self.path = os.path.abspath(os.fsdecode(file))

    @classmethod
    def open(cls, file: str | bytes | os.PathLike | int, slot_size: int, slots: int, *,
             guard_pages: int = 1, backend: _Backend = "auto", align: _Align = "right", alignment: int = 16,
             uaf: bool = False, **arena_options: Any) -> SharedArena:
        """Map the file of an existing shared arena (a path or an fd), with
        this process's own guards. Never creates, grows or clears the file.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is smaller than the layout needs (another
                layout, or the file was truncated).
            OSError: as for :class:`~guardalloc.Arena`.
        """
        if isinstance(file, int) and not isinstance(file, bool):
            fd, owned = file, False
        elif isinstance(file, (str, bytes, os.PathLike)) and file != "memfd":
            fd, owned = os.open(file, os.O_RDWR | os.O_CLOEXEC), True
        else:
            raise TypeError(f"open() takes a path or a file descriptor, not {file!r}")
        try:
            size = os.fstat(fd).st_size
            needed = _arena_size(slot_size, slots, guard_pages)
            if size < needed:
                raise ValueError(
                    f"{file!r} holds {size} bytes, but {slots} slots of {slot_size} bytes with "
                    f"{guard_pages} guard page(s) need {needed}: another layout, or the file was truncated")
            self = cls.__new__(cls)
            self.arena = Arena(slot_size, slots, guard_pages=guard_pages, backend=backend, align=align,
                               alignment=alignment, uaf=uaf, file=fd, shared=True, **arena_options)
            self.path = os.path.abspath(os.fsdecode(typing.cast("str | bytes", file))) if owned else None
            return self
        finally:
            if owned:
                os.close(fd)

    def layout(self) -> dict[str, Any]:
        """What another process passes to :meth:`open` besides the file:
        slot_size, slots, guard_pages, align, alignment, backend, uaf."""
        arena = self.arena
        return {"slot_size": arena.slot_size, "slots": arena.slots, "guard_pages": arena.guard_pages,
                "align": arena.align, "alignment": arena.alignment, "backend": arena.backend,
                "uaf": arena.uaf}

    def alloc(self, nbytes: int, *, slot: int | None = None, zero: bool = True) -> Buffer:
        """A buffer in a free slot (``slot=i``: that one), as :meth:`Arena.alloc`.
        ``zero=True`` clears the bytes, which other processes see too."""
        return self.arena.alloc(nbytes, zero=zero, slot=slot)

    def attach(self, slot: int, nbytes: int) -> Buffer:
        """The buffer of nbytes that another process placed in ``slot``,
        contents untouched. nbytes must be what that process allocated
        (with ``align="right"`` the buffer's start depends on it).

        Raises:
            ValueError: the slot is not free in this process, or nbytes is
                out of range.
        """
        return self.arena.alloc(nbytes, zero=False, slot=slot)

    def free(self, buffer: Buffer | int) -> None:
        """Return a buffer's slot in this process (see :meth:`Arena.free`)."""
        self.arena.free(buffer)

    def close(self) -> None:
        """Unmap the arena in this process (the file and other processes'
        mappings stay). Idempotent."""
        self.arena.close()

    def __enter__(self) -> SharedArena:
        self.arena.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def fd(self) -> int:
        """The file descriptor of the backing file or memfd (this process's)."""
        return self.arena.fd

    @property
    def closed(self) -> bool:
        return self.arena.closed

    def __reduce__(self):
        if self.arena.closed:
            raise ValueError("cannot pickle a closed SharedArena")
        if self.path is not None:
            return (_open_path, (self.path, self.layout()))
        # A memfd has no path another process may open: hand the fd itself
        # over, the way multiprocessing passes its own shared memory.
        from multiprocessing import reduction

        return (_open_fd, (reduction.DupFd(self.arena.fd), self.layout()))

    def __repr__(self) -> str:
        where = "closed" if self.arena.closed else (self.path or f"fd {self.arena.fd}")
        return f"<guardalloc.SharedArena {where}: {self.arena!r}>"


def _arena_size(slot_size: int, slots: int, guard_pages: int) -> int:
    """Bytes an arena of this layout maps (as Arena computes it).

    Raises:
        TypeError, ValueError: an argument is not a positive integer (named).
    """
    page = os.sysconf("SC_PAGE_SIZE")
    slot = -(-check_int("slot_size", slot_size, 1) // page) * page
    guard = check_int("guard_pages", guard_pages, 1) * page
    return guard + check_int("slots", slots, 1) * (slot + guard)


def _open_path(path: str, layout: dict[str, Any]) -> SharedArena:
    return SharedArena.open(path, **layout)


def _open_fd(dup: Any, layout: dict[str, Any]) -> SharedArena:
    fd = dup.detach()
    try:
        return SharedArena.open(fd, **layout)
    finally:
        os.close(fd)

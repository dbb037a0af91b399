"""Exceptions raised by guardalloc.

Every misuse of an arena raises a subclass of :class:`GuardError` (or one of
the built-in exceptions the Python data model expects: ``ValueError`` for a
closed arena or freed buffer, ``BufferError`` while a buffer is exported,
``MemoryError`` when memory or mappings run out).
"""

from __future__ import annotations


class GuardError(Exception):
    """Base class of guardalloc's own errors."""


class FreeError(GuardError):
    """A free that cannot be honoured.

    ``address`` is the address passed to free; ``slot`` the slot it falls in,
    or ``None`` when it lies outside the arena.
    """

    def __init__(self, message: str, address: int | None = None, slot: int | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.slot = slot


class DoubleFreeError(FreeError):
    """The buffer (or address) was already freed."""


class InvalidFreeError(FreeError):
    """The address is not the start of a live buffer of this arena."""


class ForeignBufferError(InvalidFreeError):
    """The buffer or address belongs to another arena (or to none)."""


class CorruptionError(GuardError):
    """The slack bytes after a buffer were overwritten before it was freed.

    The buffer is freed all the same. ``offset`` is the first damaged byte,
    counted from the buffer's start (so ``offset - nbytes`` bytes past its
    end); ``damaged`` is how many slack bytes differ from the pattern.
    """

    def __init__(self, message: str, address: int, slot: int, nbytes: int, offset: int, damaged: int) -> None:
        super().__init__(message)
        self.address = address
        self.slot = slot
        self.nbytes = nbytes
        self.offset = offset
        self.damaged = damaged


class GuardUnsupportedError(GuardError, RuntimeError):
    """The kernel (or a seccomp filter) refuses guard-page advice."""


class GuardInstallError(GuardError, OSError):
    """Installing or removing guard pages failed (``errno`` says why)."""


class BackingFileError(GuardError, OSError):
    """The file behind a file-backed arena no longer covers it: it was
    truncated under the live arena, and the slots past its end would raise
    SIGBUS. ``needed`` is the arena's size, ``size`` the file's."""

    def __init__(self, message: str, needed: int, size: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.size = size


class AddressSpaceError(GuardError, MemoryError):
    """A pool could not reserve its address space (``RLIMIT_AS``, or the
    process's address space is full).

    ``needed`` is the reservation it asked for; ``fits`` the largest
    ``max_bytes`` that would fit now, or ``None`` when not even a small pool
    would. The message ends with what to change, phrased for where the
    pool was asked for (``Pool(max_bytes=...)``,
    ``guardalloc.configure(max_bytes=...)``, ``install(max_bytes=...)``).
    """

    def __init__(self, reason: str, needed: int, fits: int | None, where: str = "Pool()") -> None:
        self.reason = reason
        self.needed = needed
        self.fits = fits
        self.where = where
        if fits is None:
            action = "raise the address-space limit (ulimit -v, RLIMIT_AS) or free address space"
        else:
            action = f"pass max_bytes={fits} or less to {where}"
        super().__init__(f"{reason}: {action}")

    def instead(self, where: str) -> "AddressSpaceError":
        """The same error, its advice for a caller who set ``max_bytes``
        through ``where`` (a call such as ``"guardalloc.configure()"``)."""
        return AddressSpaceError(self.reason, self.needed, self.fits, where)

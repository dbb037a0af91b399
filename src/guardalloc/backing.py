"""Where an arena's memory comes from: the guard backend (madvise where the
kernel allows it, else mprotect) and the backing file of a file-backed arena.
Cold paths, run once per arena."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import warnings
from typing import Any

from guardalloc.errors import GuardUnsupportedError
from guardalloc.introspect.probe import support

__all__ = ["choose_backend", "open_backing", "einval_hint", "einval_reason"]


def einval_hint(err: int, file_backed: bool) -> str:
    """Why the kernel said EINVAL to guard advice on an arena's own mapping."""
    if err != errno.EINVAL:
        return ""
    return (f": {einval_reason(file_backed)}; use backend='mprotect', or munlockall() first")


def einval_reason(file_backed: bool) -> str:
    locked = _locked_kb()
    why = (f"this process has {locked} kB of mlocked memory (mlockall(MCL_FUTURE)?)"
           if locked else "the memory is mlocked?")
    also = " (or, for a file, on hugetlbfs and DAX files)" if file_backed else ""
    return f"{why}, and the kernel refuses guard pages on locked memory{also}"


def _locked_kb() -> int:
    """VmLck of this process (kB), 0 when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmLck:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def choose_backend(backend: str, file_backed: bool) -> str:
    """The backend an arena uses for ``backend`` ("auto", "madvise",
    "mprotect" or "none"): "auto" is madvise where the kernel and sandbox
    allow guard advice, else mprotect with a RuntimeWarning saying why.

    Raises:
        GuardUnsupportedError: "madvise" was asked for and is unavailable.
    """
    if backend in ("mprotect", "none"):
        return backend
    found = support()
    usable = found.file_shared if file_backed else found.anonymous
    if usable or usable is None:
        # None: the probe could not run (no descriptor or memory left), which
        # says nothing about the kernel; the arena's own calls will tell.
        return "madvise"
    what = "file-backed mappings" if file_backed else "anonymous memory"
    why = found.reason or (f"kernel {found.kernel} cannot guard {what} (Linux 6.15+ needed)"
                           if file_backed else f"kernel {found.kernel} has no guard pages")
    if backend == "madvise":
        raise GuardUnsupportedError(
            f"backend='madvise' is unavailable: {why}; use backend='auto' to fall back to mprotect")
    warnings.warn(
        f"guardalloc: MADV_GUARD_INSTALL unavailable for {what} ({why}); falling back to "
        "mprotect guards, which cost two VMAs per slot", RuntimeWarning, stacklevel=2)
    return "mprotect"


def open_backing(file: Any, size: int, shared: bool) -> tuple[int, bool]:
    """(fd, fixed) for a file-backed arena: an fd (ours to close) of at
    least size bytes, and whether the file can no longer shrink (a memfd
    sealed with F_SEAL_SHRINK).

    Raises:
        TypeError: file is not a path, an fd or "memfd".
        PermissionError: shared=True on a file open read-only.
        ValueError: a read-only file smaller than the arena.
        OSError: opening or sizing the file failed.
    """
    writable = True
    if isinstance(file, str) and file == "memfd":
        # Sealed against shrinking below, so that no process can truncate
        # it under a live arena (whose pages would then raise SIGBUS).
        fd = os.memfd_create("guardalloc", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    elif isinstance(file, int) and not isinstance(file, bool):
        if file < 0:
            raise ValueError(f"file descriptor must be 0 or more, not {file}")
        fd = os.dup(file)
        writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    elif isinstance(file, (str, bytes, os.PathLike)):
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if shared or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            # A private (copy-on-write) arena needs only to read the file.
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
    else:
        raise TypeError(f"file must be a path, a file descriptor or 'memfd', not {type(file).__name__}")
    try:
        if not writable and shared:
            raise PermissionError(
                errno.EACCES,
                f"file descriptor {file} is open read-only, but a shared arena writes to the file: "
                "open it O_RDWR, or pass shared=False for a private copy-on-write arena")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(
                f"{file!r} is not a regular file (mode {stat.filemode(st.st_mode)}): an arena "
                "needs a regular file or a memfd")
        if st.st_size < size:
            if not writable:
                raise ValueError(
                    f"the read-only file {file!r} holds {st.st_size} bytes, fewer than the arena's "
                    f"{size}, and cannot be grown")
            os.ftruncate(fd, size)
        if isinstance(file, str) and file == "memfd":
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            fixed = True
        else:
            try:
                fixed = bool(fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK)
            except OSError:
                fixed = False   # not a memfd: files have no seals
    except BaseException:
        os.close(fd)
        raise
    return fd, fixed

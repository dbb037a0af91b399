"""Introspection of a process's memory: its VMAs (/proc/PID/maps) and the
guard pages inside them, which /proc/PID/maps does not show.

Guard pages installed with MADV_GUARD_INSTALL make no VMA: to /proc/PID/maps
and smaps a guarded arena is one ordinary ``rw-p`` mapping, and a program
that reads maps to decide what it may touch (a conservative garbage
collector, a memory scanner) faults on the guards. :func:`guard_pages` finds
them in the page tables and :func:`readable_ranges` gives what may really be
read.

``pid`` is a process ID or ``"self"`` everywhere. Reading another process
needs the same permission as ptrace-reading it (same user, or root).
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple, Union

from guardalloc.errors import GuardUnsupportedError
from guardalloc.options import check_choice, check_int
from guardalloc.introspect.pagemap import PAGE_SIZE, GuardRun, GuardRuns, Range, Ranges, scan, subtract
from guardalloc.introspect.probe import max_map_count, support

__all__ = [
    "GuardRun",
    "GuardRuns",
    "Range",
    "Ranges",
    "Vma",
    "guard_pages",
    "readable_ranges",
    "scan_method",
    "vma_count",
    "vmas",
]

Pid = Union[int, str]

# Mappings the kernel lists but that are not in the process's page tables
# (the legacy vsyscall page lies above the user address space) or whose
# pages may be absent and fault with SIGBUS when read (the vDSO data pages:
# the time-namespace page and clock pages of a hypervisor that lacks them).
_SPECIAL_UNREADABLE = ("[vsyscall]", "[vvar]", "[vvar_vclock]")


class Vma(NamedTuple):
    """One line of /proc/PID/maps: a virtual memory area."""

    start: int
    end: int
    perms: str      # "rw-p": read, write, execute, p(rivate) or s(hared)
    offset: int     # into the mapped file
    dev: str        # "major:minor" of the file's device
    inode: int      # 0 for anonymous memory
    path: str       # file, "[heap]", "[stack]", ... or "" for anonymous

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def shared(self) -> bool:
        return self.perms[3:4] == "s"

    def __repr__(self):
        return (f"Vma(start={self.start:#x}, end={self.end:#x}, perms={self.perms!r}, "
                f"offset={self.offset:#x}, dev={self.dev!r}, inode={self.inode}, path={self.path!r})")


def _proc(pid: Pid, name: str) -> str:
    return f"/proc/{_check_pid(pid)}/{name}"


def _check_pid(pid: Pid) -> Pid:
    """pid as 'self' or a process ID (an int of 1 or more).

    Raises:
        TypeError: neither 'self' nor an integer.
        ValueError: not a positive process ID.
    """
    if pid == "self":
        return pid
    try:
        return check_int("pid", pid, 1, (1 << 31) - 1, "a process ID (1 or more) or 'self'")
    except TypeError:
        raise TypeError(f"pid must be a process ID or 'self', not {pid!r}") from None


def _read_maps(pid: Pid) -> bytes:
    path = _proc(pid, "maps")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"may not read the memory map of process {pid} ({path}): "
                                         f"{_why_no_ptrace_read(path)}") from None


def _why_no_ptrace_read(path: str) -> str:
    """Why reading a process's maps was refused: another user's process, or
    (the same user, or root) the kernel's ptrace policy."""
    try:
        owner = os.stat(os.path.dirname(path)).st_uid
    except OSError:
        owner = None
    euid = os.geteuid()
    if owner is not None and owner != euid and euid != 0:
        return "it belongs to another user (needs ptrace read access)"
    return ("the kernel refused ptrace read access (kernel.yama.ptrace_scope, a container or "
            "sandbox boundary, or a missing CAP_SYS_PTRACE)")


def vma_count(pid: Pid = "self") -> int:
    """Number of VMAs (lines of /proc/PID/maps) of a process.

    Raises:
        ProcessLookupError: no such process.
        PermissionError: the process's maps may not be read.
    """
    return _read_maps(pid).count(b"\n")


def vmas_in_range(start: int, end: int, pid: int | str = "self") -> int:
    """Number of VMAs of a process that overlap ``[start, end)``.

    For an arena this is exact: 1 for the madvise and none backends (the
    one mapping; it may extend beyond the range if the kernel merged it with a
    neighbour), ``2 * slots + 1`` for mprotect guards (each guard and each
    slot is a VMA of its own).

    Raises:
        ValueError: ``end <= start``.
        ProcessLookupError: no such process.
    """
    start = _check_address("start", start)
    end = _check_address("end", end)
    if end <= start:
        raise ValueError(f"end ({end:#x}) must be above start ({start:#x})")
    count = 0
    for line in _read_maps(pid).splitlines():
        dash = line.index(b"-")
        space = line.index(b" ", dash)
        low = int(line[:dash], 16)
        high = int(line[dash + 1:space], 16)
        if low < end and high > start:
            count += 1
    return count


def vmas(pid: Pid = "self") -> list[Vma]:
    """The VMAs of a process, in address order, parsed from /proc/PID/maps.

    Guard pages installed with MADV_GUARD_INSTALL do not appear here (they
    live inside an ordinary VMA); :func:`guard_pages` finds them.

    Raises:
        ProcessLookupError: no such process.
        PermissionError: the process's maps may not be read.
    """
    result = []
    for line in _read_maps(pid).splitlines():
        fields = line.split(None, 5)
        start, _, end = fields[0].partition(b"-")
        result.append(Vma(
            int(start, 16), int(end, 16), fields[1].decode(), int(fields[2], 16),
            fields[3].decode(), int(fields[4]), os.fsdecode(fields[5].strip()) if len(fields) > 5 else "",
        ))
    return result


def scan_method() -> str:
    """How :func:`guard_pages` finds guards here: "scan" (the PAGEMAP_SCAN
    ioctl with PAGE_IS_GUARD) or "pagemap" (bit 58 of each pagemap entry)."""
    return "scan" if support().pagemap_scan else "pagemap"


def _check_address(name: str, value: object) -> int:
    """An address bound: an int from 0 to 2**64 (an exclusive end may be 2**64).

    Raises:
        TypeError, ValueError: naming the parameter.
    """
    return check_int(name, value, 0, 2**64, "an address from 0 to 2**64")


def _page_range(start: int, end: int) -> tuple[int, int]:
    start = _check_address("start", start)
    end = _check_address("end", end)
    if start > end:
        raise ValueError(f"start ({start:#x}) is above end ({end:#x})")
    return start // PAGE_SIZE * PAGE_SIZE, -(-end // PAGE_SIZE) * PAGE_SIZE


def _clip(areas: list[Vma], start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) cut into its pieces in each VMA that lies in the page
    tables (one range per VMA, so that no guard run crosses a VMA)."""
    ranges = []
    for vma in areas:
        if vma.end <= start or vma.start >= end or vma.path == "[vsyscall]":
            continue
        ranges.append((max(vma.start, start), min(vma.end, end)))
    return ranges


def _method(method: str) -> str:
    check_choice("method", method, ("auto", "scan", "pagemap"))
    if method == "auto":
        return scan_method()
    if method == "scan":
        found = support()
        if found.pagemap_scan is None:
            raise GuardUnsupportedError(
                f"cannot tell whether PAGEMAP_SCAN works here: its probe could not run "
                f"({found.unknown}); use method='pagemap' or 'auto'")
        if not found.pagemap_scan:
            raise GuardUnsupportedError(
                "PAGEMAP_SCAN with PAGE_IS_GUARD is unavailable on this kernel "
                f"({os.uname().release}); use method='pagemap' or 'auto'")
        return method
    if method == "pagemap":
        found = support()
        if found.anonymous and found.pagemap_guard_bit is False:
            # Guards exist but pagemap would report none: refuse rather
            # than answer "no guards" wrongly.
            raise GuardUnsupportedError(
                f"kernel {found.kernel} has guard pages but does not mark them in "
                "/proc/PID/pagemap (bit 58, Linux 6.15+)")
        return method
    raise ValueError(f"method must be 'auto', 'scan' or 'pagemap', not {method!r}")


def _scan(pid: Pid, ranges: list[tuple[int, int]], method: str) -> GuardRuns:
    try:
        return scan(pid, ranges, method)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"may not read the page tables of process {pid} "
                                         f"(/proc/{pid}/pagemap): needs ptrace read access") from None


def guard_pages(start: int, end: int, pid: Pid = "self", *, method: str = "auto") -> GuardRuns:
    """The guard pages of process ``pid`` in ``[start, end)``, merged into
    runs of consecutive guard pages; a run never crosses from one VMA into
    the next.

    ``start`` and ``end`` are widened to whole pages; only the parts inside
    the process's VMAs are scanned, so ``guard_pages(0, 2**64)`` covers the
    whole process. ``method``: "scan" uses the PAGEMAP_SCAN ioctl with
    PAGE_IS_GUARD (the kernel returns the runs), "pagemap" reads bit 58 of
    every page's /proc/PID/pagemap entry, 64 Ki entries per read; "auto"
    picks "scan" where the kernel supports it. Both find guards installed
    with MADV_GUARD_INSTALL; PROT_NONE (mprotect) guards are VMAs of their
    own, visible in :func:`vmas`, and not reported here.

    Raises:
        TypeError, ValueError: bad addresses, pid or method.
        ProcessLookupError: no such process (or it exited meanwhile).
        PermissionError: its maps or pagemap may not be read.
        GuardUnsupportedError: the method cannot see guards on this kernel.
        OSError: the kernel refused the scan.
    """
    start, end = _page_range(start, end)
    method = _method(method)
    return _scan(pid, _clip(vmas(pid), start, end), method)


def _file_limit(vma: Vma, pid: Pid) -> int | None:
    """End address of the pages a file mapping may be read at (its file
    may have been truncated below the mapping: reading there is SIGBUS), or
    None when the file size cannot be found."""
    if vma.inode == 0 or not vma.path.startswith("/"):
        return None
    try:
        # The file the VMA maps, even if renamed or deleted (root only).
        st = os.stat(f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}")
    except OSError:
        try:
            st = os.stat(vma.path)
        except OSError:
            return None
        if st.st_ino != vma.inode:
            return None
    if not stat.S_ISREG(st.st_mode):
        return None   # a device or other special file: no size to go by
    pages = -(-st.st_size // PAGE_SIZE)
    return vma.start + max(0, pages * PAGE_SIZE - vma.offset)


def readable_ranges(pid: Pid = "self", *, method: str = "auto") -> Ranges:
    """What process ``pid`` may really read: every readable VMA minus its
    guard pages, as sorted, disjoint :class:`Range` items (neighbours
    merged) in a compact :class:`Ranges` sequence.

    This is the list a conservative garbage collector or memory scanner
    wants instead of /proc/PID/maps. Also left out: the parts of a file
    mapping past the end of its (truncated) file, which raise SIGBUS, and
    the vsyscall and vDSO data pages ([vvar], [vvar_vclock]), parts of
    which may be absent.

    Raises:
        ProcessLookupError: no such process.
        PermissionError: its maps or pagemap may not be read.
        GuardUnsupportedError, OSError: as for :func:`guard_pages`.
    """
    pid = _check_pid(pid)
    method = _method(method)
    areas = [vma for vma in vmas(pid) if vma.readable and vma.path not in _SPECIAL_UNREADABLE]
    pieces = []
    for vma in areas:
        limit = _file_limit(vma, pid)
        end = vma.end if limit is None else max(vma.start, min(vma.end, limit))
        if end > vma.start:
            pieces.append((vma.start, end))
    return subtract(pieces, _scan(pid, pieces, method))

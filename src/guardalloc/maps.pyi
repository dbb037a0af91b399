"""Introspection of a process's memory: VMAs and the guard pages inside them."""

from typing import NamedTuple, Union

from guardalloc.pagemap import GuardRun as GuardRun
from guardalloc.pagemap import GuardRuns as GuardRuns
from guardalloc.pagemap import Range as Range
from guardalloc.pagemap import Ranges as Ranges

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

class Vma(NamedTuple):
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str
    @property
    def size(self) -> int: ...
    @property
    def readable(self) -> bool: ...
    @property
    def shared(self) -> bool: ...

def vma_count(pid: Pid = "self") -> int: ...
def vmas(pid: Pid = "self") -> list[Vma]: ...
def vmas_in_range(start: int, end: int, pid: Pid = "self") -> int: ...
from guardalloc.support import max_map_count as max_map_count
def scan_method() -> str: ...
def guard_pages(start: int, end: int, pid: Pid = "self", *, method: str = "auto") -> GuardRuns: ...
def readable_ranges(pid: Pid = "self", *, method: str = "auto") -> Ranges: ...

"""Introspection of a process's mappings (/proc/PID/maps)."""

from __future__ import annotations


def _proc(pid: int | str, name: str) -> str:
    return f"/proc/{pid}/{name}"


def vma_count(pid: int | str = "self") -> int:
    """Number of VMAs (lines of /proc/PID/maps) of a process.

    Raises:
        ProcessLookupError: no such process.
        PermissionError: the process's maps may not be read.
    """
    try:
        with open(_proc(pid, "maps"), "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None

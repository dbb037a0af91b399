"""Fault reports: the JSON report files the C handler writes, and the one-line
description and trimmed traceback the plugin shows for a fault."""

from __future__ import annotations

import glob
import json
import os
import signal
import stat

import pytest

from guardalloc.faults import expand_log_path   # the C handler's own %p expansion

# user_properties key of a test report: one JSON fault report.
FAULT_PROPERTY = "guardalloc_fault"
# Frames of the plugin itself (left out of the tracebacks it shows).
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def report_directory(path: str) -> str:
    """The absolute path of the report directory ``path``, created with mode
    0700 when it does not exist. One that exists must be a directory of the
    effective user (not a symbolic link) that no group or other user may write
    to: reports carry the process's addresses, and whoever can write to the
    directory can plant a link where a report is about to go.

    Raises:
        pytest.UsageError: it cannot be created, or the one there fails a rule.
    """
    what = "--guardalloc-report-dir"
    try:
        os.makedirs(path, mode=0o700)
        return os.path.abspath(path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise pytest.UsageError(f"{what}: cannot create {path}: {exc.strerror}") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by another user (uid {info.st_uid})"
    elif info.st_mode & 0o022:
        problem = (f"may be written to by group or other users "
                   f"(mode {stat.S_IMODE(info.st_mode):04o}; chmod go-w it)")
    else:
        return os.path.abspath(path)
    raise pytest.UsageError(f"{what}: {path} {problem}")


def read_reports(path: str, pid: int | None = None) -> list[dict]:
    """The JSON reports in a log file (one object per line), only those of
    process pid when given; [] when the file does not exist. Lines that are
    not JSON (a report cut short) are skipped."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                if isinstance(report, dict) and (pid is None or report.get("pid") == pid):
                    found.append(report)
    except FileNotFoundError:
        pass
    return found


def describe(report: dict) -> str:
    """One line: kind, access and the buffer's size, as the summary shows it
    (for a bad free the native heap found, access "free": what was freed)."""
    size = report.get("size")
    offset = report.get("offset")
    if report.get("access") == "free":
        return _describe_free(report, size, offset)
    where = ""
    if size is not None and offset is not None:
        if offset >= size:
            where = f", {offset - size} bytes past the end of a {size}-byte buffer"
        elif offset < 0:
            where = f", {-offset} bytes before a {size}-byte buffer"
        else:
            where = f", at offset {offset} of a {size}-byte buffer"
    return f"{report.get('kind')} {report.get('access')}{where}"


def _describe_free(report: dict, size: int | None, offset: int | None) -> str:
    kind = report.get("kind")
    if kind == "bad-free":
        memory = report.get("memory") or {}
        if memory.get("kind") == "guardalloc":   # another front end's block, not malloc()'s
            owner = memory.get("module")
            what = (f"a block that {owner} freed already" if memory.get("slot_state") not in (None, "live")
                    else f"a {size}-byte block of {owner}" if size is not None and offset == 0
                    else f"a pointer into {owner}")
            return f"bad-free by {report.get('freed_by')} of {what}, not malloc()'s"
        return f"bad-free by {report.get('freed_by')} of {memory.get('kind')} memory (not from any allocator)"
    if size is None or offset is None:
        return f"{kind} at free, of a pointer in no slot"
    if kind == "heap-buffer-overflow":
        return (f"heap-buffer-overflow found at free: {report.get('damaged')} slack byte(s) "
                f"after a {size}-byte buffer overwritten")
    if kind == "heap-buffer-underflow":
        return (f"heap-buffer-underflow found at free: {report.get('damaged')} byte(s) "
                f"before a {size}-byte buffer overwritten")
    if kind == "alloc-dealloc-mismatch":
        return (f"alloc-dealloc-mismatch: a {size}-byte buffer from {report.get('allocated_by')} "
                f"freed by {report.get('freed_by')}")
    if offset == 0:
        return f"{kind} of a {size}-byte buffer (slot {report.get('slot')})"
    side = f"{offset} bytes inside" if offset > 0 else f"{-offset} bytes before"
    return f"{kind} of a pointer {side} a {size}-byte buffer (slot {report.get('slot')})"


def signal_name(number: int) -> str:
    """SIGSEGV for 11; "signal N" for a number that names no signal."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def trim_traceback(text: str) -> str:
    """faulthandler's output without the frames of pytest's machinery below
    the test (the innermost frames come first) and the extension list."""
    kept = []
    skipping = False
    for line in text.strip().splitlines():
        if line.startswith("Extension modules:"):
            continue
        frame = line.lstrip().startswith("File ")
        if frame and any(part in line for part in ("/_pytest/", "/pluggy/", PLUGIN_DIR)):
            if not skipping:
                kept.append("  ... (pytest's and guardalloc's frames)")
            skipping = True
            continue
        if not frame:
            skipping = False
        elif skipping:
            continue    # the session's frames below pytest's
        kept.append(line)
    return "\n".join(kept).strip()


def unread_reports(template: str, nodeid: str, seen: set[tuple[str, int]]) -> list[dict]:
    """The JSON reports in the files of a ``%p`` template that name the
    test nodeid and are not in seen, (file, line) pairs; adds them to seen."""
    found = []
    for path in sorted(glob.glob(expand_log_path(glob.escape(template), "*"))):
        for index, report in enumerate(read_reports(path)):
            if (report.get("test") or {}).get("nodeid") == nodeid and (path, index) not in seen:
                seen.add((path, index))
                found.append(report)
    return found

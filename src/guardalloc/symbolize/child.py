"""Running a program as a child whose fault reports come back symbolized.

The launcher (``exec``, ``run``) used to exec() the program, so the
dying process was the last one to see its report. Now it starts the program
as a child, hands it the write end of a pipe (GUARDALLOC_REPORT_PIPE:
"FD:INODE", read by the preloaded library or, under ``run``, by the child
interpreter), reads the raw text reports from it as they come, and writes
them symbolized to its own stderr. It then dies the way the child died (the
same signal, or the same exit status), so callers and shells see what they
saw before.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
import threading
from typing import Mapping, Optional, Sequence, TextIO

from guardalloc.symbolize.symbolizer import Symbolizer
from guardalloc.symbolize.text import TextRewriter

REPORT_PIPE_ENV = "GUARDALLOC_REPORT_PIPE"
# Signals a terminal sends the whole foreground group: the child gets them
# itself; the launcher must outlive it to finish its report.
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
# Signals sent to the launcher alone: passed on to the child.
_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def report_pipe_fd(value: Optional[str]) -> Optional[int]:
    """The descriptor a GUARDALLOC_REPORT_PIPE value ("FD:INODE") names,
    when it is still that pipe in this process (a descriptor closed and
    reused for something else is not written into); else None."""
    fd_text, _, inode = (value or "").partition(":")
    if not fd_text.isdigit() or not inode.isdigit():
        return None
    try:
        st = os.fstat(int(fd_text))
    except OSError:
        return None
    return int(fd_text) if stat.S_ISFIFO(st.st_mode) and st.st_ino == int(inode) else None


def _pump(fd: int, out: TextIO, symbolizer: Optional[Symbolizer], child_done: threading.Event) -> None:
    """Copy the reports that arrive on fd to out, symbolized line by line,
    until every writer has closed it or the child has died and nothing is
    left to read (a descendant that outlives the child keeps it open)."""
    rewriter = TextRewriter(symbolizer) if symbolizer is not None else None
    pending = b""

    def emit(lines):
        for text in lines:
            for done in (rewriter.feed(text) if rewriter else [text]):
                out.write(done + "\n")
        out.flush()

    try:
        while True:
            readable, _, _ = select.select([fd], [], [], 0.1)
            if not readable:
                if child_done.is_set():
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            emit(line.decode("utf-8", "replace") for line in lines)
        if pending:
            emit([pending.decode("utf-8", "replace")])
        if rewriter is not None:
            for done in rewriter.close():
                out.write(done + "\n")
        out.flush()
    finally:
        os.close(fd)


def run_symbolized(argv: Sequence[str], env: Mapping[str, str], *, symbolize: bool = True,
                   out: TextIO = sys.stderr) -> int:
    """Run argv with env as a child whose text reports come back through a
    pipe and are written to out symbolized (raw when ``symbolize`` is False
    or no symbolizer is installed). Returns the child's exit status; when a
    signal killed the child, re-raises that signal on this process (and
    returns 128 + its number if that does not end it). Raises OSError when
    the program cannot be started."""
    read_end, write_end = os.pipe()
    child_env = dict(env)
    child_env[REPORT_PIPE_ENV] = f"{write_end}:{os.fstat(write_end).st_ino}"
    symbolizer = Symbolizer() if symbolize else None
    if symbolizer is not None and symbolizer.backend is None:
        symbolizer = None
    try:
        child = subprocess.Popen(list(argv), env=child_env, pass_fds=(write_end,))
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    child_done = threading.Event()
    pump = threading.Thread(target=_pump, args=(read_end, out, symbolizer, child_done), daemon=True)
    pump.start()
    previous = {}
    for sig in _GROUP_SIGNALS:
        previous[sig] = signal.signal(sig, signal.SIG_IGN)
    for sig in _FORWARDED:
        previous[sig] = signal.signal(sig, lambda s, _f: child.send_signal(s))
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The child's reports are all in the pipe now (it wrote them before it
    # died); the pump stops when it has read them, even if a descendant that
    # outlives the child keeps the pipe open.
    child_done.set()
    pump.join()
    if status < 0:
        sys.stdout.flush()
        out.flush()
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status

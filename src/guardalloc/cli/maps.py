"""``python -m guardalloc maps [PID] [--all]``: a pmap-like table of a
process's VMAs with the guard pages inside them, which /proc/PID/maps hides.

Every VMA gets a line (address, size, permissions, guard pages, mapping);
under each VMA that holds guards, its guard runs follow (the first few, or
all of them with ``--all``); totals close the table. On a terminal, long
paths are cut to its width and guard lines are highlighted; piped output is
plain text with nothing cut.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TextIO

from guardalloc.errors import GuardUnsupportedError
from guardalloc.introspect.maps import GuardRuns, Vma, guard_pages, vmas

# Guard runs listed per VMA without --all.
RUNS_SHOWN = 3
_BOLD, _GUARD, _RESET = "\033[1m", "\033[33m", "\033[0m"


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("this command's own VMAs and the guard pages inside them", ""),
    ("every guard run of process 1234", "--all 1234"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", nargs="?", default="self",
                        help="process ID (default: this command's own process)")
    parser.add_argument("--all", action="store_true",
                        help=f"list every guard run (default: the first {RUNS_SHOWN} per VMA)")


def _parse_pid(text: str) -> int | str:
    if text == "self":
        return "self"
    try:
        pid = int(text, 10)
    except ValueError:
        raise ValueError(f"PID must be a process ID or 'self', not {text!r}") from None
    if pid <= 0:
        raise ValueError(f"PID must be positive, not {pid}")
    return pid


def _command_line(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(os.fsdecode(w) for w in words if w).replace("\n", " ")
    if len(text) > 160:
        text = text[:159] + "…"
    if not text:   # a kernel thread or a zombie
        try:
            with open(f"/proc/{pid}/comm") as f:
                text = f"[{f.read().strip()}]"
        except OSError:
            text = "?"
    return text


def _kb(nbytes: int) -> str:
    return f"{nbytes // 1024:,}"


def _pages(n: int) -> str:
    return f"{n:,} page" + ("" if n == 1 else "s")


def _label(vma: Vma, inside: GuardRuns, previous_guarded: bool) -> str:
    """What an unnamed VMA is, as far as its guards tell: slots between guards
    at a constant stride (a guardalloc arena), or the PROT_NONE tail right
    after one (slots not used yet: guardalloc installs their guards on first
    use, so the tail waits as one PROT_NONE range, and a stray access there
    faults too)."""
    if vma.path:
        return vma.path
    if len(inside) >= 2:
        strides = {b.start - a.start for a, b in zip(inside, inside[1:])}
        if len(strides) == 1:
            stride = strides.pop()
            return f"[guarded slots: {_kb(stride - inside[0].size)} kB between guards]"
    if vma.perms[:3] == "---" and previous_guarded:
        return "[slots not used yet: guarded on first use]"
    return ""


def _fit(line: str, path: str, width: int) -> str:
    """line cut to width columns, cutting the start of the path (its file
    name is what tells mappings apart) before anything else."""
    if not width or len(line) <= width:
        return line
    keep = width - (len(line) - len(path)) - 1
    if keep >= 12:
        return line[:len(line) - len(path)] + "…" + path[len(path) - keep:]
    return line[:width - 1] + "…"


def render(pid: int | str, show_all: bool = False, out: TextIO = sys.stdout, terminal: bool | None = None) -> None:
    """Write the table for process ``pid`` to ``out``.

    Raises:
        ProcessLookupError, PermissionError, GuardUnsupportedError, OSError:
            as for :func:`guardalloc.maps.guard_pages`.
    """
    if terminal is None:
        terminal = out.isatty()
    width = shutil.get_terminal_size().columns if terminal else 0
    bold, guard, reset = (_BOLD, _GUARD, _RESET) if terminal else ("", "", "")
    areas: list[Vma] = vmas(pid)
    runs: GuardRuns = guard_pages(0, 2**64, pid)
    real_pid = os.getpid() if pid == "self" else pid

    out.write(f"{bold}{real_pid}: {_command_line(pid)}{reset}\n")
    if not areas:
        out.write("no user-space mappings (a kernel thread, or a process that is exiting)\n")
        return
    header = f"{'Address':<16} {'Kbytes':>12} {'Perm':<4} {'Guards':>10}  Mapping"
    out.write(f"{bold}{header}{reset}\n")
    mapped = guard_vmas = prot_none = 0
    previous_guarded = False
    for vma in areas:
        inside = runs.within(vma.start, vma.end)
        mapped += vma.size
        if vma.perms[:3] == "---":
            prot_none += 1
        pages = inside.pages
        guarded = f"{pages:,}" if pages else "-"
        path = _label(vma, inside, previous_guarded)
        previous_guarded = bool(pages)
        line = f"{vma.start:016x} {_kb(vma.size):>12} {vma.perms:<4} {guarded:>10}  {path}"
        out.write(_fit(line, path, width) + "\n")
        if not pages:
            continue
        guard_vmas += 1
        shown = len(inside) if show_all else min(len(inside), RUNS_SHOWN)
        indent = " " * 17
        for run in inside[:shown]:
            out.write(f"{indent}{guard}guard {run.start:016x}-{run.end:016x} "
                      f"{_pages(run.pages)}{reset}\n")
        if shown < len(inside):
            out.write(f"{indent}{guard}... {len(inside) - shown:,} more guard run(s) "
                      f"({len(inside):,} in all; --all lists them){reset}\n")
    via = "PAGEMAP_SCAN" if runs.method == "scan" else "/proc/PID/pagemap bit 58"
    out.write(f"{bold}total: {len(areas):,} VMAs, {_kb(mapped)} kB mapped; "
              f"{_pages(runs.pages)} of guard ({_kb(runs.size)} kB) in {len(runs):,} run(s) "
              f"inside {guard_vmas:,} VMA(s), found with {via}; "
              f"{prot_none:,} PROT_NONE VMA(s){reset}\n")


def run(args: argparse.Namespace) -> int:
    try:
        pid = _parse_pid(args.pid)
        render(pid, args.all)
    except ValueError as exc:
        print(f"guardalloc maps: {exc}", file=sys.stderr)
        return 2   # a usage error, as argparse's
    except ProcessLookupError:
        print(f"guardalloc maps: no process {args.pid}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"guardalloc maps: cannot read process {args.pid}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0   # `| head`: the reader has all it wanted
    except (OSError, GuardUnsupportedError) as exc:
        print(f"guardalloc maps: cannot read process {args.pid}: {exc}", file=sys.stderr)
        return 1
    return 0

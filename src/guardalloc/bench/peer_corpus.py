"""The corpus table of ``bench --peers``: every program of tests/native/corpus
and tests/native/corpus/classes, and its bug-free twin (the same source built
with ``-DTWIN``), run once under each tool in its default configuration, then
counted by bug class: how many bugs the tool caught, how many twins it left
silent. Besides, the over-read grid (classes/overread.c: reading 1 to 15
bytes past blocks of 1 to 17 bytes), one row per block size.

Each tool's default configuration (what a user gets by starting it):

- guardalloc: ``guardalloc exec -- PROGRAM`` (every allocation guarded, the
  library's defaults: ``alignment=auto``, ``align=right``, ``uaf=0``). The
  over-read grid preloads the same library with exec's options
  (``sample_rate=1``) without exec's launcher, which only adds symbolized
  frames (272 runs).
- Electric Fence and DUMA: preloaded, their defaults (banners off).
- GWP-ASan: scudo preloaded with ``GWP_ASAN_SampleRate=1`` (every allocation
  a GWP-ASan one, as many as it can hold: at its default 1 in 5000 a short
  program gets none); scudo's own checks count as the tool's reports.
- valgrind memcheck: ``valgrind -q --error-exitcode=99``.
- ASan: the source rebuilt with ``-fsanitize=address`` (the compile-time
  reference), ``ASAN_OPTIONS=exitcode=99:detect_leaks=0``.

A program counts as caught when the tool reported it and stopped it
(``outcome``): the tool's report on stderr (valgrind, which goes on after a
report: its report or its error exit status), or, for Electric Fence and
DUMA, whose guard pages fault with no message, death by SIGSEGV or SIGBUS.
A program that died without the tool's report (glibc's own abort, a stray
SIGSEGV) "crashed"; one that ran to its end unreported was "missed". A twin
is silent when it exits 0 and the tool printed no report.

``quick`` (CI) runs one program of each class and its twin, and the grid's
corners (blocks of 1, 3, 13 and 17 bytes, reads 1 and 15 bytes past), instead
of all of them.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

CAUGHT, CRASHED, MISSED, HUNG, SILENT, REPORTED = "caught", "crashed", "missed", "hung", "silent", "reported"
NOT_BUILT = "does not build"
TIMEOUT = 120

# The bug class of each corpus program (a new program must be added here:
# tests/native/test_native_peers.py checks that every one is).
CLASSES = {
    "bad-free (stack, alloca, global, static, literal, mapping, thread stack)": [
        "free_stack_array", "free_alloca", "free_global", "free_static_local", "free_string_literal",
        "free_mapping", "free_thread_stack", "delete_stack_object", "realloc_global"],
    "alloc-dealloc-mismatch (every pair)": [
        "new_array_free", "new_array_delete", "new_array_realloc", "new_free", "new_delete_array",
        "nothrow_new_delete_array", "malloc_delete", "strdup_delete", "aligned_new_array_free"],
    "underwrite of 1 and 8 bytes (32-byte block)": ["underwrite_1", "underwrite_8"],
    "underflow write, 1 byte": ["underflow"],
    "overflow write (malloc, aligned_alloc, posix_memalign, realloc, new[], strcpy)": [
        "overflow_write", "aligned_alloc_overflow", "posix_memalign_overflow", "realloc_shrink_overflow",
        "new_array_overflow", "strcpy_overflow", "slack_overflow"],
    "overflow read, 1 byte past 13": ["overflow_read"],
    "use after free (read, write)": ["uaf_read", "uaf_write"],
    "double free": ["double_free"],
    "realloc of a freed block": ["realloc_freed"],
    "invalid free (inside a block)": ["invalid_free"],
}
GRID_SIZES, GRID_READS = range(1, 18), range(1, 16)
QUICK_GRID_SIZES, QUICK_GRID_READS = (1, 3, 13, 17), (1, 15)

# Report markers on stderr, per tool (the names peers.tools() gives).
_MARKERS = {
    "guardalloc": re.compile(r"^==\d+== guardalloc: (.*)$", re.M),
    "Electric Fence": re.compile(r"^(ElectricFence Aborting: .*)$", re.M),
    "DUMA": re.compile(r"^(DUMA Aborting: .*)$", re.M),
    "GWP-ASan (scudo)": re.compile(r"^\*\*\* GWP-ASan detected a memory error \*\*\*\n(.*)$|^(Scudo ERROR: .*)$",
                                   re.M),
    "valgrind memcheck": re.compile(r"^==\d+== ((?:Invalid|Mismatched|Source and destination|Conditional jump"
                                    r"|Use of uninitialised|Syscall param|Argument) .*)$", re.M),
    "ASan (recompiled)": re.compile(r"^==\d+==ERROR: AddressSanitizer: (.*)$", re.M),
}
# Tools whose guard pages stop a program with no message: the signal is their report.
_SILENT_GUARDS = ("Electric Fence", "DUMA")
ERROR_STATUS = 99


def report_of(tool: str, stderr: str) -> Optional[str]:
    """The first report line tool printed on stderr (its kind and where), or None."""
    found = _MARKERS[tool].search(stderr)
    if found is None:
        return None
    return next(group for group in found.groups() if group is not None).strip()[:160]


def outcome(tool: str, returncode, stderr: str, twin: bool = False) -> str:
    """What one run means. A bug: caught, crashed (died without the tool's
    report), missed (ran to its end unreported) or hung. A twin: silent
    (exit 0, no report), reported (the tool reported a bug-free program) or
    crashed. returncode is the process's (negative: killed by that signal),
    or None when it hung."""
    if returncode is None:
        return HUNG
    report = report_of(tool, stderr)
    guard_fault = tool in _SILENT_GUARDS and returncode in (-signal.SIGSEGV, -signal.SIGBUS)
    if twin:
        if report is not None or guard_fault:
            return REPORTED
        return SILENT if returncode == 0 else CRASHED
    if tool == "valgrind memcheck":   # reports and goes on; its status says it reported
        caught = report is not None or returncode == ERROR_STATUS
    else:
        caught = report is not None and returncode != 0
    if caught or guard_fault:
        return CAUGHT
    return CRASHED if returncode < 0 else MISSED


def sources(corpus: str) -> dict:
    """name -> source path of every corpus program (the top level and classes/, not the grid's)."""
    found = glob.glob(os.path.join(corpus, "*.c")) + glob.glob(os.path.join(corpus, "*.cc"))
    found += glob.glob(os.path.join(corpus, "classes", "*.c")) + glob.glob(os.path.join(corpus, "classes", "*.cc"))
    named = {os.path.splitext(os.path.basename(s))[0]: s for s in sorted(found)}
    named.pop("overread", None)
    return named


def class_of(name: str) -> Optional[str]:
    return next((cls for cls, names in CLASSES.items() if name in names), None)


def _argv_env(tool, program: str, guardalloc_exec: bool) -> tuple:
    """The command line and environment of one run of program under tool."""
    env = dict(os.environ)
    for name in ("PYTHONFAULTHANDLER", "GUARDALLOC_OPTIONS", "LD_PRELOAD"):
        env.pop(name, None)
    if tool.name == "guardalloc":
        if guardalloc_exec:
            return [sys.executable, "-m", "guardalloc", "exec", "--", program], env
        env.update(LD_PRELOAD=tool.library, GUARDALLOC_OPTIONS="sample_rate=1")
        return [program], env
    if tool.kind == "preload":
        env["LD_PRELOAD"] = tool.library
    # The tool's own settings, less what only the byte-exact table asks for.
    env.update({k: v for k, v in tool.base.items() if k != "DUMA_ALIGNMENT"})
    return tool.argv([program]), env


def _run(argv: list, env: dict) -> tuple:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT)
        return proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return None, ""


def corpus_table(all_tools: list, corpus: str, out_dir: str, quick: bool, grid: bool = True,
                 workers: Optional[int] = None) -> dict:
    """Run every corpus program and its twin (quick: one per class) under
    every installed tool, and the over-read grid; returns
    ``{"programs": {tool: {name: {"class", "bug", "twin", "report"}}},
    "grid": {tool: {n: [k caught...]}}, "quick": quick}``."""
    named = sources(corpus)
    if quick:
        named = {names[0]: named[names[0]] for names in CLASSES.values() if names[0] in named}
    sizes, reads = (QUICK_GRID_SIZES, QUICK_GRID_READS) if quick else (GRID_SIZES, GRID_READS)
    overread = os.path.join(corpus, "classes", "overread.c")
    results: dict = {"quick": quick, "programs": {}, "grid": {}, "grid_twins": {}, "not_installed": []}
    installed = [tool for tool in all_tools if tool.library is not None]
    results["not_installed"] = [tool.name for tool in all_tools if tool.library is None]
    # Builds first, in parallel (ASan's clang takes a while), each program once.
    wanted = [(tool, source, twin) for tool in installed
              for source in [*named.values(), *([overread] if grid else [])] for twin in (False, True)]

    def build(item):
        tool, source, twin = item
        try:
            return tool.build(source, out_dir, ["-DTWIN"] if twin else [])
        except subprocess.CalledProcessError:
            return None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        built = dict(zip([(t.name, s, w) for t, s, w in wanted], pool.map(build, wanted)))
    jobs = []   # (tool, key, twin, argv, env)
    for tool in installed:
        rows = results["programs"][tool.name] = {}
        for name, source in named.items():
            rows[name] = {"class": class_of(name)}
            for twin in (False, True):
                program = built[(tool.name, source, twin)]
                if program is None:
                    rows[name]["twin" if twin else "bug"] = NOT_BUILT
                else:
                    jobs.append((tool, ("program", name), twin, *_argv_env(tool, program, True)))
        program, twin_program = built.get((tool.name, overread, False)), built.get((tool.name, overread, True))
        if grid and program is not None and twin_program is not None:
            results["grid"][tool.name] = {n: [] for n in sizes}
            results["grid_twins"][tool.name] = {}
            argv, env = _argv_env(tool, program, False)
            twin_argv, twin_env = _argv_env(tool, twin_program, False)
            for n in sizes:
                jobs += [(tool, ("grid", n, k), False, [*argv, str(n), str(k)], env) for k in reads]
                jobs.append((tool, ("grid", n, 0), True, [*twin_argv, str(n), "1"], twin_env))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        ran = list(pool.map(lambda job: _run(job[3], job[4]), jobs))
    for (tool, key, twin, _, _), (returncode, stderr) in zip(jobs, ran):
        what = outcome(tool.name, returncode, stderr, twin)
        if key[0] == "program":
            row = results["programs"][tool.name][key[1]]
            row["twin" if twin else "bug"] = what
            if not twin:
                row["report"] = report_of(tool.name, stderr) or (
                    f"signal {-returncode}" if returncode is not None and returncode < 0 else None)
        elif twin:
            results["grid_twins"][tool.name][key[1]] = what
        elif what == CAUGHT:
            results["grid"][tool.name][key[1]].append(key[2])
    results["grid_reads"] = len(reads)
    return results


def class_counts(results: dict) -> dict:
    """{tool: {class: {"caught", "bugs", "silent", "twins"}}} and a "total" class."""
    counts: dict = {}
    for tool, rows in results["programs"].items():
        per = counts[tool] = {}
        for name, row in rows.items():
            for cls in (row["class"] or "unclassified", "total"):
                c = per.setdefault(cls, {"caught": 0, "bugs": 0, "silent": 0, "twins": 0})
                c["bugs"] += 1
                c["caught"] += row.get("bug") == CAUGHT
                c["twins"] += 1
                c["silent"] += row.get("twin") == SILENT
    return counts


def markdown(results: dict, names: list) -> str:
    """The class table (caught / bugs, and twins silent / twins, per tool),
    the programs a tool did not catch, and the over-read grid's rows."""
    counts = class_counts(results)
    shown = [n for n in names if n in counts]
    scope = "one program of each class and its twin (quick)" if results["quick"] else "every program and its twin"
    lines = [f"Corpus (tests/native/corpus and corpus/classes), {scope}, one default run each: "
             "bugs caught / programs; twins silent / twins.", "",
             "| class | " + " | ".join(shown) + " |", "| --- |" + " --- |" * len(shown)]
    classes = [c for c in CLASSES if any(c in counts[t] for t in shown)]
    for cls in [*classes, "total"]:
        cells = []
        for tool in shown:
            c = counts[tool].get(cls)
            cells.append("-" if c is None else f"{c['caught']}/{c['bugs']}; {c['silent']}/{c['twins']}")
        label = "**total**" if cls == "total" else cls
        lines.append(f"| {label} | " + " | ".join(f"**{x}**" if cls == "total" else x for x in cells) + " |")
    for tool in results.get("not_installed", []):
        lines.append(f"\n{tool}: not installed.")
    misses = []
    for tool in shown:
        bad = [f"{name} ({row.get('bug')})" for name, row in results["programs"][tool].items()
               if row.get("bug") != CAUGHT]
        loud = [f"{name} ({row.get('twin')})" for name, row in results["programs"][tool].items()
                if row.get("twin") != SILENT]
        if bad or loud:
            misses.append(f"- {tool}: " + (f"not caught: {', '.join(bad)}" if bad else "caught all")
                          + (f"; twins not silent: {', '.join(loud)}" if loud else ""))
    if misses:
        lines += ["", *misses]
    if results["grid"]:
        grid_tools = [t for t in shown if t in results["grid"]]
        reads = results["grid_reads"]
        lines += ["", f"Over-read grid (corpus/classes/overread.c): reads k bytes past an n-byte block, "
                  f"k of {reads} caught; twin (reads byte n-1) silent or not.", "",
                  "| block n | " + " | ".join(grid_tools) + " |", "| --- |" + " --- |" * len(grid_tools)]
        for n in results["grid"][grid_tools[0]]:
            cells = []
            for tool in grid_tools:
                caught = results["grid"][tool][n]
                twin = results["grid_twins"][tool].get(n)
                cells.append(f"{len(caught)}/{reads}" + ("" if twin == SILENT else f" (twin {twin})"))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("| **all** | " + " | ".join(
            f"**{sum(len(v) for v in results['grid'][t].values())}/{reads * len(results['grid'][t])}**"
            for t in grid_tools) + " |")
    return "\n".join(lines)


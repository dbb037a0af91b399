"""``python -m guardalloc bench [--quick] [--out DIR]``: should you adopt guardalloc?

Measures, side by side in one run (interleaved, medians), what guarding N
slots costs with guardalloc's madvise backend against mprotect guards, a
pure-Python arena on ``mmap.madvise()`` and no guards at all, per guard
actually installed: every arena is built and opened whole (its last slot
allocated), so the guards a madvise arena lays lazily are all in place.
Lazy creation alone (the arena as built, ready for its first allocation) is
a side of its own. Then teardown, ``fork()`` latency while holding guarded
slots, alloc+free against ``bytearray``/``numpy.empty`` (and ``cymem`` when
installed), and the scaling to 1,000,000 slots beside the wall where
mprotect runs out of ``vm.max_map_count``.

Prints a table, and writes to DIR: ``results.json``, ``report.md`` and (with
matplotlib, the ``[plot]`` extra) the PNG plots of :data:`PLOTS`, which the report
embeds; results.json and report.md are written before the plots.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from guardalloc import __version__
from guardalloc.arena import Arena
from guardalloc.bench.plots import PLOTS, plot_caption, write_plots
from guardalloc.bench.timing import (
    GUARDED_SIDES, LAZY_SIDE, alloc_free_loop, build_guarded, bytearray_loop, cymem_loop, fork_and_wait, interleaved,
    make_arena, numpy_empty_loop,
)
from guardalloc.introspect.maps import max_map_count, vmas_in_range
from guardalloc.introspect.maps import vma_count
from guardalloc.introspect.probe import support

#: The guarded sides (:func:`build_guarded`: every guard in place when the
#: clock stops) and "none", the same arena unguarded.
EAGER_SIDES = [*GUARDED_SIDES, "none"]
CREATE_SIDES = [*EAGER_SIDES, LAZY_SIDE]
FORK_SIDES = ["madvise-batched", "mprotect", "none"]
ALLOC_SIDES = ["guardalloc", "bytearray", "numpy.empty", "cymem", "guardalloc-uaf", "mprotect-uaf"]


def guards_installed(side: str, slots: int) -> int:
    """Guards in place once :func:`build_guarded` returns (0 for a lazy
    arena's slots: only its first guard and a PROT_NONE tail exist)."""
    if side == "none":
        return 0
    if side == LAZY_SIDE:
        return 1
    return slots + 1


def _commit() -> str:
    """``git describe`` of the checkout this module runs from, or the
    package version when it is not a tracked file of a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    git = shutil.which("git")
    if git is not None:
        try:
            tracked = subprocess.run([git, "-C", here, "ls-files", "--error-unmatch", os.path.basename(__file__)],
                                     capture_output=True, timeout=10)
            if tracked.returncode == 0:
                described = subprocess.run([git, "-C", here, "describe", "--always", "--dirty", "--tags"],
                                           capture_output=True, text=True, timeout=10)
                if described.returncode == 0 and described.stdout.strip():
                    return described.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return f"guardalloc {__version__}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(quick: bool) -> dict:
    """What results.json records about the code and the machine it ran on."""
    return {
        "commit": _commit(), "guardalloc": __version__,
        "kernel": platform.release(), "kernel_build": platform.version(),
        "arch": platform.machine(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "max_map_count": max_map_count(), "quick": quick,
    }


@dataclass
class Settings:
    """How much to measure: ``--quick`` or the full run."""

    create_slots: list[int]
    scale_slots: list[int]
    fork_slots: list[int]
    create_rounds: int
    scale_rounds: int
    fork_blocks: int
    forks_per_block: int
    alloc_rounds: int
    alloc_inner: int = 2000

    @classmethod
    def for_run(cls, quick: bool) -> Settings:
        if quick:
            return cls([1_000, 3_000, 10_000, 30_000], [100_000, 300_000, 1_000_000],
                       [0, 10_000, 30_000], create_rounds=5, scale_rounds=2, fork_blocks=3,
                       forks_per_block=4, alloc_rounds=15)
        return cls([1_000, 3_000, 10_000, 20_000, 30_000], [100_000, 300_000, 1_000_000],
                   [0, 1_000, 3_000, 10_000, 20_000, 30_000], create_rounds=15, scale_rounds=5,
                   fork_blocks=6, forks_per_block=5, alloc_rounds=40)


@dataclass
class Results:
    """Everything measured; saved as results.json."""

    machine: dict = field(default_factory=dict)
    # side -> slots -> {"seconds": median, "vmas_in_arena": n, "guard_syscalls": n}
    create: dict = field(default_factory=dict)
    teardown: dict = field(default_factory=dict)        # side -> seconds (30,000 slots)
    fork: dict = field(default_factory=dict)            # side -> slots -> seconds
    alloc_free: dict = field(default_factory=dict)      # side -> seconds per cycle
    mprotect_wall: dict = field(default_factory=dict)   # slots, error, vmas_left
    # Every sample behind those figures, for the spread in the plots:
    # {"create": side -> slots -> [s], "teardown": side -> [s],
    #  "fork": side -> slots -> [s], "alloc_free": side -> [s]}
    samples: dict = field(default_factory=dict)


class Progress:
    """A one-line progress bar on a terminal; one line per step otherwise."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        width = 30
        filled = width * self.done // self.total
        elapsed = time.monotonic() - self.started
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:5.1f}s  {what}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("the whole comparison: results.json, report.md and plots in bench-out/", ""),
    ("under a minute, into another directory", "--quick --out /tmp/guard-bench"),
    ("the malloc library against Electric Fence, DUMA and GWP-ASan", "--peers --quick"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer rounds and points (under a minute)")
    parser.add_argument("--out", default="bench-out", metavar="DIR",
                        help="directory for results.json, report.md and the plots (default: bench-out)")
    parser.add_argument("--peers", action="store_true",
                        help="compare the malloc library with Electric Fence, DUMA and GWP-ASan instead "
                             "(guardalloc.bench.peers; peers.json and peers.md in DIR)")


def _mprotect_fits(slots: int) -> bool:
    """Whether an mprotect arena of slots fits under vm.max_map_count now."""
    limit = max_map_count()
    return limit is None or vma_count() + 2 * slots + 50 < limit


def _create_sweep(results: Results, sides: list[str], slot_counts: list[int], rounds: int,
                  progress: Progress, label: str) -> None:
    """Time of :func:`build_guarded` for every (side, slots) pair, all pairs
    interleaved round by round, so that a busy spell of the machine hits
    every point alike; then the exact counts of one more build of each."""
    pairs = [(side, slots) for slots in slot_counts for side in sides
             if side != "mprotect" or _mprotect_fits(slots)]
    build = {pair: (lambda pair=pair: build_guarded(*pair)) for pair in pairs}
    close = {pair: (lambda arena: arena.close()) for pair in pairs}
    samples: dict[tuple[str, int], list[float]] = {pair: [] for pair in pairs}
    for round_number in range(rounds):
        progress.step(f"{label}: round {round_number + 1} of {rounds}")
        comparison = interleaved(build, 1, teardown=close)
        for pair in pairs:
            samples[pair] += comparison.samples[pair]
    for (side, slots), values in samples.items():
        arena = build_guarded(side, slots)
        try:
            figures = {"vmas_in_arena": vmas_in_range(arena.address, arena.address + arena.size),
                       "guard_syscalls": arena.stats()["guard_syscalls"],
                       "guards_installed": guards_installed(side, slots)}
        finally:
            arena.close()
        figures["seconds"] = statistics.median(values)
        results.create.setdefault(side, {})[slots] = figures
        results.samples.setdefault("create", {}).setdefault(side, {})[slots] = values


def measure_creation(results: Results, settings: Settings, progress: Progress) -> None:
    _create_sweep(results, CREATE_SIDES, settings.create_slots, settings.create_rounds, progress,
                  f"guarding arenas of {settings.create_slots[0]:,} to {settings.create_slots[-1]:,} slots")
    _create_sweep(results, ["madvise-batched", LAZY_SIDE, "none"], settings.scale_slots,
                  settings.scale_rounds, progress,
                  f"guarding arenas of up to {settings.scale_slots[-1]:,} slots")


def measure_mprotect_wall(results: Results, progress: Progress) -> None:
    """Try 1,000,000 mprotect slots: where is the wall, what is left behind."""
    progress.step("mprotect arena of 1,000,000 slots (expected to fail)")
    slots = 1_000_000
    before = vma_count()
    try:
        make_arena("mprotect", slots).close()
        error = ""
    except MemoryError as exc:
        error = str(exc)
    limit = max_map_count()
    results.mprotect_wall = {
        "slots": slots, "error": error, "vmas_left": vma_count() - before,
        "max_map_count": limit,
        # Each mprotect slot costs two VMAs: the last slot count that fits.
        "max_slots": None if limit is None else (limit - before) // 2,
    }


def measure_teardown(results: Results, settings: Settings, progress: Progress) -> None:
    progress.step("closing arenas of 30,000 slots")
    slots = 30_000
    usable = [s for s in CREATE_SIDES if s != "mprotect" or _mprotect_fits(slots)]
    comparison = interleaved({s: (lambda arena: arena.close()) for s in usable},
                             settings.create_rounds,
                             setup={s: functools.partial(build_guarded, s, slots) for s in usable})
    results.teardown = {s: comparison.median(s) for s in usable}
    results.samples["teardown"] = comparison.samples


def measure_fork(results: Results, settings: Settings, progress: Progress) -> None:
    """Blocks of forks per side, sides alternating block by block; the
    fastest fork of each side is kept."""
    for slots in settings.fork_slots:
        progress.step(f"fork() while holding {slots:,} slots")
        samples: dict[str, list[float]] = {s: [] for s in FORK_SIDES}
        for _ in range(settings.fork_blocks):
            for side in FORK_SIDES:
                if slots == 0 and side != "none":
                    continue
                arena = build_guarded(side, slots) if slots else None
                try:
                    comparison = interleaved({side: fork_and_wait}, settings.forks_per_block)
                finally:
                    if arena is not None:
                        arena.close()
                samples[side] += comparison.samples[side]
        for side, values in samples.items():
            if slots == 0:
                values = samples["none"]   # nothing held: the same process for every side
            # The best sample: on a busy machine the child waits for a CPU
            # to run and exit, which only ever adds time.
            results.fork.setdefault(side, {})[slots] = min(values)
            results.samples.setdefault("fork", {}).setdefault(side, {})[slots] = values


def measure_alloc_free(results: Results, settings: Settings, progress: Progress) -> None:
    progress.step("alloc+free of 64 bytes against bytearray and numpy")
    plain = Arena(4096, 1_000, backend="madvise")
    uaf = {b: Arena(4096, 10_000, backend=b, uaf=True, quarantine=100) for b in ("madvise", "mprotect")}
    live = [arena.alloc(64) for arena in uaf.values() for _ in range(5_000)]
    try:
        loops = {
            "guardalloc": alloc_free_loop(plain),
            "bytearray": bytearray_loop(),
            "numpy.empty": numpy_empty_loop(),
            "cymem": cymem_loop(),
            "guardalloc-uaf": alloc_free_loop(uaf["madvise"]),
            "mprotect-uaf": alloc_free_loop(uaf["mprotect"]),
        }
        present = {name: fn for name, fn in loops.items() if fn is not None}
        comparison = interleaved(present, settings.alloc_rounds, settings.alloc_inner)
        results.alloc_free = {name: comparison.median(name) for name in present}
        results.samples["alloc_free"] = comparison.samples
    finally:
        for buf in live:
            buf.free()
        plain.close()
        for arena in uaf.values():
            arena.close()


# ---------------------------------------------------------------------------
# Output

def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


def _ratio(value: float, reference: float | None) -> str:
    if not reference:
        return "-"
    return f"{value / reference:,.2f}x"


def _guards_cell(side: str, figures: dict) -> str:
    if side == LAZY_SIDE:
        return "first guard + PROT_NONE tail (lazy)"
    return f"{figures['guards_installed']:,}"


def tables(results: Results) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the terminal and Markdown output."""
    out = []
    # The largest slot count every side was measured at (mprotect stops at the wall).
    slots = max(results.create.get("mprotect") or results.create["python"])
    mprotect = results.create.get("mprotect", {}).get(slots, {}).get("seconds")
    none = results.create["none"][slots]["seconds"]
    rows = []
    for side in CREATE_SIDES:
        figures = results.create.get(side, {}).get(slots)
        if figures is None:
            continue
        guards = figures["guards_installed"]
        per_guard = figures["seconds"] / guards if side in GUARDED_SIDES and guards else None
        rows.append([side, _guards_cell(side, figures), _ms(figures["seconds"]),
                     _ns(per_guard) if per_guard else "-",
                     f"{figures['vmas_in_arena']:,}", f"{figures['guard_syscalls']:,}",
                     _ratio(mprotect, figures["seconds"]) if mprotect and side != LAZY_SIDE else "-",
                     _ratio(figures["seconds"], none)])
    out.append((f"Guarding {slots:,} slots of 4 KiB: build the arena and open every slot "
                "(mmap + every guard + bookkeeping); lazy creation alone as its own row",
                ["side", "guards installed", "time", "per guard", "VMAs in arena", "guard syscalls",
                 "mprotect / side", "side / no guards"], rows))

    big = max(results.create["madvise-batched"])
    wall = results.mprotect_wall
    none_big = results.create["none"][big]["seconds"]
    rows = []
    for side in ("madvise-batched", LAZY_SIDE, "none"):
        figures = results.create.get(side, {}).get(big)
        if figures is None:
            continue
        rows.append([side, "builds", _guards_cell(side, figures), _ms(figures["seconds"]),
                     f"{figures['vmas_in_arena']:,}", f"{figures['guard_syscalls']:,}",
                     _ratio(figures["seconds"], none_big)])
    if wall:
        if wall["error"]:
            outcome = (f"MemoryError: vm.max_map_count (~{wall['max_slots']:,} slots fit), "
                       f"{wall['vmas_left']} VMAs left")
        else:
            outcome = "builds (vm.max_map_count is high here)"
        rows.append(["mprotect", outcome, "-", "-", "-", "-", "-"])
    out.append((f"{big:,} slots of 4 KiB", ["side", "outcome", "guards installed", "time",
                                           "VMAs in arena", "guard syscalls", "side / no guards"], rows))

    if results.teardown:
        reference = results.teardown.get("mprotect")
        rows = [[side, _ms(sec), _ratio(reference, sec) if reference else "-",
                 _ratio(sec, results.teardown["none"])] for side, sec in results.teardown.items()]
        out.append(("Arena teardown (munmap), 30,000 slots, every slot opened (lazy: as built)",
                    ["side", "time", "faster than mprotect", "vs no guards"], rows))

    if results.fork:
        counts = sorted(results.fork["none"])
        rows = [[side, *[_ms(results.fork[side][n]) for n in counts]] for side in FORK_SIDES]
        rows.append(["madvise / none",
                     *[_ratio(results.fork["madvise-batched"][n], results.fork["none"][n]) for n in counts]])
        rows.append(["mprotect / madvise",
                     *[_ratio(results.fork["mprotect"][n], results.fork["madvise-batched"][n]) for n in counts]])
        out.append(("fork() + child exit + wait while holding slots, every slot guarded (best of "
                    f"{results.machine.get('fork_samples', '?')})",
                    ["side", *[f"{n:,} slots" for n in counts]], rows))

    if results.alloc_free:
        reference = results.alloc_free["bytearray"]
        mprotect_uaf = results.alloc_free.get("mprotect-uaf")
        rows = [[side, _ns(sec), _ratio(sec, reference),
                 _ratio(mprotect_uaf, sec) if side.endswith("uaf") and mprotect_uaf else "-"]
                for side, sec in results.alloc_free.items()]
        out.append(("alloc + free of a 64-byte buffer from Python (UAF arenas: 10,000 slots, 5,000 live)",
                    ["side", "per cycle", "vs bytearray", "UAF: faster than mprotect"], rows))
    return out


def render_text(all_tables) -> str:
    lines = []
    for title, header, rows in all_tables:
        widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
        lines.append(f"\n{title}\n")
        lines.append("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                                      for i, (h, w) in enumerate(zip(header, widths))))
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                          for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"


def render_markdown(all_tables, results: Results, plots: list[str], command: str) -> str:
    machine = results.machine
    lines = ["# guardalloc benchmark report", "",
             f"`{command}` at {machine['commit']} on Linux {machine['kernel']} ({machine['arch']}, "
             f"{machine['cpu']}, {machine['cpus']} CPUs), Python {machine['python']}, vm.max_map_count "
             f"{machine['max_map_count']}. Both sides of every comparison were measured in the same run, "
             "interleaved; times are medians (fork: the best sample). Absolute times move with the "
             "load of the machine; compare the sides of one run.", ""]
    for title, header, rows in all_tables:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    for name in plots:
        lines += [f"![{plot_caption(name, results)}]({name}.png)", ""]
    return "\n".join(lines)


def _check_output_dir(out: str) -> str | None:
    """Create ``out`` if needed and make sure files can be written there;
    the reason when not (before minutes of measuring, not after)."""
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    if getattr(args, "peers", False):
        from guardalloc.bench.peers import run_peers
        return run_peers(args.quick, args.out)
    found = support()
    if not found.anonymous:
        print(f"guard pages are unavailable here ({found.reason}): nothing to compare", file=sys.stderr)
        return 1
    settings = Settings.for_run(args.quick)
    problem = _check_output_dir(args.out)
    if problem is not None:
        print(f"guardalloc bench: cannot use {args.out!r} as the output directory: {problem}", file=sys.stderr)
        return 2
    results = Results(machine=machine_info(args.quick))
    results.machine["fork_samples"] = settings.fork_blocks * settings.forks_per_block
    steps = settings.create_rounds + settings.scale_rounds + 1 + 1 + len(settings.fork_slots) + 1
    progress = Progress(steps)
    try:
        measure_creation(results, settings, progress)
        measure_mprotect_wall(results, progress)
        measure_teardown(results, settings, progress)
        measure_fork(results, settings, progress)
        measure_alloc_free(results, settings, progress)
    finally:
        progress.finish()

    # The figures first, then the plots: a plotting failure loses no figure.
    all_tables = tables(results)
    command = getattr(args, "prog", "python -m guardalloc bench") + (" --quick" if args.quick else "")
    results_path = os.path.join(args.out, "results.json")
    report_path = os.path.join(args.out, "report.md")
    with open(results_path, "w") as f:
        json.dump(results.__dict__, f, indent=1)
    with open(report_path, "w") as f:
        f.write(render_markdown(all_tables, results, [], command))
    try:
        plots = write_plots(results, args.out)
        plot_error = None
    except Exception as exc:   # matplotlib's own errors: the figures are saved already
        plots, plot_error = [], f"{exc.__class__.__name__}: {exc}"
    if plots:
        with open(report_path, "w") as f:
            f.write(render_markdown(all_tables, results, plots, command))

    print(render_text(all_tables))
    if plots:
        print(f"wrote {report_path}, results.json and {len(plots)} plots "
              f"({', '.join(p + '.png' for p in plots)})")
    elif plot_error:
        print(f"wrote {report_path} and results.json; the plots failed: {plot_error}")
    else:
        print(f"wrote {report_path} and results.json; plots skipped: matplotlib is not "
              "installed (pip install 'guardalloc[plot]')")
    return 0

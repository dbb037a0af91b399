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
from guardalloc.bench.timing import (
    LAZY_SIDE, alloc_free_loop, build_guarded, bytearray_loop, cymem_loop, fork_and_wait, interleaved,
    make_arena, numpy_empty_loop,
)
from guardalloc.introspect.maps import max_map_count, vmas_in_range
from guardalloc.introspect.maps import vma_count
from guardalloc.introspect.probe import support

#: Sides that guard every slot: an Arena is built and then opened whole (its
#: last slot allocated), so each of its slots + 1 guards is in place when the
#: clock stops, whatever the arena defers. "none" is the same, unguarded.
GUARDED_SIDES = ["madvise-batched", "madvise-per-guard", "mprotect", "python"]
EAGER_SIDES = [*GUARDED_SIDES, "none"]
CREATE_SIDES = [*EAGER_SIDES, LAZY_SIDE]
FORK_SIDES = ["madvise-batched", "mprotect", "none"]
ALLOC_SIDES = ["guardalloc", "bytearray", "numpy.empty", "cymem", "guardalloc-uaf", "mprotect-uaf"]
PLOTS = {
    "vmas": "VMAs in the arena against slots, every slot guarded",
    "time_per_guard": "time per guard installed (build + open every slot) against slots",
    "fork": "fork() latency against guarded slots held",
    "scaling": "time to guard up to 1,000,000 slots, lazy creation, and the mprotect wall",
    "teardown": "closing an arena of 30,000 guarded slots, per side",
    "alloc_free": "alloc + free of 64 bytes from Python, per allocator",
}


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


def plot_caption(name: str, results: Results) -> str:
    """The caption of a plot, naming only what the run measured."""
    if name == "alloc_free" and results.alloc_free:
        return f"alloc + free of 64 bytes from Python: {', '.join(results.alloc_free)}"
    return PLOTS[name]


def _si_time(seconds: float) -> str:
    """A time with the unit that keeps 1 to 3 digits before the point."""
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if seconds * scale >= 1 or unit == "ns":
            value = seconds * scale
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    raise AssertionError("unreachable")


def write_plots(results: Results, out: str) -> list[str]:
    """The PNGs of :data:`PLOTS` (medians as lines or large dots, every
    sample as a faint dot, values written beside the points); [] when
    matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return []
    colors = {"madvise-batched": "tab:green", "madvise-per-guard": "tab:olive", "mprotect": "tab:red",
              "python": "tab:purple", "none": "tab:gray", LAZY_SIDE: "tab:blue",
              "guardalloc": "tab:green", "guardalloc-uaf": "tab:green", "mprotect-uaf": "tab:red",
              "bytearray": "tab:gray", "numpy.empty": "tab:cyan", "cymem": "tab:brown"}
    # Drawn in this order: "none" first and dashed, so a side equal to it shows on top.
    styles = {"none": dict(linestyle="--", marker="s", zorder=2), LAZY_SIDE: dict(linestyle=":", marker="D"),
              "mprotect": dict(marker="^"), "python": dict(marker="v"), "madvise-per-guard": dict(marker="x")}
    limit = results.machine.get("max_map_count")
    made = []
    style = {"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12,
             "xtick.labelsize": 12, "ytick.labelsize": 12, "lines.linewidth": 2.2, "lines.markersize": 7}
    count_format = FuncFormatter(lambda v, _: f"{v:,.0f}")

    def new(title, xlabel, ylabel, width=11.0):
        fig, ax = plt.subplots(figsize=(width, 6.0))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        return fig, ax

    def legend_outside(ax, below=False):
        if below:   # long entries: under the axes, so the plot keeps its width
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{name}.png"), dpi=100)
        plt.close(fig)
        made.append(name)

    def line(ax, side, points, label=None, scale=1.0, annotate=None, in_legend=False, offset=(8, 0)):
        """Medians of one side against slots; its last value written beside
        it, or in its legend entry where labels would collide."""
        if not points:
            return
        xs = [n for n, _ in points]
        ys = [v * scale for _, v in points]
        label = label or side
        if annotate and in_legend:
            label = f"{label}: {annotate(ys[-1])} at {xs[-1]:,}"
        ax.plot(xs, ys, color=colors.get(side, "tab:blue"), label=label,
                **{"marker": "o", "zorder": 3, **styles.get(side, {})})
        if annotate and not in_legend:
            ax.annotate(annotate(ys[-1]), (xs[-1], ys[-1]), xytext=offset, textcoords="offset points",
                        va="center", fontsize=12, color=colors.get(side, "tab:blue"))

    def spread(ax, side, points, scale):
        """Every sample as a faint dot beside the line of medians: a lone
        outlier then reads as noise, not as a trend."""
        xs = [x for x, values in points for _ in values]
        ys = [v * scale(x) for x, values in points for v in values]
        ax.scatter(xs, ys, s=12, color=colors.get(side, "tab:blue"), alpha=0.3, linewidths=0, zorder=1)

    def log_slots(ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(count_format)

    with plt.rc_context(style):
        fig, ax = new("VMAs in one arena, every slot guarded", "slots", "VMAs in the arena (log scale)")
        for side, label in (("mprotect", "mprotect (2 x slots + 1)"),
                            ("madvise-batched", "madvise, every slot open"),
                            (LAZY_SIDE, "madvise, lazy, as built")):
            points = sorted((n, f["vmas_in_arena"]) for n, f in results.create.get(side, {}).items())
            line(ax, side, points, label, annotate=lambda v: f"{v:,.0f}",
                 offset=(10, -14) if side == "mprotect" else (8, 0))
        if limit:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1.2,
                       label=f"vm.max_map_count = {limit:,}")
        log_slots(ax)
        ax.set_yscale("log")
        ax.set_ylim(0.5, (limit or 1) * 3 if limit else None)
        ax.yaxis.set_major_formatter(count_format)
        legend_outside(ax)
        save(fig, "vmas")

        create_samples = results.samples.get("create", {})
        fig, ax = new("Time per guard: build + open every slot, divided by slots + 1", "slots",
                      "ns per guard (log scale)")
        for side in GUARDED_SIDES:
            points = sorted((n, f["seconds"] / f["guards_installed"])
                            for n, f in results.create.get(side, {}).items() if f["guards_installed"])
            line(ax, side, points, scale=1e9, annotate=lambda v: f"{v:,.0f} ns")
            spread(ax, side, sorted(create_samples.get(side, {}).items()), lambda n: 1e9 / (n + 1))
        log_slots(ax)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(count_format)
        legend_outside(ax)
        save(fig, "time_per_guard")

        fig, ax = new("fork() + child exit + wait while holding guarded slots",
                      "guarded slots held (every slot open)", "ms, best sample (log scale)")
        fork_samples = results.samples.get("fork", {})
        for side in ("none", "mprotect", "madvise-batched"):
            points = sorted(results.fork.get(side, {}).items())
            line(ax, side, points, scale=1e3, annotate=lambda v: f"{v:.3g} ms")
            spread(ax, side, sorted(fork_samples.get(side, {}).items()), lambda n: 1e3)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(count_format)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        legend_outside(ax)
        save(fig, "fork")

        fig, ax = new("Guarding up to 1,000,000 slots", "slots", "ms (log scale)")
        fig.set_size_inches(11.0, 7.5)
        for side, label in (("madvise-batched", "madvise, build + open every slot"),
                            ("mprotect", "mprotect, build + open every slot"),
                            (LAZY_SIDE, "madvise, lazy, as built"),
                            ("none", "no guards, as built")):
            points = sorted((n, f["seconds"]) for n, f in results.create.get(side, {}).items())
            line(ax, side, points, label, scale=1e3, annotate=lambda v: _si_time(v / 1e3), in_legend=True)
            spread(ax, side, sorted(create_samples.get(side, {}).items()), lambda n: 1e3)
        wall = results.mprotect_wall.get("max_slots")
        if wall and results.mprotect_wall.get("error"):
            ax.axvline(wall, color="tab:red", linestyle="--", linewidth=1.2,
                       label=f"mprotect: MemoryError beyond\n~{wall:,} slots (vm.max_map_count)")
        log_slots(ax)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        legend_outside(ax, below=True)
        save(fig, "scaling")

        def dots(name, medians, samples, title, xlabel):
            """One row per side: the median as a large dot with its value,
            every sample as a small one, on a log axis (no bar floor)."""
            sides = list(medians)
            fig, ax = new(title, xlabel, "", width=11.0)
            for row, side in enumerate(sides):
                values = samples.get(side, [])
                ax.scatter(values, [row] * len(values), s=14, color="black", alpha=0.35, linewidths=0,
                           zorder=2)
                ax.scatter([medians[side]], [row], s=110, color=colors.get(side, "tab:blue"), zorder=3)
                ax.annotate(_si_time(medians[side]), (medians[side], row), xytext=(0, 11),
                            textcoords="offset points", ha="center", fontsize=12)
            ax.set_yticks(range(len(sides)), sides)
            ax.set_ylim(len(sides) - 0.4, -0.6)
            ax.set_xscale("log")
            low = min(min(samples.get(s, [medians[s]]) + [medians[s]]) for s in sides)
            high = max(max(samples.get(s, [medians[s]]) + [medians[s]]) for s in sides)
            ax.set_xlim(low / 2, high * 2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _si_time(v)))
            save(fig, name)

        if results.teardown:
            dots("teardown", results.teardown, results.samples.get("teardown", {}),
                 "Closing an arena of 30,000 slots (large dot: median; small: every sample)",
                 "time to munmap (log scale)")
        if results.alloc_free:
            dots("alloc_free", results.alloc_free, results.samples.get("alloc_free", {}),
                 "alloc + free of 64 bytes from Python (large dot: median; small: every sample)",
                 "time per cycle (log scale)")
    return made


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

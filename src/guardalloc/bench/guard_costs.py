"""``python -m guardalloc bench [--quick] [--out DIR]``: should you adopt guardalloc?

Measures, side by side in one run (interleaved, medians), what guard pages
cost with guardalloc's madvise backend against mprotect guards, a pure-Python
arena on ``mmap.madvise()`` and no guards at all: arena creation and teardown,
``fork()`` latency while holding guarded slots, alloc+free against
``bytearray``/``numpy.empty``/``cymem``, and the scaling to 1,000,000 slots
beside the wall where mprotect runs out of ``vm.max_map_count``.

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
import sys
import tempfile
import time
from dataclasses import dataclass, field

from guardalloc import __version__
from guardalloc.arena import Arena
from guardalloc.bench.timing import (
    alloc_free_loop, bytearray_loop, cymem_loop, fork_and_wait, interleaved, make_arena,
    numpy_empty_loop,
)
from guardalloc.introspect.maps import max_map_count, vmas_in_range
from guardalloc.introspect.maps import vma_count
from guardalloc.introspect.probe import support

GUARDED_SIDES = ["madvise-batched", "madvise-per-guard", "mprotect", "python"]
CREATE_SIDES = [*GUARDED_SIDES, "none"]
FORK_SIDES = ["madvise-batched", "mprotect", "none"]
ALLOC_SIDES = ["guardalloc", "bytearray", "numpy.empty", "cymem", "guardalloc-uaf", "mprotect-uaf"]
PLOTS = {
    "vmas": "VMAs in the arena against slots",
    "time_per_guard": "time per guard against slots",
    "fork": "fork() latency against slots held (log scale)",
    "scaling": "creation time up to 1,000,000 slots, and the mprotect wall",
    "teardown": "closing an arena of 30,000 slots, per backend (log scale)",
    "alloc_free": "alloc + free of 64 bytes against bytearray, numpy, cymem",
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
    """Creation time of every (side, slots) pair, all pairs interleaved round
    by round, so that a busy spell of the machine hits every point alike."""
    pairs = [(side, slots) for slots in slot_counts for side in sides
             if side != "mprotect" or _mprotect_fits(slots)]
    build = {pair: (lambda pair=pair: make_arena(*pair)) for pair in pairs}
    close = {pair: (lambda arena: arena.close()) for pair in pairs}
    samples: dict[tuple[str, int], list[float]] = {pair: [] for pair in pairs}
    for round_number in range(rounds):
        progress.step(f"{label}: round {round_number + 1} of {rounds}")
        comparison = interleaved(build, 1, teardown=close)
        for pair in pairs:
            samples[pair] += comparison.samples[pair]
    for (side, slots), values in samples.items():
        arena = make_arena(side, slots)
        try:
            figures = {"vmas_in_arena": vmas_in_range(arena.address, arena.address + arena.size),
                       "guard_syscalls": arena.stats()["guard_syscalls"]}
        finally:
            arena.close()
        figures["seconds"] = sorted(values)[len(values) // 2]
        results.create.setdefault(side, {})[slots] = figures
        results.samples.setdefault("create", {}).setdefault(side, {})[slots] = values


def measure_creation(results: Results, settings: Settings, progress: Progress) -> None:
    _create_sweep(results, CREATE_SIDES, settings.create_slots, settings.create_rounds, progress,
                  f"creating arenas of {settings.create_slots[0]:,} to {settings.create_slots[-1]:,} slots")
    _create_sweep(results, ["madvise-batched", "none"], settings.scale_slots, settings.scale_rounds,
                  progress, f"creating arenas of up to {settings.scale_slots[-1]:,} slots")


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
                             setup={s: functools.partial(make_arena, s, slots) for s in usable})
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
                arena = make_arena(side, slots) if slots else None
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
    progress.step("alloc+free of 64 bytes against bytearray, numpy, cymem")
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
        per_guard = figures["seconds"] / (slots + 1) if side != "none" else None
        rows.append([side, _ms(figures["seconds"]), _ns(per_guard) if per_guard else "-",
                     f"{figures['vmas_in_arena']:,}", f"{figures['guard_syscalls']:,}",
                     _ratio(mprotect, figures["seconds"]) if mprotect else "-",
                     _ratio(figures["seconds"], none)])
    out.append((f"Arena creation, {slots:,} slots of 4 KiB (mmap + guards + bookkeeping)",
                ["side", "time", "per guard", "VMAs in arena", "guard syscalls",
                 "faster than mprotect", "vs no guards"], rows))

    big = max(results.create["madvise-batched"])
    figures = results.create["madvise-batched"][big]
    wall = results.mprotect_wall
    rows = [["madvise-batched", "builds", _ms(figures["seconds"]), f"{figures['vmas_in_arena']:,}",
             f"{figures['guard_syscalls']:,}"],
            ["none", "builds", _ms(results.create["none"][big]["seconds"]), "1", "0"]]
    if wall:
        if wall["error"]:
            outcome = (f"MemoryError: vm.max_map_count (~{wall['max_slots']:,} slots fit), "
                       f"{wall['vmas_left']} VMAs left")
        else:
            outcome = "builds (vm.max_map_count is high here)"
        rows.append(["mprotect", outcome, "-", "-", "-"])
    out.append((f"{big:,} slots of 4 KiB", ["side", "outcome", "time", "VMAs in arena", "guard syscalls"], rows))

    if results.teardown:
        reference = results.teardown.get("mprotect")
        rows = [[side, _ms(sec), _ratio(reference, sec) if reference else "-",
                 _ratio(sec, results.teardown["none"])] for side, sec in results.teardown.items()]
        out.append(("Arena teardown (munmap), 30,000 slots",
                    ["side", "time", "faster than mprotect", "vs no guards"], rows))

    if results.fork:
        counts = sorted(results.fork["none"])
        rows = [[side, *[_ms(results.fork[side][n]) for n in counts]] for side in FORK_SIDES]
        rows.append(["mprotect / madvise",
                     *[_ratio(results.fork["mprotect"][n], results.fork["madvise-batched"][n]) for n in counts]])
        out.append(("fork() + child exit + wait while holding guarded slots (best of "
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
             f"`{command}` on Linux {machine['kernel']}, {machine['cpus']} CPUs, Python "
             f"{machine['python']}, guardalloc {machine['guardalloc']}, vm.max_map_count "
             f"{machine['max_map_count']}. Both sides of every comparison were measured in the same run, "
             "interleaved; times are medians (fork: the best sample).", ""]
    for title, header, rows in all_tables:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    for name in plots:
        lines += [f"![{PLOTS[name]}]({name}.png)", ""]
    return "\n".join(lines)


def write_plots(results: Results, out: str) -> list[str]:
    """The PNGs of :data:`PLOTS` (medians, every sample as a dot); [] when
    matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    colors = {"madvise-batched": "tab:green", "madvise-per-guard": "tab:olive", "mprotect": "tab:red",
              "python": "tab:purple", "none": "tab:gray"}
    limit = results.machine.get("max_map_count")
    made = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{name}.png"), dpi=72)
        plt.close(fig)
        made.append(name)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for side in ("madvise-batched", "mprotect"):
        points = sorted(results.create.get(side, {}).items())
        ax.plot([n for n, _ in points], [f["vmas_in_arena"] for _, f in points], "o-",
                color=colors[side], label=side)
    if limit:
        ax.axhline(limit, color="black", linestyle="--", linewidth=1)
        ax.text(1_000, limit * 1.15, f"vm.max_map_count = {limit:,}", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="slots", ylabel="VMAs in the arena",
           title="VMAs per arena")
    ax.legend(fontsize=8)
    save(fig, "vmas")

    def spread(ax, points, color, scale):
        """Every sample as a faint dot beside the line of medians: a lone
        outlier then reads as noise, not as a trend."""
        xs = [x for x, values in points for _ in values]
        ys = [v * scale(x) for x, values in points for v in values]
        ax.scatter(xs, ys, s=9, color=color, alpha=0.3, linewidths=0)

    create_samples = results.samples.get("create", {})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for side in GUARDED_SIDES:
        points = sorted(results.create.get(side, {}).items())
        ax.plot([n for n, _ in points], [f["seconds"] / (n + 1) * 1e9 for n, f in points], "o-",
                color=colors[side], label=side)
        spread(ax, sorted(create_samples.get(side, {}).items()), colors[side], lambda n: 1e9 / (n + 1))
    ax.set(xscale="log", yscale="log", xlabel="slots", ylabel="ns per guard (creation / guards)",
           title="Arena creation: time per guard")
    ax.legend(fontsize=8)
    save(fig, "time_per_guard")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    fork_samples = results.samples.get("fork", {})
    for side in FORK_SIDES:
        points = sorted(results.fork.get(side, {}).items())
        ax.plot([n for n, _ in points], [s * 1e3 for _, s in points], "o-", color=colors[side], label=side)
        spread(ax, sorted(fork_samples.get(side, {}).items()), colors[side], lambda n: 1e3)
    # A log axis: mprotect's 100+ ms would flatten madvise against no guards.
    ax.set(yscale="log", xlabel="guarded slots held", ylabel="ms (log scale)",
           title="fork() + child exit latency (line: best sample; dots: all)")
    ax.legend(fontsize=8)
    save(fig, "fork")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for side in ("madvise-batched", "mprotect", "none"):
        points = sorted(results.create.get(side, {}).items())
        ax.plot([n for n, _ in points], [f["seconds"] * 1e3 for _, f in points], "o-",
                color=colors[side], label=side)
        spread(ax, sorted(create_samples.get(side, {}).items()), colors[side], lambda n: 1e3)
    wall = results.mprotect_wall.get("max_slots")
    if wall:
        ax.axvline(wall, color="tab:red", linestyle="--", linewidth=1)
        ax.text(wall * 1.1, 0.08, "mprotect: MemoryError\n(vm.max_map_count)", color="tab:red",
                fontsize=8, transform=ax.get_xaxis_transform())
    ax.set(xscale="log", yscale="log", xlabel="slots", ylabel="ms to create",
           title="Scaling to 1,000,000 slots")
    ax.legend(fontsize=8, loc="upper left")
    save(fig, "scaling")

    def bars(name, medians, samples, scale, unit, title, log):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        sides = list(medians)
        ax.bar(range(len(sides)), [medians[s] * scale for s in sides],
               color=[colors.get(s, "tab:blue") for s in sides], alpha=0.8)
        for i, side in enumerate(sides):
            values = samples.get(side, [])
            ax.scatter([i] * len(values), [v * scale for v in values], s=9, color="black", alpha=0.4,
                       linewidths=0)
        ax.set_xticks(range(len(sides)), sides, fontsize=8, rotation=15)
        ax.set(ylabel=unit, title=title)
        if log:
            ax.set_yscale("log")
        save(fig, name)

    if results.teardown:
        bars("teardown", results.teardown, results.samples.get("teardown", {}), 1e3, "ms (log scale)",
             "Closing an arena of 30,000 slots (bar: median; dots: all)", log=True)
    if results.alloc_free:
        bars("alloc_free", results.alloc_free, results.samples.get("alloc_free", {}), 1e9, "ns per cycle",
             "alloc + free of 64 B (bar: median; dots: all)", log=False)
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
    results = Results(machine={
        "kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "guardalloc": __version__, "max_map_count": max_map_count(), "quick": args.quick,
    })
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

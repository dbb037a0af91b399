"""The plots of ``python -m guardalloc bench`` (:mod:`guardalloc.bench.guard_costs`).

Each PNG is meant to be read at a glance: large fonts, log axes where the
sides span decades, every value written beside its point, legends outside
the data, the median of each side with every sample behind it as a faint
dot (a lone outlier then reads as noise, not as a trend).
"""

from __future__ import annotations

import os
from typing import Any

from guardalloc.bench.timing import GUARDED_SIDES, LAZY_SIDE

PLOTS = {
    "vmas": "VMAs in the arena against slots, every slot guarded",
    "time_per_guard": "time per guard installed (build + open every slot) against slots",
    "fork": "fork() latency against guarded slots held",
    "scaling": "time to guard up to 1,000,000 slots, lazy creation, and the mprotect wall",
    "teardown": "closing an arena of 30,000 guarded slots, per side",
    "alloc_free": "alloc + free of 64 bytes from Python, per allocator",
}


def plot_caption(name: str, results: Any) -> str:
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


def write_plots(results: Any, out: str) -> list[str]:
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

    # Inline, so that the keys type-check against matplotlib's literal rc names.
    with plt.rc_context({"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12,
                 "xtick.labelsize": 12, "ytick.labelsize": 12, "lines.linewidth": 2.2, "lines.markersize": 7}):
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

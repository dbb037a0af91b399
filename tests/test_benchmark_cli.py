"""``python -m guardalloc bench``: a tiny end-to-end run, the table and the report."""

from __future__ import annotations

import json
import math
import os
import platform
import sys

import pytest

from guardalloc.bench import guard_costs as benchmark
from guardalloc.cli import main as cli


@pytest.fixture
def tiny(monkeypatch):
    """Settings small enough for a test (the shape of the run is unchanged)."""
    settings = benchmark.Settings([100, 300], [1_000], [0, 100], create_rounds=1, scale_rounds=1,
                                  fork_blocks=1, forks_per_block=1, alloc_rounds=1, alloc_inner=10)
    monkeypatch.setattr(benchmark.Settings, "for_run", classmethod(lambda cls, quick: settings))


def test_bench_command_writes_table_report_and_results(tiny, tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for title in ("Guarding 300 slots of 4 KiB", "1,000 slots of 4 KiB", "Arena teardown",
                  "fork() + child exit", "alloc + free of a 64-byte buffer"):
        assert title in out
    assert "mprotect / side" in out and "vs bytearray" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["create"]["madvise-batched"]["300"]["vmas_in_arena"] == 1
    assert results["create"]["mprotect"]["300"]["vmas_in_arena"] == 601
    assert results["create"]["madvise-batched"]["1000"]["guard_syscalls"] == 1
    # mprotect cannot reach 1,000,000 slots under the default vm.max_map_count.
    if results["machine"]["max_map_count"] < 2_000_000:
        assert "vm.max_map_count" in results["mprotect_wall"]["error"]
        assert results["mprotect_wall"]["vmas_left"] <= 0
    report = (tmp_path / "report.md").read_text()
    assert "| madvise-batched |" in report
    assert "guardalloc bench --quick" in report


def test_bench_plots_with_matplotlib(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    for name in benchmark.PLOTS:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert f"]({name}.png)" in (tmp_path / "report.md").read_text()
    assert f"{len(benchmark.PLOTS)} plots" in capsys.readouterr().out
    for name in ("teardown", "alloc_free"):
        assert name in benchmark.PLOTS


def test_bench_keeps_every_sample_for_the_spread_in_the_plots(tiny, tmp_path, capsys):
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    samples = json.loads((tmp_path / "results.json").read_text())["samples"]
    assert set(samples) == {"create", "teardown", "fork", "alloc_free"}
    assert len(samples["create"]["madvise-batched"]["300"]) == 1      # create_rounds=1
    assert samples["teardown"]["mprotect"] and samples["alloc_free"]["bytearray"]


def test_bench_out_with_a_trailing_slash_names_the_report_once(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--out", "report/"]) == 0
    out = capsys.readouterr().out
    assert "wrote report/report.md" in out and "//" not in out


def test_a_plotting_failure_keeps_results_and_report(tiny, tmp_path, capsys, monkeypatch):
    def broken(results, out):
        raise RuntimeError("no backend")
    monkeypatch.setattr(benchmark, "write_plots", broken)
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    assert "the plots failed: RuntimeError: no backend" in capsys.readouterr().out
    assert (tmp_path / "results.json").exists() and (tmp_path / "report.md").exists()


def test_bench_without_matplotlib_says_plots_were_skipped(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    assert "plots skipped: matplotlib is not installed" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "report.md").exists()


def test_progress_prints_one_line_per_step_without_a_terminal(capsys):
    progress = benchmark.Progress(2, stream=sys.stdout)
    progress.step("first")
    progress.step("second")
    progress.finish()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("[" + "#" * 30 + "] 2/2")


def test_bench_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("")
    assert cli.main(["bench", "--out", str(target)]) == 2
    assert "cannot use" in capsys.readouterr().err


@pytest.fixture
def lazy_sized(monkeypatch):
    """Slot counts above the 1,024 an arena guards whole when built: a
    madvise arena of 3,000 slots defers its guards."""
    settings = benchmark.Settings([300, 3_000], [3_000], [0, 3_000], create_rounds=1, scale_rounds=1,
                                  fork_blocks=1, forks_per_block=1, alloc_rounds=1, alloc_inner=10)
    monkeypatch.setattr(benchmark.Settings, "for_run", classmethod(lambda cls, quick: settings))


def test_creation_counts_every_guard_installed_and_shows_lazy_creation_apart(lazy_sized, tmp_path, capsys):
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    create = json.loads((tmp_path / "results.json").read_text())["create"]
    eager, lazy = create["madvise-batched"]["3000"], create[benchmark.LAZY_SIDE]["3000"]
    # Opened whole: the 2 calls of the lazy build, one for the last chunk's
    # neighbourhood and one batched call per 1,024 slots; one VMA left.
    assert eager["guard_syscalls"] == 2 + 1 + math.ceil(3_000 / 1024)
    assert eager["guards_installed"] == 3_001 and eager["vmas_in_arena"] == 1
    assert create["madvise-per-guard"]["3000"]["guard_syscalls"] == 2 + 1 + 3_000
    assert create["mprotect"]["3000"]["vmas_in_arena"] == 6_001
    # As built: the first guard and the PROT_NONE tail.
    assert lazy["guard_syscalls"] == 2 and lazy["vmas_in_arena"] == 2
    # The per-guard column divides by the guards installed, and the lazy row has none.
    creation = out.split("Guarding 3,000 slots", 1)[1].split("\n\n")[1]
    table = {line.split()[0]: line for line in creation.splitlines()}
    per_guard = eager["seconds"] / 3_001 * 1e9
    assert f"{per_guard:,.0f} ns" in table["madvise-batched"]
    assert "(lazy)" in table[benchmark.LAZY_SIDE]


def test_results_record_the_commit_kernel_and_machine(tiny, tmp_path, capsys):
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    machine = json.loads((tmp_path / "results.json").read_text())["machine"]
    assert machine["kernel"] == platform.release() and machine["arch"] == platform.machine()
    assert machine["cpu"] and machine["cpus"] == os.cpu_count()
    assert machine["commit"]   # git describe in a checkout, else the package version
    assert machine["commit"] in (tmp_path / "report.md").read_text()


def test_the_commit_is_the_package_version_outside_a_git_checkout(monkeypatch):
    monkeypatch.setattr(benchmark.shutil, "which", lambda name: None)
    assert benchmark._commit() == f"guardalloc {benchmark.__version__}"

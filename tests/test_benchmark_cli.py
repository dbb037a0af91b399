"""``python -m guardalloc bench``: a tiny end-to-end run, the table and the report."""

from __future__ import annotations

import json
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
    for title in ("Arena creation, 300 slots", "1,000 slots of 4 KiB", "Arena teardown",
                  "fork() + child exit", "alloc + free of a 64-byte buffer"):
        assert title in out
    assert "faster than mprotect" in out and "vs bytearray" in out
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

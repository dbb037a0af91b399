"""bench/compare_previous.py, the one side-by-side (two virtualenvs,
interleaved) comparison: every issue-10 figure runs and lands in the table;
--only takes figure and group names and refuses others. (Both sides are this
interpreter here: the test checks the script, not a speed.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPT = BENCH / "compare_previous.py"


def load():
    spec = importlib.util.spec_from_file_location("compare_previous", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_groups_expand_in_order_each_figure_once():
    compare = load()
    assert compare.selected(None) == ["numpy", "create", "bookkeeping", "uaf", "pymem", "floor"]
    assert compare.selected(["pool_alloc", "issue10"]) == [
        "pool_alloc", "create_30k", "create_1m", "arena_alloc", "numpy_handler", "pymem_hooks"]
    for group in compare.GROUPS.values():
        assert all(name in compare.FIGURES or name in compare.SPECIAL for name in group)
    assert not (BENCH / "ab_compare.py").exists()


def test_table_has_a_ratio_per_figure_both_sides_have():
    compare = load()
    text = compare.table({"new": {"a_us": 2.0, "b": 1.0, "z": 0.0}, "old": {"a_us": 4.0, "z": 0.0}})
    assert text.splitlines()[2:] == ["| a_us | 4 | 2 | 0.500 |", "| z | 0 | 0 | - |"]


def test_issue10_figures_run_side_by_side(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--old-python", sys.executable, "--rounds", "1",
                           "--only", "issue10", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    keys = ["create_30k_us", "create_1m_us", "arena_alloc_free_ns", "pool_alloc_free_ns",
            "numpy_handler_empty_ns", "pymem_hooks_json_us"]
    recorded = json.loads(out.read_text())
    for side in ("new", "old"):
        assert list(recorded["medians"][side]) == keys
        assert all(len(recorded["samples"][side][key]) == 1 for key in keys)
        assert all(value > 0 for value in recorded["medians"][side].values())
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "figure" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == keys
    assert "round 1/1 done" in proc.stderr


def test_only_refuses_an_unknown_figure():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--old-python", sys.executable, "--only", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr

"""guardalloc.bench.peers without running the peers: outcome classes, tool
discovery ("not installed"), the table, and the detection of guardalloc's
own column (the corpus under the library: every case at the access)."""

from __future__ import annotations

import shutil
import signal

import pytest

from guardalloc import native
from guardalloc.bench import peers, programs


def test_classify_error_status_of_valgrind_and_asan():
    valgrind = [t for t in peers.tools() if t.name == "valgrind memcheck"][0]
    assert peers.classify("overflow_read", peers.ERROR_STATUS, valgrind) == peers.AT_ACCESS
    assert peers.classify("double_free", peers.ERROR_STATUS, valgrind) == peers.AT_ACCESS
    assert peers.classify("overflow_read", 0, valgrind) == peers.MISSED
    assert valgrind.argv(["./prog", "1"])[-2:] == ["./prog", "1"]


def test_classify():
    assert peers.classify("overflow_write", -signal.SIGSEGV) == peers.AT_ACCESS
    assert peers.classify("overflow_write", -signal.SIGABRT) == peers.LATE
    assert peers.classify("overflow_write", 0) == peers.MISSED
    assert peers.classify("double_free", -signal.SIGABRT) == peers.AT_ACCESS
    assert peers.classify("double_free", 0) == peers.MISSED


def test_missing_peer_is_not_installed():
    tool = peers.Tool("nothing", ["/nonexistent/libnothing.so*"], {})
    assert tool.find() is None
    names = [t.name for t in peers.tools()]
    assert names == ["guardalloc", "Electric Fence", "DUMA", "GWP-ASan (scudo)", "valgrind memcheck",
                     "ASan (recompiled)"]


def test_guardalloc_detects_every_case_at_the_access(tmp_path):
    guardalloc = [t for t in peers.tools() if t.name == "guardalloc"]
    table = peers.detection(guardalloc, str(tmp_path))["guardalloc"]
    assert set(table.values()) == {peers.AT_ACCESS}, table
    assert len(table) >= 13


def test_markdown_says_not_installed():
    results = {
        "command": "python -m guardalloc bench --peers", "scale_blocks": 10, "fork_blocks": 5,
        "tools": {"guardalloc": "/x.so", "DUMA": None},
        "detection": {"guardalloc": {"uaf_read": peers.AT_ACCESS},
                      "DUMA": {"uaf_read": peers.NOT_INSTALLED}},
        "scale": {"plain_vmas_total": 20,
                  "guardalloc": {"live": 10, "vmas_added": 0, "vmas_total": 22, "finished": True},
                  "DUMA": peers.NOT_INSTALLED},
        "fork": {"plain": 0.3, "guardalloc": 9.0, "DUMA": peers.NOT_INSTALLED},
        "overhead": {"plain": {"seconds": 1.0, "ratio": 1.0},
                     "guardalloc, every allocation": {"seconds": 2.0, "ratio": 2.0},
                     "DUMA": peers.NOT_INSTALLED},
    }
    text = peers.markdown(results)
    assert "| uaf_read | at access | not installed |" in text
    assert "**1/1** | not installed" in text
    assert "10 (all), 0 VMAs added after main, 22 in all" in text
    assert "2.00x (2.00 s)" in text


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_valgrind_detects_an_overflow(tmp_path):
    valgrind = [t for t in peers.tools() if t.name == "valgrind memcheck"]
    table = peers.detection(valgrind, str(tmp_path))["valgrind memcheck"]
    assert table["overflow_read"] == peers.AT_ACCESS, table


@pytest.mark.skipif(peers._asan_compiler() is None, reason="no compiler with AddressSanitizer")
def test_asan_reference_detects_an_overflow(tmp_path):
    asan = [t for t in peers.tools() if t.kind == peers.COMPILED]
    table = peers.detection(asan, str(tmp_path))[asan[0].name]
    assert table["overflow_write"] == peers.AT_ACCESS, table


def test_real_program_same_output_with_ratios():
    if shutil.which("sort") is None or shutil.which("gcc") is None:
        pytest.skip("needs sort and gcc")
    result = programs.real_programs(native.library_path(), peers.ROOT, True, 1, only=["sort"])["sort"]
    assert result["identical"] is True and result["status"] == 0, result
    assert result["time_ratio"] > 0 and result["rss_ratio"] > 0
    assert "| sort | " in programs.markdown({"sort": result})


def test_programs_markdown_and_not_installed():
    text = programs.markdown({"xz": programs.NOT_INSTALLED,
                              "perl": {"what": "w", "identical": False, "status": 1, "plain_status": 0,
                                       "time_ratio": 2.0, "rss_ratio": 3.0}})
    assert "| xz | | not installed |" in text
    assert "DIFFERENT (status 1, plain 0) | 2.00x | 3.00x |" in text


def test_regrtest_timings_are_dropped():
    out = b"Using random seed: 5\n0:00:00 load avg: 3.1 Run\n== Tests result: SUCCESS ==\nTotal duration: 1.0 sec\n"
    assert programs._drop_timings(out) == b"== Tests result: SUCCESS =="

"""guardalloc.bench.peers without running the peers: outcome classes, tool
discovery ("not installed"), the table, and the detection of guardalloc's
own column (the corpus under the library: every case at the access)."""

from __future__ import annotations

import signal

from guardalloc.bench import peers


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
    assert names == ["guardalloc", "Electric Fence", "DUMA", "GWP-ASan (scudo)"]


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

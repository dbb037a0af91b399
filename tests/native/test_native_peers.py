"""guardalloc.bench.peers without running the peers: outcome classes, tool
discovery ("not installed"), the table, and the detection of guardalloc's
own column (the corpus under the library: every case at the access)."""

from __future__ import annotations

import shutil
import signal

import pytest

from guardalloc import native
from guardalloc.bench import peer_corpus, peers, programs


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


# Recorded runs of corpus programs (stderr's first lines, addresses as they
# were; paths shortened): (tool, returncode, stderr, twin, expected outcome).
RECORDED = [
    ("guardalloc", -6, "==3824== guardalloc: bad-free: attempting free on address which was not malloc()-ed: "
     "0x557956f55040\n  0x557956f55040 is in a global or static variable\n", False, "caught"),
    ("guardalloc", -11, "==3598== guardalloc: heap-buffer-overflow WRITE at 0x7f032b802000\n"
     "  0 bytes past the end of a 256-byte buffer [0x7f032b801f00, 0x7f032b802000)\n", False, "caught"),
    ("guardalloc", 0, "", False, "missed"),                     # uaf_read: uaf=0 by default
    ("guardalloc", 203, "", False, "missed"),                   # overflow_read: inside the padding
    ("guardalloc", -6, "free(): invalid pointer\n", False, "crashed"),   # glibc's abort, no report
    ("guardalloc", 0, "", True, "silent"),
    ("guardalloc", -6, "==41== guardalloc: double-free of 0x7f72d1e01fe0\n", True, "reported"),
    ("Electric Fence", -4, "ElectricFence Aborting: free(7ffd5b1f6c70): address not from malloc().\n", False,
     "caught"),
    ("Electric Fence", 255, "ElectricFence Aborting: free(7f3f7d040e90): address not from malloc().\n", False,
     "caught"),                                                 # free_thread_stack: exit from the thread
    ("Electric Fence", -11, "", False, "caught"),               # its guard page: no message
    ("Electric Fence", 0, "", False, "missed"),
    ("Electric Fence", -4, "ElectricFence Aborting: free() called before first malloc().\n", True,
     "reported"),                                               # aligned_alloc's twin: not its block
    ("DUMA", -4, "DUMA Aborting: Free mismatch: allocator 'malloc()' used  but  deallocator 'scalar delete' "
     "called!\n", False, "caught"),
    ("DUMA", -4, "DUMA Aborting: ptr=7f248b916fe0: detected overwrite of ptrs no mans land below userSpace\n",
     False, "caught"),
    ("DUMA", 170, "", False, "missed"),                         # the byte it read, as the exit status
    ("DUMA", -11, "", False, "caught"),
    ("DUMA", 0, "", True, "silent"),
    ("GWP-ASan (scudo)", -11, "*** GWP-ASan detected a memory error ***\nDouble Free at 0x7f0d8eabffe0 "
     "(a 24-byte allocation) by thread 12809 here:\n  #0 libclang_rt.scudo_standalone-x86_64.so(+0x3259)\n",
     False, "caught"),
    ("GWP-ASan (scudo)", -6, "Scudo ERROR: corrupted chunk header at address 0x7ffd8e207880\n", False, "caught"),
    ("GWP-ASan (scudo)", 0, "", False, "missed"),
    ("GWP-ASan (scudo)", -11, "", False, "crashed"),            # a SIGSEGV with no report of its own
    ("GWP-ASan (scudo)", 0, "", True, "silent"),
    ("valgrind memcheck", 99, "==5600== Invalid read of size 1\n==5600==    at 0x109161: trigger "
     "(overflow_read.c:10)\n", False, "caught"),
    ("valgrind memcheck", -11, "==5391== Invalid free() / delete / delete[] / realloc()\n==5391==    at "
     "0x484682F: realloc\n", False, "caught"),                  # reported, then the program died
    ("valgrind memcheck", 99, "", False, "caught"),             # its error status alone
    ("valgrind memcheck", 0, "", False, "missed"),
    ("valgrind memcheck", 0, "", True, "silent"),
    ("valgrind memcheck", 99, "==7== Mismatched free() / delete / delete []\n", True, "reported"),
    ("ASan (recompiled)", 99, "=================================================================\n"
     "==6237==ERROR: AddressSanitizer: alloc-dealloc-mismatch (operator new [] vs free) on 0x504000000010\n",
     False, "caught"),
    ("ASan (recompiled)", 99, "==8==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x502000000011\n",
     False, "caught"),
    ("ASan (recompiled)", 0, "", False, "missed"),
    ("ASan (recompiled)", 0, "", True, "silent"),
    ("ASan (recompiled)", None, "", False, "hung"),
]


@pytest.mark.parametrize("tool, returncode, stderr, twin, expected", RECORDED,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(RECORDED)])
def test_outcome_of_recorded_runs(tool, returncode, stderr, twin, expected):
    assert peer_corpus.outcome(tool, returncode, stderr, twin) == expected


def test_report_of_names_the_kind():
    assert peer_corpus.report_of("guardalloc", RECORDED[0][2]).startswith("bad-free: attempting free")
    assert peer_corpus.report_of("GWP-ASan (scudo)", RECORDED[17][2]).startswith("Double Free at 0x7f0d8eabffe0")
    assert peer_corpus.report_of("ASan (recompiled)", RECORDED[28][2]).startswith("alloc-dealloc-mismatch")
    assert peer_corpus.report_of("valgrind memcheck", "==1== Conditional jump or move\n") is not None
    assert peer_corpus.report_of("DUMA", "") is None
    # Every tool of the table has its markers.
    assert {t.name for t in peers.tools()} == set(peer_corpus._MARKERS)


def test_every_corpus_program_has_a_class():
    named = peer_corpus.sources(peers.CORPUS)
    assert len(named) >= 34
    assert {n for n in named if peer_corpus.class_of(n) is None} == set()
    listed = [n for names in peer_corpus.CLASSES.values() for n in names]
    assert sorted(listed) == sorted(named)   # each once, none missing


def test_corpus_markdown_counts_per_class():
    results = {"quick": False, "not_installed": ["DUMA"], "grid_reads": 15,
               "programs": {"guardalloc": {
                   "double_free": {"class": "double free", "bug": "caught", "twin": "silent"},
                   "uaf_read": {"class": "use after free (read, write)", "bug": "missed", "twin": "silent"},
                   "uaf_write": {"class": "use after free (read, write)", "bug": "caught", "twin": "reported"}}},
               "grid": {"guardalloc": {1: list(range(1, 16)), 17: []}},
               "grid_twins": {"guardalloc": {1: "silent", 17: "crashed"}}}
    counts = peer_corpus.class_counts(results)["guardalloc"]
    assert counts["use after free (read, write)"] == {"caught": 1, "bugs": 2, "silent": 1, "twins": 2}
    assert counts["total"] == {"caught": 2, "bugs": 3, "silent": 2, "twins": 3}
    text = peer_corpus.markdown(results, ["guardalloc", "DUMA"])
    assert "| use after free (read, write) | 1/2; 1/2 |" in text
    assert "| **total** | **2/3; 2/3** |" in text
    assert "not caught: uaf_read (missed); twins not silent: uaf_write (reported)" in text
    assert "DUMA: not installed." in text
    assert "| 1 | 15/15 |" in text and "| 17 | 0/15 (twin crashed) |" in text
    assert "| **all** | **15/30** |" in text


@pytest.mark.slow   # about 50 s: 30 runs of exec, 30 of valgrind
def test_corpus_table_runs_guardalloc_and_valgrind(tmp_path):
    """A real quick run of guardalloc (exec) and, where installed, valgrind:
    every class's first program caught, every twin silent; the grid's
    corners as the library's alignment rule says."""
    chosen = [t for t in peers.tools() if t.name == "guardalloc"
              or (t.name == "valgrind memcheck" and t.library is not None)]
    results = peer_corpus.corpus_table(chosen, peers.CORPUS, str(tmp_path), quick=True)
    rows = results["programs"]["guardalloc"]
    assert {name for name, row in rows.items() if row["bug"] != "caught"} == {"overflow_read", "uaf_read"}
    assert {row["twin"] for row in rows.values()} == {"silent"}
    assert rows["free_stack_array"]["report"].startswith("bad-free")
    # 1 byte: no padding; 3 (4-aligned): 1 past is in the padding; 13 and 17: 16-aligned.
    assert results["grid"]["guardalloc"] == {1: [1, 15], 3: [15], 13: [15], 17: []}
    assert set(results["grid_twins"]["guardalloc"].values()) == {"silent"}
    if "valgrind memcheck" in results["programs"]:
        vg = results["programs"]["valgrind memcheck"]
        assert {row["bug"] for row in vg.values()} == {"caught"}
        assert {row["twin"] for row in vg.values()} == {"silent"}

"""guardalloc.maps: VMAs, the guard pages that /proc/PID/maps hides, and
what a process may really read."""

from __future__ import annotations

import ctypes
import dataclasses
import mmap
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import guardalloc
import guardalloc.maps as maps
from guardalloc import GuardUnsupportedError
from guardalloc.maps import GuardRun, GuardRuns, Range, Ranges, guard_pages, readable_ranges, vma_count, vmas
from guardalloc.introspect.probe import support

from conftest import PACKAGE_PARENT, PAGE

METHODS = ["scan", "pagemap"]


def _expected(address, slots, stride, guard_size):
    return [(address + i * stride, address + i * stride + guard_size) for i in range(slots + 1)]


def _arena_guards(arena, **kwargs):
    return guard_pages(arena.address, arena.address + arena.size, **kwargs)


def test_support_reports_pagemap_scan():
    assert guardalloc.support().pagemap_scan is support().pagemap_scan
    assert maps.scan_method() == ("scan" if support().pagemap_scan else "pagemap")


# ---------------------------------------------------------------------------
# vmas

def test_vmas_parse_proc_maps(tmp_path):
    path = tmp_path / "mapped file.bin"
    path.write_bytes(b"x" * 3 * PAGE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        # The interpreter's own allocator may map an arena between two reads
        # of /proc/self/maps: compare with counts taken on both sides.
        for _ in range(50):
            before, areas, after = vma_count(), vmas(), vma_count()
            if before == after:
                break
        assert len(areas) == before == after
        assert all(a.start < a.end for a in areas)
        assert all(x.end <= y.start for x, y in zip(areas, areas[1:]))
        mapped = [a for a in areas if a.path == str(path)]
        assert len(mapped) == 1
        vma = mapped[0]
        assert vma.perms == "r--s" and vma.readable and vma.shared
        assert vma.size == 3 * PAGE and vma.offset == 0
        assert vma.inode == path.stat().st_ino and ":" in vma.dev
        assert "start=0x" in repr(vma)
        del view


def test_vmas_of_an_arena_hide_madvise_guards_but_not_mprotect_ones():
    with guardalloc.Arena(4096, 50, backend="madvise") as arena:
        inside = [a for a in vmas() if a.start < arena.address + arena.size and a.end > arena.address]
        assert len(inside) == 1 and inside[0].perms == "rw-p"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = guardalloc.Arena(4096, 50, backend="mprotect")
    inside = [a for a in vmas() if a.start < arena.address + arena.size and a.end > arena.address]
    assert [a.perms for a in inside].count("---p") == 51
    arena.close()


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), ("12", TypeError), (True, TypeError)])
def test_bad_pid(bad, error):
    with pytest.raises(error):
        vmas(bad)


def test_missing_process():
    with pytest.raises(ProcessLookupError, match="no process"):
        vmas(2**22 + 1)   # above the largest pid_max
    with pytest.raises(ProcessLookupError):
        guard_pages(0, 2**64, pid=2**22 + 1)
    with pytest.raises(ProcessLookupError):
        readable_ranges(2**22 + 1)



def test_unreadable_process(child, root_process):
    result = child(
        """
        import os, sys
        from guardalloc import maps
        pid = int(sys.argv[1])
        os.setgid(65534); os.setuid(65534)
        for call in (lambda: maps.vmas(pid), lambda: maps.guard_pages(0, 2**64, pid=pid),
                     lambda: maps.readable_ranges(pid)):
            try:
                call()
            except PermissionError as exc:
                print("PermissionError", f"process {pid}" in str(exc), flush=True)
        """,
        str(root_process),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["PermissionError True"] * 3


# ---------------------------------------------------------------------------
# guard_pages

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("guard_pages_each, slots", [(1, 1), (1, 100), (2, 37), (1, 5000)])
def test_guard_pages_finds_exactly_the_guards_of_a_madvise_arena(method, guard_pages_each, slots):
    with guardalloc.Arena(4096, slots, guard_pages=guard_pages_each, backend="madvise") as arena:
        arena.alloc(1, slot=slots - 1).free()   # lays every lazy guard (> 1,024 slots)
        runs = _arena_guards(arena, method=method)
        assert isinstance(runs, GuardRuns) and runs.method == method
        assert runs == _expected(arena.address, slots, arena.stride, arena.guard_size)
        assert runs.pages == (slots + 1) * guard_pages_each
        # The whole address space holds them too, plus perhaps other guards
        # (glibc 2.42+ guards thread stacks this way).
        everything = guard_pages(0, 2**64, method=method)
        assert everything.within(arena.address, arena.address + arena.size) == runs


@pytest.mark.parametrize("method", METHODS)
def test_guard_pages_include_use_after_free_guards(method):
    with guardalloc.Arena(4096, 4, uaf=True, backend="madvise") as arena:
        buf = arena.alloc(10, slot=1)
        buf.free()
        runs = _arena_guards(arena, method=method)
        # Slot 1's data pages joined the guards on both sides into one run.
        stride = arena.stride
        assert runs == [(arena.address, arena.address + PAGE),
                        (arena.address + stride, arena.address + 2 * stride + PAGE),
                        (arena.address + 3 * stride, arena.address + 3 * stride + PAGE),
                        (arena.address + 4 * stride, arena.address + 4 * stride + PAGE)]


@pytest.mark.parametrize("method", METHODS)
def test_guard_pages_finds_none_for_the_mprotect_backend(method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arena = guardalloc.Arena(4096, 100, backend="mprotect")
    assert len(_arena_guards(arena, method=method)) == 0
    arena.close()


def test_both_scan_paths_agree_on_the_whole_process():
    arenas = [guardalloc.Arena(4096, 300, guard_pages=g) for g in (1, 3)]
    arenas.append(guardalloc.Arena(4096, 20, file="memfd"))
    try:
        assert guard_pages(0, 2**64, method="scan") == guard_pages(0, 2**64, method="pagemap")
    finally:
        for arena in arenas:
            arena.close()


def test_guard_pages_widens_to_pages_and_clips_to_the_range():
    with guardalloc.Arena(4096, 4) as arena:
        base = arena.address
        # Range starting inside guard 0 and ending inside guard 2.
        runs = guard_pages(base + 100, base + 2 * arena.stride + 5)
        assert runs == [(base, base + PAGE), (base + arena.stride, base + arena.stride + PAGE),
                        (base + 2 * arena.stride, base + 2 * arena.stride + PAGE)]
        assert len(guard_pages(base + PAGE, base + arena.stride)) == 0
        assert len(guard_pages(base, base)) == 0


def test_guard_pages_on_a_read_only_file_mapping(tmp_path):
    # Since Linux 6.15 guards work on read-only file mappings too.
    path = tmp_path / "ro.bin"
    path.write_bytes(b"r" * 4 * PAGE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        view.madvise(102, PAGE, PAGE)   # MADV_GUARD_INSTALL on the second page
        start = next(a.start for a in vmas() if a.path == str(path))
        assert guard_pages(start, start + 4 * PAGE) == [(start + PAGE, start + 2 * PAGE)]
        assert guard_pages(start, start + 4 * PAGE, method="pagemap") == [(start + PAGE, start + 2 * PAGE)]
        readable = readable_ranges()
        assert start in readable and start + 2 * PAGE in readable
        assert start + PAGE not in readable
        assert view[:1] == b"r" and view[2 * PAGE:2 * PAGE + 1] == b"r"


def test_guard_pages_of_a_child_process():
    code = textwrap.dedent(
        """
        import sys, guardalloc
        arena = guardalloc.Arena(4096, 250, guard_pages=2, uaf=True)
        arena.alloc(10, slot=7).free()
        print(arena.address, arena.size, arena.stride, arena.guard_size, flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env) as proc:
        address, size, stride, guard = map(int, proc.stdout.readline().split())
        expected = _expected(address, 250, stride, guard)
        # Slot 7 is guarded (use-after-free) and joins its neighbours.
        expected[7:9] = [(expected[7][0], expected[8][1])]
        for method in METHODS:
            runs = guard_pages(address, address + size, pid=proc.pid, method=method)
            assert runs == expected
        everything = guard_pages(0, 2**64, pid=proc.pid)
        assert everything.within(address, address + size) == expected
        readable = readable_ranges(proc.pid)
        assert address + guard in readable and address not in readable
        assert address + 7 * stride + guard not in readable
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_guard_pages_bad_arguments():
    with pytest.raises(ValueError, match="above end"):
        guard_pages(2 * PAGE, PAGE)
    with pytest.raises(ValueError):
        guard_pages(-1, PAGE)
    with pytest.raises(ValueError):
        guard_pages(0, 2**64 + 1)
    with pytest.raises(TypeError):
        guard_pages(0.0, PAGE)
    with pytest.raises(ValueError, match="method"):
        guard_pages(0, PAGE, method="fast")


def test_kernel_without_pagemap_scan_uses_pagemap(monkeypatch):
    fake = dataclasses.replace(guardalloc.support(), pagemap_scan=False)
    monkeypatch.setattr(maps, "support", lambda refresh=False: fake)
    with guardalloc.Arena(4096, 10) as arena:
        runs = _arena_guards(arena)
        assert runs.method == "pagemap"
        assert runs == _expected(arena.address, 10, arena.stride, arena.guard_size)
    with pytest.raises(GuardUnsupportedError, match="PAGEMAP_SCAN"):
        guard_pages(0, PAGE, method="scan")


def test_kernel_with_guards_but_no_pagemap_bit_refuses_the_pagemap_path(monkeypatch):
    fake = dataclasses.replace(guardalloc.support(), pagemap_guard_bit=False)
    monkeypatch.setattr(maps, "support", lambda refresh=False: fake)
    with pytest.raises(GuardUnsupportedError, match="bit 58"):
        guard_pages(0, PAGE, method="pagemap")


# ---------------------------------------------------------------------------
# GuardRuns / Ranges

def test_guard_runs_sequence():
    with guardalloc.Arena(4096, 3, guard_pages=2) as arena:
        runs = _arena_guards(arena)
        base, stride, guard = arena.address, arena.stride, arena.guard_size
    assert len(runs) == 4
    assert runs[0] == GuardRun(base, base + guard) and runs[0].pages == 2 and runs[0].size == 2 * PAGE
    assert runs[-1] == (base + 3 * stride, base + 3 * stride + guard)
    assert runs[1:3] == [runs[1], runs[2]]
    assert list(runs) == runs[:]
    assert runs.pages == 8 and runs.size == 8 * PAGE
    assert base in runs and base + guard not in runs and "x" not in runs
    assert "4 run(s), 8 page(s)" in repr(runs) and "0x" in repr(runs[0])
    with pytest.raises(IndexError):
        runs[4]
    with pytest.raises(TypeError):
        GuardRuns()
    with pytest.raises(TypeError):
        hash(runs)
    clipped = runs.within(base + PAGE, base + stride + PAGE)
    assert isinstance(clipped, GuardRuns) and clipped == [(base + PAGE, base + guard),
                                                         (base + stride, base + stride + PAGE)]


# ---------------------------------------------------------------------------
# readable_ranges

def test_readable_ranges_exclude_guards_and_unreadable_vmas():
    with guardalloc.Arena(4096, 100) as arena:
        readable = readable_ranges()
        assert isinstance(readable, Ranges) and isinstance(readable[0], Range)
        assert all(r.start < r.end for r in readable)
        assert all(x.end < y.start for x, y in zip(readable, readable[1:]))   # merged, disjoint
        for run in _arena_guards(arena):
            assert run.start not in readable and run.end - 1 not in readable
        for slot in range(100):
            assert arena.slot_address(slot) in readable
        for vma in vmas():
            if not vma.readable or vma.path in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
                assert vma.start not in readable
        assert readable == readable_ranges(method="pagemap")


def test_reading_every_readable_byte_does_not_fault(child, tmp_path):
    # A child with every kind of trap: a madvise arena, a guarded memfd, an
    # mprotect arena, a file truncated under its mapping, a read-only file
    # mapping with a guard. Reading everything readable_ranges lists must
    # not fault.
    path = tmp_path / "truncated.bin"
    result = child(
        """
        import ctypes, mmap, os, sys, warnings
        import guardalloc
        from guardalloc.maps import readable_ranges
        arenas = [guardalloc.Arena(4096, 200), guardalloc.Arena(4096, 20, file="memfd", uaf=True)]
        arenas[1].alloc(10).free()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arenas.append(guardalloc.Arena(4096, 20, backend="mprotect"))
        truncated = guardalloc.Arena(4096, 8, file=sys.argv[1])
        os.truncate(sys.argv[1], 3 * 4096)
        ro = open(sys.argv[1], "rb")
        view = mmap.mmap(ro.fileno(), 3 * 4096, access=mmap.ACCESS_READ)
        view.madvise(102, 4096, 4096)
        total = 0
        ranges = readable_ranges()
        for start, end in ranges:
            for at in range(start, end, 1 << 20):
                n = min(1 << 20, end - at)
                ctypes.string_at(at, n)
                total += n
        # Three pages are left of the file: guard, slot 0, guard.
        assert truncated.address + 4096 in ranges and truncated.address + 3 * 4096 not in ranges
        print("read", len(ranges), "ranges", total > 0, flush=True)
        """,
        str(path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("read ") and result.stdout.endswith(" ranges True\n")


# ---------------------------------------------------------------------------
# Property: both scan paths agree with a model of which pages are guards

MADV_GUARD_INSTALL, MADV_GUARD_REMOVE = 102, 103
MODEL_PAGES = 64


class GuardPagesMatchModel(RuleBasedStateMachine):
    """Install and remove guards on random page ranges of a scratch mapping;
    guard_pages (both methods) and readable_ranges must match the model."""

    def __init__(self):
        super().__init__()
        self.region = mmap.mmap(-1, MODEL_PAGES * PAGE)
        self.base = self._address()
        self.guarded = [False] * MODEL_PAGES

    def _address(self):
        pointer = ctypes.c_char.from_buffer(self.region)   # released at once
        address = ctypes.addressof(pointer)
        del pointer
        return address

    @rule(first=st.integers(0, MODEL_PAGES - 1), count=st.integers(1, 8), install=st.booleans())
    def advise(self, first, count, install):
        count = min(count, MODEL_PAGES - first)
        self.region.madvise(MADV_GUARD_INSTALL if install else MADV_GUARD_REMOVE, first * PAGE, count * PAGE)
        self.guarded[first:first + count] = [install] * count

    def _model_runs(self):
        runs, page = [], 0
        while page < MODEL_PAGES:
            if self.guarded[page]:
                end = page
                while end < MODEL_PAGES and self.guarded[end]:
                    end += 1
                runs.append((self.base + page * PAGE, self.base + end * PAGE))
                page = end
            else:
                page += 1
        return runs

    @invariant()
    def scans_match_the_model(self):
        expected = self._model_runs()
        end = self.base + MODEL_PAGES * PAGE
        for method in METHODS:
            assert guard_pages(self.base, end, method=method) == expected
        readable = readable_ranges().within(self.base, end)
        assert sum(r.size for r in readable) == self.guarded.count(False) * PAGE
        assert all(not self.guarded[(r.start - self.base) // PAGE] for r in readable)

    def teardown(self):
        self.region.close()


GuardPagesMatchModel.TestCase.settings = settings(max_examples=30, stateful_step_count=15, deadline=None)
test_guard_pages_match_a_model = pytest.mark.slow(GuardPagesMatchModel.TestCase)

"""File-backed and shared arenas: several processes on one file or memfd,
each with guards of its own; truncation, mlock and read-only files."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import tempfile
import textwrap
from pathlib import Path

import pytest

import guardalloc
import guardalloc.backing as backing_module   # where the backend is chosen
import guardalloc.arena as arena_module
from guardalloc import BackingFileError, CorruptionError, GuardUnsupportedError, SharedArena
from guardalloc.maps import guard_pages, readable_ranges

from conftest import PAGE

# Worker functions for multiprocessing "spawn" children: they must live in
# an importable module, so each test writes this one into its tmp_path.
WORKERS = textwrap.dedent(
    """
    import ctypes, os
    from guardalloc.maps import guard_pages

    def write(shared, slot, expect, text):
        buf = shared.attach(slot, 100)
        seen = bytes(memoryview(buf)[:len(expect)])
        memoryview(buf)[:len(text)] = text
        return seen

    def touch_guard(shared):
        arena = shared.arena
        ctypes.memset(arena.slot_address(0) + arena.slot_size, 0x41, 1)   # the guard after slot 0

    def free_with_uaf(shared, slot):
        # uaf=True came along in the layout: freeing guards the slot's
        # data pages, in this process only.
        buf = shared.attach(slot, 100)
        seen = bytes(memoryview(buf)[:6])
        buf.free()
        arena = shared.arena
        runs = guard_pages(arena.address, arena.address + arena.size)
        return seen, len(runs), runs.pages
    """
)


@pytest.fixture
def workers(tmp_path):
    (tmp_path / "shared_workers.py").write_text(WORKERS)
    return {"PYTHONPATH": str(tmp_path)}


def _guards_of(arena):
    return guard_pages(arena.address, arena.address + arena.size)


def _expected_guards(arena):
    return [(arena.address + i * arena.stride, arena.address + i * arena.stride + arena.guard_size)
            for i in range(arena.slots + 1)]


# ---------------------------------------------------------------------------
# Sharing between processes

def test_fork_shares_slots_but_each_process_faults_on_its_guards(child):
    result = child(
        """
        import ctypes, os, signal
        import guardalloc
        arena = guardalloc.Arena(4096, 8, file="memfd", alignment=1)
        buf = arena.alloc(100)
        memoryview(buf)[:6] = b"parent"
        pid = os.fork()
        if pid == 0:
            # Same mapping, inherited: the child writes, the parent reads.
            memoryview(buf)[:6] = b"child!"
            os._exit(0)
        os.waitpid(pid, 0)
        print(bytes(memoryview(buf)[:6]).decode(), flush=True)
        pid = os.fork()
        if pid == 0:
            ctypes.memset(buf.address + 100, 0, 1)   # the guard, inherited by fork
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child signal", os.WTERMSIG(status) if os.WIFSIGNALED(status) else None, flush=True)
        ctypes.memset(buf.address + 100, 0, 1)       # and the parent's own guard
        """
    )
    assert result.stdout.splitlines() == ["child!", f"child signal {int(signal.SIGSEGV)}"]
    assert result.returncode == -signal.SIGSEGV


@pytest.mark.parametrize("backing", ["path", "memfd"])
def test_spawn_worker_shares_slots_and_faults_on_its_own_guards(child, workers, tmp_path, backing):
    file = str(tmp_path / "arena.bin") if backing == "path" else "memfd"
    result = child(
        f"""
        import ctypes, multiprocessing
        import guardalloc, shared_workers
        shared = guardalloc.SharedArena(4096, 8, file={file!r})
        buf = shared.alloc(100, slot=3)
        memoryview(buf)[:6] = b"parent"
        spawn = multiprocessing.get_context("spawn")
        # A Process gets the arena while spawning; a Pool through its task
        # queue (the memfd then travels through multiprocessing's fd sharer).
        with spawn.Pool(1) as pool:
            print(pool.apply(shared_workers.write, (shared, 3, b"parent", b"pooled")), flush=True)
        print(bytes(memoryview(buf)[:6]), flush=True)
        worker = spawn.Process(target=shared_workers.write, args=(shared, 3, b"", b"worker"))
        worker.start(); worker.join()
        print(worker.exitcode, bytes(memoryview(buf)[:6]), flush=True)
        worker = spawn.Process(target=shared_workers.touch_guard, args=(shared,))
        worker.start(); worker.join()
        print("worker exit", worker.exitcode, flush=True)
        arena = shared.arena
        ctypes.memset(arena.slot_address(3) + arena.slot_size, 0, 1)   # the parent's guard after slot 3
        """,
        env=workers,
    )
    assert result.stdout.splitlines() == [
        "b'parent'", "b'pooled'", "0 b'worker'", f"worker exit {-signal.SIGSEGV}"], result.stderr
    assert result.returncode == -signal.SIGSEGV


def test_guards_are_per_process(child, workers):
    # The worker frees slot 5 with uaf=True: its data pages become a guard
    # in the worker's mapping only; the parent still reads them.
    result = child(
        """
        import multiprocessing
        import guardalloc, shared_workers
        from guardalloc.maps import guard_pages
        shared = guardalloc.SharedArena(4096, 8, uaf=True)
        buf = shared.alloc(100, slot=5)
        memoryview(buf)[:6] = b"slot 5"
        arena = shared.arena
        before = guard_pages(arena.address, arena.address + arena.size)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            seen, runs, pages = pool.apply(shared_workers.free_with_uaf, (shared, 5))
        after = guard_pages(arena.address, arena.address + arena.size)
        print(seen, runs, pages, flush=True)
        print(len(before), before.pages, before == after, bytes(memoryview(buf)[:6]), flush=True)
        """,
        env=workers,
    )
    assert result.returncode == 0, result.stderr
    # Worker: 9 guards, two of them merged with slot 5's data into one run.
    assert result.stdout.splitlines() == ["b'slot 5' 8 10", "9 9 True b'slot 5'"]


def test_path_backed_contents_persist_after_close(tmp_path):
    path = tmp_path / "arena.bin"
    with SharedArena(4096, 4, file=path, alignment=1) as shared:
        layout = shared.layout()
        buf = shared.alloc(11, slot=2)
        memoryview(buf)[:] = b"persistent!"
        address = buf.address - shared.arena.address
        del buf
    data = path.read_bytes()
    assert data[address:address + 11] == b"persistent!"
    assert len(data) == PAGE + 4 * 2 * PAGE
    with SharedArena.open(path, **layout) as again:
        assert bytes(again.attach(2, 11)) == b"persistent!"
    # A plain Arena on the same path keeps the contents too (zero=False).
    with guardalloc.Arena(4096, 4, file=str(path), alignment=1) as arena:
        assert bytes(arena.alloc(11, zero=False, slot=2)) == b"persistent!"


def test_shared_arena_pickles_path_and_memfd(tmp_path):
    path_arena = SharedArena(4096, 4, file=tmp_path / "a.bin")
    assert pickle.loads(pickle.dumps(path_arena)).path == str(tmp_path / "a.bin")
    path_arena.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(path_arena)


def test_shared_arena_open_checks_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        SharedArena.open(tmp_path / "missing.bin", 4096, 4)
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * PAGE)
    with pytest.raises(ValueError, match="another layout, or the file was truncated"):
        SharedArena.open(small, 4096, 4)
    assert small.stat().st_size == PAGE   # neither grown nor cleared
    with pytest.raises(TypeError):
        SharedArena.open("memfd", 4096, 4)
    with pytest.raises(ValueError, match="needs a file"):
        SharedArena(4096, 4, file=None)
    with pytest.raises(TypeError, match="always shared"):
        SharedArena(4096, 4, shared=False)


def test_shared_arena_open_by_fd_sees_the_same_memory():
    with SharedArena(4096, 4) as first, SharedArena.open(first.fd, **first.layout()) as second:
        assert first.arena.address != second.arena.address
        memoryview(first.alloc(100, slot=1))[:5] = b"hello"
        assert bytes(memoryview(second.attach(1, 100))[:5]) == b"hello"
        assert _guards_of(second.arena) == _expected_guards(second.arena)


# ---------------------------------------------------------------------------
# Truncation

def test_truncating_the_file_under_a_live_arena(tmp_path):
    path = tmp_path / "arena.bin"
    arena = guardalloc.Arena(4096, 8, file=str(path))
    buf = arena.alloc(100)
    os.truncate(path, PAGE)
    with pytest.raises(BackingFileError, match="truncated to 4096 bytes") as info:
        arena.alloc(100)
    assert info.value.size == PAGE and info.value.needed == arena.size
    with pytest.raises(BackingFileError):
        buf.free()
    with pytest.raises(BackingFileError):
        arena.free(buf.address)
    # The guards stay where they were...
    assert _guards_of(arena) == _expected_guards(arena)
    # ...and nothing past the end of the file counts as readable.
    readable = readable_ranges()
    assert not any(arena.address <= r.start < arena.address + arena.size for r in readable)
    # Growing the file back makes the arena usable again; the data is gone,
    # and so is the slack pattern after the old buffer, which free() notices.
    os.truncate(path, arena.size)
    assert bytes(arena.alloc(100)) == bytes(100)
    with pytest.raises(CorruptionError, match="12 slack byte"):
        buf.free()
    arena.close()


def test_touching_a_truncated_slot_raises_sigbus_not_a_hang(child, tmp_path):
    result = child(
        """
        import ctypes, os, sys
        import guardalloc
        arena = guardalloc.Arena(4096, 4, file=sys.argv[1])
        buf = arena.alloc(100)
        os.truncate(sys.argv[1], 0)
        print("truncated", flush=True)
        ctypes.memset(buf.address, 0, 1)
        """,
        str(tmp_path / "arena.bin"),
    )
    assert result.stdout == "truncated\n"
    assert result.returncode == -signal.SIGBUS


def test_memfd_arena_cannot_be_truncated():
    with guardalloc.Arena(4096, 4, file="memfd") as arena:
        with pytest.raises(PermissionError):
            os.ftruncate(arena.fd, 0)
        os.ftruncate(arena.fd, arena.size + PAGE)   # growing is fine
        assert len(arena.alloc(100)) == 100


# ---------------------------------------------------------------------------
# mlock

def _skip_without_mlock(result):
    # Without CAP_IPC_LOCK, RLIMIT_MEMLOCK (often 8 MB) is smaller than an
    # interpreter: the environment cannot lock it, nothing to test.
    if result.returncode == 1 and "mlockall refused" in result.stderr:
        pytest.skip(result.stderr.strip().splitlines()[-1] + " (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)")


def test_mlockall_process(child):
    result = child(
        """
        import ctypes, warnings
        import guardalloc
        from guardalloc.errors import GuardInstallError
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(3) != 0:                              # MCL_CURRENT | MCL_FUTURE
            raise SystemExit(f"mlockall refused: errno {ctypes.get_errno()}")
        print("support", guardalloc.support().anonymous, guardalloc.support().file_shared, flush=True)
        for file in (None, "memfd"):
            try:
                guardalloc.Arena(4096, 4, backend="madvise", file=file)
            except GuardInstallError as exc:
                print("madvise", exc.errno, "mlocked memory" in str(exc), flush=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                arena = guardalloc.Arena(4096, 4, file=file)
            print("auto", arena.backend, len(caught), "mlocked memory" in str(caught[0].message), flush=True)
        print("batching refused", guardalloc.arena.batching_refused(), flush=True)
        libc.munlockall()
        batched = guardalloc.Arena(4096, 4, backend="madvise")
        print("after munlockall", batched.stats()["guard_syscalls"], flush=True)
        buf = arena.alloc(100, slot=0)
        ctypes.memset(arena.slot_address(0) + arena.slot_size, 0, 1)   # its mprotect guard
        """
    )
    _skip_without_mlock(result)
    assert result.stdout.splitlines() == [
        "support True True",
        "madvise 22 True", "auto mprotect 1 True",
        "madvise 22 True", "auto mprotect 1 True",
        "batching refused False",
        "after munlockall 1",
    ], result.stderr
    assert result.returncode == -signal.SIGSEGV


def test_uaf_guard_on_memory_mlocked_after_the_arena(child):
    result = child(
        """
        import ctypes
        import guardalloc
        from guardalloc.maps import guard_pages
        libc = ctypes.CDLL(None, use_errno=True)
        arena = guardalloc.Arena(4096, 4, uaf=True)
        buf = arena.alloc(100)
        if libc.mlockall(1) != 0:              # MCL_CURRENT: the arena is locked now
            raise SystemExit(f"mlockall refused: errno {ctypes.get_errno()}")
        try:
            buf.free()
        except guardalloc.GuardInstallError as exc:
            print(exc.errno, "was freed" in str(exc), "mlocked" in str(exc), flush=True)
        runs = guard_pages(arena.address, arena.address + arena.size)
        print(len(runs), buf.freed, arena.stats()["free"], flush=True)
        """
    )
    _skip_without_mlock(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["22 True True", "5 True 4"]


# ---------------------------------------------------------------------------
# Read-only files

def test_read_only_fd(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x07" * (PAGE + 4 * 2 * PAGE))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(PermissionError, match="open read-only"):
            guardalloc.Arena(4096, 4, file=fd)
        with pytest.raises(ValueError, match="cannot be grown"):
            guardalloc.Arena(4096, 100, file=fd, shared=False)
        # A private copy-on-write arena over a read-only file: guarded,
        # readable, and writes stay in this process.
        with guardalloc.Arena(4096, 4, file=fd, shared=False, align="left") as arena:
            assert not arena.shared
            assert _guards_of(arena) == _expected_guards(arena)
            buf = arena.alloc(16, zero=False)
            assert bytes(buf) == b"\x07" * 16
            memoryview(buf)[:] = b"private copy....".ljust(16)
        assert path.read_bytes() == b"\x07" * (PAGE + 4 * 2 * PAGE)
    finally:
        os.close(fd)


def test_read_only_path_for_an_unprivileged_user(child):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody")   # as a user, see test_read_only_fd
    # pytest's tmp_path is private to root; nobody needs a directory it may enter.
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        path = Path(directory) / "data.bin"
        path.write_bytes(b"\x05" * (PAGE + 2 * 2 * PAGE))
        path.chmod(0o444)
        result = _read_only_child(child, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["shared 13", "private madvise b'\\x05\\x05\\x05\\x05'"]


def _read_only_child(child, path):
    return child(
        """
        import os, sys
        import guardalloc
        os.setgid(65534); os.setuid(65534)     # nobody: may read the file, not write it
        try:
            guardalloc.Arena(4096, 2, file=sys.argv[1])
        except PermissionError as exc:
            print("shared", exc.errno, flush=True)
        arena = guardalloc.Arena(4096, 2, file=sys.argv[1], shared=False, align="left")
        print("private", arena.backend, bytes(arena.alloc(4, zero=False)), flush=True)
        """,
        str(path),
    )


# ---------------------------------------------------------------------------
# Kernels without guard pages on files

@pytest.fixture
def no_file_guards(monkeypatch):
    fake = dataclasses.replace(guardalloc.support(), file_shared=False)
    monkeypatch.setattr(backing_module, "support", lambda refresh=False: fake)
    monkeypatch.setattr(arena_module, "support", lambda refresh=False: fake)


def test_no_file_guard_support_auto_falls_back_with_a_warning(no_file_guards):
    with pytest.warns(RuntimeWarning, match="file-backed mappings .*falling back to mprotect"):
        arena = guardalloc.Arena(4096, 4, file="memfd")
    assert arena.backend == "mprotect"
    assert len(_guards_of(arena)) == 0                 # PROT_NONE VMAs instead
    arena.close()
    assert guardalloc.Arena(4096, 4).backend == "madvise"   # anonymous arenas are unaffected


def test_no_file_guard_support_madvise_raises(no_file_guards):
    with pytest.raises(GuardUnsupportedError, match="cannot guard file-backed mappings"):
        guardalloc.Arena(4096, 4, file="memfd", backend="madvise")
    with pytest.raises(GuardUnsupportedError):
        SharedArena(4096, 4, backend="madvise")


def test_backing_must_be_a_regular_file(tmp_path):
    with pytest.raises(ValueError, match="not a regular file"):
        guardalloc.Arena(4096, 2, file="/dev/zero")
    with pytest.raises(IsADirectoryError):
        guardalloc.Arena(4096, 2, file=tmp_path)
    with pytest.raises(TypeError, match="file must be"):
        guardalloc.Arena(4096, 2, file=1.5)
    with pytest.raises(ValueError, match="0 or more"):
        guardalloc.Arena(4096, 2, file=-1)

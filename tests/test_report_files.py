"""Report files no other user can redirect or read (src/guardalloc/_c/report_file.c):
the C functions every JSON report goes through, called here through ctypes
on planted symbolic links, FIFOs, directories, hard links, other users' files
and files others may read. The front ends' own tests (native library,
set_report_path, pytest plugin, launcher) are in tests/test_report_paths.py."""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardalloc

(OK, SYMLINK, NOT_REGULAR, NOT_OWNED, LINKED, OPEN_TO_OTHERS, TOO_LONG, CANNOT_OPEN, NO_DIRECTORY,
 DIR_READ_ONLY) = range(10)
NOBODY = 65534


def _core() -> ctypes.CDLL:
    package = os.path.dirname(os.path.abspath(guardalloc.__file__))
    found = sorted(glob.glob(os.path.join(package, "**", "libguardalloc_core*.so"), recursive=True))
    assert found, f"libguardalloc_core*.so is not under {package}"
    lib = ctypes.CDLL(found[0])
    lib.ga_report_file_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                        ctypes.POINTER(ctypes.c_int)]
    lib.ga_report_path_check.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.ga_report_path_expand.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.POINTER(ctypes.c_int)]
    lib.ga_report_file_message.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                           ctypes.c_int, ctypes.c_int]
    lib.ga_report_file_message.restype = ctypes.c_size_t
    return lib


CORE = _core()


def open_report(path, per_process: bool = False) -> tuple[int, int, int]:
    """(fd or -1, why, the failed open's errno) of ga_report_file_open."""
    why, err = ctypes.c_int(-1), ctypes.c_int(-1)
    fd = CORE.ga_report_file_open(os.fsencode(path), int(per_process), ctypes.byref(why),
                                  ctypes.byref(err))
    return fd, why.value, err.value


def check(template) -> int:
    out = ctypes.create_string_buffer(4096)
    return CORE.ga_report_path_check(os.fsencode(template), out, len(out))


def message(path, why: int, err: int = 0) -> str:
    out = ctypes.create_string_buffer(2048)
    n = CORE.ga_report_file_message(out, len(out), os.fsencode(path), why, err)
    return out.raw[:n].decode()


def _refused(path, why: int, per_process: bool = False) -> None:
    fd, got, _ = open_report(path, per_process)
    assert (fd, got) == (-1, why)
    assert check(path) == why


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.parametrize("per_process", [False, True])
def test_a_new_file_is_created_0600(tmp_path, umask0, per_process):
    path = tmp_path / "r.json"
    assert check(path) == OK
    fd, why, _ = open_report(path, per_process)
    assert why == OK and fd >= 0
    try:
        os.write(fd, b"one\n")
    finally:
        os.close(fd)
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()


@pytest.mark.parametrize("per_process", [False, True])
def test_an_own_private_file_is_appended_to(tmp_path, per_process):
    """A shared log, or a per-process file an earlier process with the same
    pid left: ours, 0600, one link -- used, and appended to."""
    path = tmp_path / "r.json"
    path.write_text("before\n")
    path.chmod(0o600)
    assert check(path) == OK
    fd, why, _ = open_report(path, per_process)
    assert why == OK
    os.write(fd, b"after\n")
    os.close(fd)
    assert path.read_text() == "before\nafter\n"


@pytest.mark.parametrize("per_process", [False, True])
@pytest.mark.parametrize("target_exists", [True, False])
def test_a_planted_symlink_is_not_followed(tmp_path, per_process, target_exists):
    target = tmp_path / "victim"
    if target_exists:
        target.write_text("victim's\n")
        target.chmod(0o600)
    link = tmp_path / "r.json"
    link.symlink_to(target)
    _refused(link, SYMLINK, per_process)
    if target_exists:
        assert target.read_text() == "victim's\n"
    else:
        assert not target.exists()
    assert message(link, SYMLINK) == f"guardalloc: no JSON reports to {link}: it is a symbolic link"


@pytest.mark.parametrize("per_process", [False, True])
def test_a_planted_fifo_does_not_block(tmp_path, per_process):
    """Opening a FIFO for writing would wait for a reader: refused at once."""
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo, 0o600)
    _refused(fifo, NOT_REGULAR, per_process)


@pytest.mark.parametrize("per_process", [False, True])
def test_a_fifo_with_a_reader_is_refused(tmp_path, per_process):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _refused(fifo, NOT_REGULAR, per_process)
        assert os.read(reader, 1) == b""   # nothing was written (and no writer is left)
    finally:
        os.close(reader)


@pytest.mark.parametrize("per_process", [False, True])
def test_a_directory_is_refused(tmp_path, per_process):
    directory = tmp_path / "r.json"
    directory.mkdir(mode=0o700)
    _refused(directory, NOT_REGULAR, per_process)


@pytest.mark.parametrize("per_process", [False, True])
def test_a_hard_link_is_refused(tmp_path, per_process):
    """A second name for one of our files (its content would be appended to)."""
    original = tmp_path / "original"
    original.write_text("mine\n")
    original.chmod(0o600)
    linked = tmp_path / "r.json"
    os.link(original, linked)
    _refused(linked, LINKED, per_process)
    assert original.read_text() == "mine\n"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610])
@pytest.mark.parametrize("per_process", [False, True])
def test_a_file_others_may_read_or_write_is_refused(tmp_path, mode, per_process):
    path = tmp_path / "r.json"
    path.write_text("")
    path.chmod(mode)
    _refused(path, OPEN_TO_OTHERS, per_process)
    assert path.read_text() == ""
    assert message(path, OPEN_TO_OTHERS).endswith("group or other users may read or write it (chmod 600 it)")


@given(mode=st.integers(0, 0o777))
@settings(max_examples=60, deadline=None)
def test_an_own_file_is_used_exactly_when_only_we_may_use_it(tmp_path_factory, mode):
    path = tmp_path_factory.mktemp("mode") / "r.json"
    path.write_text("")
    os.chmod(path, mode | 0o200)   # writable by us: a 0400 file fails for another reason
    fd, why, _ = open_report(path)
    if fd >= 0:
        os.close(fd)
    private = (mode & 0o077) == 0
    assert (fd >= 0) == private and why == (OK if private else OPEN_TO_OTHERS)
    assert check(path) == why


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
@pytest.mark.parametrize("per_process", [False, True])
def test_another_users_file_is_refused(tmp_path, per_process):
    """Root could open it; a report still does not go into a file another
    user owns (and may read, or have linked somewhere)."""
    path = tmp_path / "r.json"
    path.write_text("")
    path.chmod(0o600)
    os.chown(path, NOBODY, NOBODY)
    _refused(path, NOT_OWNED, per_process)
    assert path.read_text() == ""


def test_an_unopenable_path_says_why(tmp_path):
    fd, why, err = open_report(tmp_path / "missing" / "r.json")
    assert (fd, why, err) == (-1, CANNOT_OPEN, errno.ENOENT)
    # Checked at start (issue 21): a report could never create the file.
    assert check(tmp_path / "missing" / "r.json") == NO_DIRECTORY
    assert check(tmp_path / "r.json") == OK   # absent, and its directory takes it
    assert message("/x", NO_DIRECTORY, 0).endswith("/x: its directory does not exist")
    assert message("/x", CANNOT_OPEN, errno.ENOENT).endswith("/x: cannot open it: its directory does not exist")
    assert message("/x", CANNOT_OPEN, errno.EBADMSG).endswith(f"/x: cannot open it (errno {errno.EBADMSG})")


def test_errno_is_left_alone(tmp_path):
    """The fault handler calls it: the interrupted code's errno survives."""
    lib = ctypes.CDLL(CORE._name, use_errno=True)
    why, err = ctypes.c_int(), ctypes.c_int()
    ctypes.set_errno(errno.EINTR)
    fd = lib.ga_report_file_open(os.fsencode(tmp_path / "no" / "r.json"), 0, ctypes.byref(why),
                                 ctypes.byref(err))
    assert (fd, why.value, err.value) == (-1, CANNOT_OPEN, errno.ENOENT)
    assert ctypes.get_errno() == errno.EINTR


def test_expand():
    out = ctypes.create_string_buffer(64)
    per = ctypes.c_int(-1)
    assert CORE.ga_report_path_expand(b"/t/r.%p.%%p.json", out, len(out), ctypes.byref(per)) == 0
    assert out.value == f"/t/r.{os.getpid()}.%p.json".encode() and per.value == 1
    assert CORE.ga_report_path_expand(b"/t/r.%%p", out, len(out), ctypes.byref(per)) == 0
    assert out.value == b"/t/r.%p" and per.value == 0
    small = ctypes.create_string_buffer(5)
    assert CORE.ga_report_path_expand(b"/t/r.json", small, len(small), ctypes.byref(per)) == -1
    assert CORE.ga_report_path_expand(b"/t/r", small, len(small), ctypes.byref(per)) == 0
    assert check("/" + "a/" * 2100) == TOO_LONG   # past check()'s 4096-byte buffer

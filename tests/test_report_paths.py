"""Every front end's report path, against a planted symbolic link, a file
other users may read, another user's file -- and the mode of what it creates:
``guardalloc.set_report_path`` (and ``GUARDALLOC_OPTIONS=log_path`` at
import), the launcher (``run --native --log-path``), and the pytest plugin's
report directory. The native library's own ``log_path`` is in
tests/native/test_native_report_files.py; the C rules themselves in
tests/test_report_files.py."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import warnings

import pytest

import guardalloc

NOBODY = 65534
# A Python program faulting in a guarded Arena slot; the report path is its argv[1].
ARENA_OVERFLOW = """
    import ctypes, sys, guardalloc
    guardalloc.set_report_path(sys.argv[1])
    arena = guardalloc.Arena(4096, 2, alignment=1)
    buf = arena.alloc(4000)
    ctypes.memset(buf.address + 4000, 0, 1)
"""
# The same, after planting a symbolic link at the file its %p template names.
ARENA_OVERFLOW_PLANTED = """
    import ctypes, os, sys, guardalloc
    guardalloc.set_report_path(sys.argv[1])
    os.symlink(sys.argv[2], sys.argv[1].replace("%p", str(os.getpid())))
    arena = guardalloc.Arena(4096, 2, alignment=1)
    buf = arena.alloc(4000)
    ctypes.memset(buf.address + 4000, 0, 1)
"""
# A malloc() block overflowing into its guard under the native library.
MALLOC_OVERFLOW = """import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(100)
ctypes.memset(p + 112, 0, 1)
"""


def _victim(tmp_path, mode: int = 0o600):
    victim = tmp_path / "victim"
    victim.write_text("victim's\n")
    victim.chmod(mode)
    return victim


def _no_reports_line(path, reason: str) -> str:
    return f"guardalloc: no JSON reports to {path}: {reason}"


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- set_report_path ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["r.json", "r.%p.json"])
def test_set_report_path_creates_a_private_file(child, tmp_path, umask0, name):
    result = child(ARENA_OVERFLOW, str(tmp_path / name))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    (path,) = tmp_path.iterdir()
    assert _mode(path) == 0o600
    assert json.loads(path.read_text())["kind"] == "heap-buffer-overflow"
    assert "no JSON reports" not in result.stderr


def test_set_report_path_warns_at_a_planted_symlink_and_does_not_follow_it(child, tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "r.json"
    link.symlink_to(victim)
    with pytest.warns(RuntimeWarning) as caught:
        before = guardalloc.get_report_path()
        try:
            guardalloc.set_report_path(link)
        finally:
            guardalloc.set_report_path(before)
    assert [str(w.message) for w in caught] == [_no_reports_line(link, "it is a symbolic link")]
    result = child(ARENA_OVERFLOW, str(link))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert victim.read_text() == "victim's\n"
    # At start (the warning), and when the report would have been written.
    assert result.stderr.count(_no_reports_line(link, "it is a symbolic link")) == 2, result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr


def test_a_symlink_planted_after_the_start_is_not_followed(child, tmp_path):
    """The per-process file's name, linked once the path is set: the check
    when the report is written (O_EXCL, O_NOFOLLOW) catches it."""
    victim = _victim(tmp_path)
    result = child(ARENA_OVERFLOW_PLANTED, str(tmp_path / "r.%p.json"), str(victim))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert victim.read_text() == "victim's\n"
    assert "it is a symbolic link" in result.stderr
    assert "RuntimeWarning" not in result.stderr   # nothing was there at start


def test_set_report_path_refuses_a_file_others_may_read(child, tmp_path):
    shared = _victim(tmp_path, 0o644)
    result = child(ARENA_OVERFLOW, str(shared))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert shared.read_text() == "victim's\n"
    line = _no_reports_line(shared, "group or other users may read or write it (chmod 600 it)")
    assert "RuntimeWarning: " + line in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_set_report_path_refuses_another_users_file(child, tmp_path):
    theirs = _victim(tmp_path)
    os.chown(theirs, NOBODY, NOBODY)
    result = child(ARENA_OVERFLOW, str(theirs))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert theirs.read_text() == "victim's\n"
    assert "RuntimeWarning: " + _no_reports_line(theirs, "another user owns it") in result.stderr


def test_set_report_path_appends_to_an_own_private_file_silently(child, tmp_path):
    """The twin: a shared log of ours that only we may use."""
    log = _victim(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = guardalloc.get_report_path()
        try:
            guardalloc.set_report_path(log)
        finally:
            guardalloc.set_report_path(before)
    result = child(ARENA_OVERFLOW, str(log))
    assert result.returncode == -signal.SIGSEGV, result.stderr
    first, second = log.read_text().splitlines()
    assert first == "victim's" and json.loads(second)["kind"] == "heap-buffer-overflow"
    assert "no JSON reports" not in result.stderr and "Warning" not in result.stderr


def test_log_path_from_the_environment_is_checked_at_import(child, tmp_path):
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "elsewhere")
    result = child("import guardalloc", env={"GUARDALLOC_OPTIONS": f"log_path={link}"})
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning: " + _no_reports_line(link, "it is a symbolic link") in result.stderr
    assert not (tmp_path / "elsewhere").exists()


# -- the launcher: run --native --log-path ---------------------------------------------------

def _run_native(tmp_path, log_path, umask: int = 0o022) -> subprocess.CompletedProcess:
    script = tmp_path / "prog.py"
    script.write_text(MALLOC_OVERFLOW)
    env = {k: v for k, v in os.environ.items() if k not in ("GUARDALLOC_OPTIONS", "PYTHONFAULTHANDLER")}
    return subprocess.run([sys.executable, "-m", "guardalloc", "run", "--native", "1",
                           "--log-path", str(log_path), str(script)],
                          env=env, capture_output=True, text=True, timeout=120, umask=umask)


@pytest.mark.parametrize("name", ["r.json", "r.%p.json"])
def test_launcher_creates_a_private_file(tmp_path, name):
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _run_native(tmp_path, reports / name, umask=0)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    (path,) = reports.iterdir()
    assert _mode(path) == 0o600
    assert json.loads(path.read_text().splitlines()[0])["kind"] == "heap-buffer-overflow"


def test_launcher_does_not_follow_a_planted_symlink(tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "r.json"
    link.symlink_to(victim)
    proc = _run_native(tmp_path, link)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert victim.read_text() == "victim's\n"
    line = _no_reports_line(link, "it is a symbolic link")
    assert proc.stderr.startswith(line + "\n"), proc.stderr   # at start, before the program runs
    assert "heap-buffer-overflow WRITE" in proc.stderr


# -- the pytest plugin's report directory -----------------------------------------------------

OVERFLOW_TEST = """
    import ctypes

    def test_overflow(guard_pool):
        buf = guard_pool.alloc(4096)
        ctypes.memset(buf.address, 0, 4097)
"""


def _plugin(pytester, *args: str):
    pytester.makepyfile(test_one=OVERFLOW_TEST)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-forked", *args)


def test_plugin_creates_its_report_dir_0700_with_private_reports(pytester, umask0):
    reports = pytester.path / "made" / "reports"
    result = _plugin(pytester, f"--guardalloc-report-dir={reports}")
    result.assert_outcomes(failed=1)
    assert _mode(reports) == 0o700
    (path,) = reports.iterdir()
    assert _mode(path) == 0o600


def test_plugin_uses_an_own_private_report_dir(pytester):
    """The twin: a directory of ours that only we may write to."""
    reports = pytester.path / "reports"
    reports.mkdir(mode=0o755)
    reports.chmod(0o755)
    result = _plugin(pytester, f"--guardalloc-report-dir={reports}")
    result.assert_outcomes(failed=1)
    assert len(list(reports.iterdir())) == 1


@pytest.mark.parametrize("case", ["symlink", "group-writable", "world-writable", "a file"])
def test_plugin_refuses_a_report_dir_others_control(pytester, case):
    target = pytester.path / "real"
    target.mkdir(mode=0o700)
    given = pytester.path / "reports"
    if case == "symlink":
        given.symlink_to(target)
        problem = "is a symbolic link"
    elif case == "a file":
        given.write_text("")
        problem = "is not a directory"
    else:
        given.mkdir()
        given.chmod(0o770 if case == "group-writable" else 0o1777)
        problem = (f"may be written to by group or other users (mode "
                   f"{'0770' if case == 'group-writable' else '1777'}; chmod go-w it)")
    result = _plugin(pytester, f"--guardalloc-report-dir={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--guardalloc-report-dir: {given} {problem}*"])
    assert list(target.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_plugin_refuses_another_users_report_dir(pytester):
    given = pytester.path / "reports"
    given.mkdir(mode=0o700)
    os.chown(given, NOBODY, NOBODY)
    result = _plugin(pytester, f"--guardalloc-report-dir={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{given} is owned by another user (uid {NOBODY})*"])
    assert list(given.iterdir()) == []


def test_plugin_native_refuses_a_symlinked_report_dir_before_reexecuting(pytester):
    target = pytester.path / "real"
    target.mkdir(mode=0o700)
    given = pytester.path / "reports"
    given.symlink_to(target)
    pytester.makepyfile(test_fine="def test_fine(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=1",
                                           f"--guardalloc-report-dir={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--guardalloc-report-dir: {given} is a symbolic link*"])

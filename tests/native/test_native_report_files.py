"""The native library's log_path against a planted symbolic link, a file other
users may read and another user's file, and the mode of the files it creates
(src/guardalloc/_c/report_file.c). Its text reports go to stderr, a file
descriptor the caller gives, not a path."""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest

from native_support import CORPUS, build, python_argv, run_preloaded  # noqa: F401 (build: a fixture)

OVERFLOW = os.path.join(CORPUS, "overflow_write.c")
OPTIONS = "sample_rate=1:alignment=1:log_path={}"
NOBODY = 65534
# Plants a symbolic link at the file its %p log_path names (after the
# library's check at start), then overflows a malloc() block into its guard.
PLANT_THEN_OVERFLOW = """import ctypes, os, sys
os.symlink(sys.argv[2], sys.argv[1].replace("%p", str(os.getpid())))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(100)
ctypes.memset(p + 112, 0, 1)   # 16-byte alignment: the block ends at 112
"""


def _line(path, reason: str) -> str:
    return f"guardalloc: no JSON reports to {path}: {reason}\n"


def _victim(tmp_path, mode: int = 0o600):
    victim = tmp_path / "victim"
    victim.write_text("victim's\n")
    victim.chmod(mode)
    return victim


@pytest.mark.parametrize("name", ["r.json", "r.%p.json"])
def test_log_path_files_are_created_0600(build, tmp_path, name):
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = run_preloaded([build(OVERFLOW)], OPTIONS.format(reports / name), umask=0)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    (path,) = reports.iterdir()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["kind"] == "heap-buffer-overflow"
    assert "no JSON reports" not in proc.stderr


def test_a_planted_symlink_is_reported_at_start_and_not_followed(build, tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "r.json"
    link.symlink_to(victim)
    proc = run_preloaded([build(OVERFLOW)], OPTIONS.format(link))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert victim.read_text() == "victim's\n"
    line = _line(link, "it is a symbolic link")
    assert proc.stderr.startswith(line), proc.stderr          # at start
    assert proc.stderr.count(line) == 2, proc.stderr           # and when the report is written


def test_a_symlink_planted_at_the_pid_file_is_not_followed(tmp_path):
    victim = _victim(tmp_path)
    script = tmp_path / "plant.py"
    script.write_text(PLANT_THEN_OVERFLOW)
    proc = run_preloaded(python_argv(str(script), str(tmp_path / "r.%p.json"), str(victim)),
                         f"sample_rate=1:log_path={tmp_path / 'r.%p.json'}")
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert victim.read_text() == "victim's\n"
    assert "it is a symbolic link\n" in proc.stderr
    assert "heap-buffer-overflow WRITE" in proc.stderr


def test_a_file_others_may_read_is_left_alone(build, tmp_path):
    shared = _victim(tmp_path, 0o644)
    proc = run_preloaded([build(OVERFLOW)], OPTIONS.format(shared))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert shared.read_text() == "victim's\n"
    assert proc.stderr.startswith(_line(shared, "group or other users may read or write it (chmod 600 it)"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_file_is_left_alone(build, tmp_path):
    theirs = _victim(tmp_path)
    os.chown(theirs, NOBODY, NOBODY)
    proc = run_preloaded([build(OVERFLOW)], OPTIONS.format(theirs))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert theirs.read_text() == "victim's\n"
    assert proc.stderr.startswith(_line(theirs, "another user owns it"))


def test_an_own_private_log_is_appended_to_silently(build, tmp_path):
    """The twin: a shared log of ours that only we may use."""
    log = _victim(tmp_path)
    proc = run_preloaded([build(OVERFLOW)], OPTIONS.format(log))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    first, second = log.read_text().splitlines()
    assert first == "victim's" and json.loads(second)["kind"] == "heap-buffer-overflow"
    assert "no JSON reports" not in proc.stderr

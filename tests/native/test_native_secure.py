"""The native library in secure-execution mode, for real: a setuid-root
program with the library in /etc/ld.so.preload, run by an unprivileged user
with a hostile GUARDALLOC_OPTIONS.

Nothing on the machine changes: tests/native/setuid/setuid_rig.sh runs in a
private mount namespace (``unshare --mount``), where a tmpfs holds the
libraries and the setuid program and /etc/ld.so.preload is replaced for that
namespace alone; ``setpriv`` drops to uid/gid 65534 before the program runs.
Needs root, unshare and setpriv; skipped with the reason otherwise."""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

import guardalloc
from guardalloc import native
from native_support import build  # noqa: F401 (a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
RIG = os.path.join(HERE, "setuid", "setuid_rig.sh")
PROBE = os.path.join(HERE, "setuid", "probe.c")
NOBODY = 65534
SECURE_LINE = ("guardalloc: secure-execution mode (setuid, setgid or file capabilities): "
               "GUARDALLOC_OPTIONS ignored and removed from the environment; the defaults apply\n")
# Every block guarded byte-exact (the probe's one-byte overflow faults), the
# process kept alive after the fault, the JSON report sent to log_path.
HOSTILE = "sample_rate=1:alignment=1:on_fault=continue:log_path={}"


def _missing() -> str | None:
    """Why the rig cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a mount namespace and a setuid-root program)"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    parent = tempfile.gettempdir()
    while True:   # the unprivileged user must reach the program in the stage
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return f"{parent} is not searchable by other users (the stage lives under it)"
        if parent == os.path.dirname(parent):
            return None
        parent = os.path.dirname(parent)


@pytest.fixture(scope="module")
def rig_run():
    """rig_run(program, options, as_user, *, preload=True, args=(), env=None)
    -> CompletedProcess of ``program`` installed setuid-root and run with
    GUARDALLOC_OPTIONS=options (None: unset) by uid 65534 (as_user) or root,
    in a namespace whose /etc/ld.so.preload names the library (preload)."""
    reason = _missing()
    if reason is not None:
        pytest.skip(f"setuid rig: {reason}")
    library = native.library_path()
    core = glob.glob(os.path.join(os.path.dirname(library), "libguardalloc_core*.so"))
    assert core, "the core library is not beside the malloc library"
    stages = []

    def run(program: str, options: str | None, as_user: bool, *, preload: bool = True,
            args: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
        stage = tempfile.mkdtemp(prefix="guardalloc-setuid-")
        os.chmod(stage, 0o755)
        stages.append(stage)
        base = {k: v for k, v in os.environ.items() if k not in ("GUARDALLOC_OPTIONS", "LD_PRELOAD")}
        command = ["env", *(f"{k}={v}" for k, v in (env or {}).items())]
        if options is not None:
            command.append(f"GUARDALLOC_OPTIONS={options}")
        if as_user:
            command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                       *command]
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", RIG, stage,
                               library if preload else "-", core[0], program, "--", *command,
                               os.path.join(stage, "probe"), *args],
                              env=base, capture_output=True, text=True, timeout=120)
        if proc.returncode == 77 or (proc.returncode != 0 and "unshare:" in proc.stderr):
            pytest.skip(f"setuid rig: {proc.stderr.strip()}")
        return proc

    yield run
    for stage in stages:
        os.rmdir(stage)   # the tmpfs on it went with its namespace


@pytest.fixture(scope="module")
def rig(rig_run, build):  # noqa: F811 (build: a fixture)
    """rig(options, as_user): the probe (setuid/probe.c) under rig_run."""
    probe = build(PROBE)
    return lambda options, as_user: rig_run(probe, options, as_user)


def _root_only_dir(tmp_path) -> str:
    directory = tmp_path / "root-only"
    directory.mkdir(mode=0o700)
    return str(directory)


@pytest.mark.parametrize("target", ["existing", "new"])
def test_setuid_program_ignores_hostile_options(rig, tmp_path, target):
    """An unprivileged user runs a setuid-root program under the system-wide
    library with log_path at a root-only file: nothing is written, the probe
    does not see GUARDALLOC_OPTIONS, and one line on stderr says why."""
    directory = _root_only_dir(tmp_path)
    victim = os.path.join(directory, "victim" if target == "existing" else "created.%p.json")
    if target == "existing":
        with open(victim, "w") as f:
            f.write("root's file\n")
        os.chmod(victim, 0o644)
    proc = rig(HOSTILE.format(victim), as_user=True)
    assert proc.returncode == 0, proc.stderr
    assert f"uid={NOBODY} euid=0 GUARDALLOC_OPTIONS=(unset)\n" in proc.stdout
    assert proc.stderr.count(SECURE_LINE) == 1, proc.stderr
    assert "heap-buffer-overflow" not in proc.stderr   # the defaults: this block is not sampled
    if target == "existing":
        with open(victim) as f:
            assert f.read() == "root's file\n"
    assert os.listdir(directory) == (["victim"] if target == "existing" else [])


def test_setuid_program_run_by_root_honours_options(rig, tmp_path):
    """The twin: root runs the same program (no secure-execution mode) with
    the same options, which then guard the block and write the report --
    the rig does load the library, and the options would have done harm."""
    victim = os.path.join(_root_only_dir(tmp_path), "victim")
    proc = rig(HOSTILE.format(victim), as_user=False)
    assert proc.returncode == 0, proc.stderr
    assert "uid=0 euid=0 GUARDALLOC_OPTIONS=sample_rate=1" in proc.stdout
    assert SECURE_LINE not in proc.stderr
    assert "heap-buffer-overflow WRITE" in proc.stderr
    with open(victim) as f:
        report = json.loads(f.readline())
    assert report["kind"] == "heap-buffer-overflow"


def test_setuid_program_without_options_is_silent(rig):
    """No GUARDALLOC_OPTIONS: nothing is ignored, nothing is said."""
    proc = rig(None, as_user=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"uid={NOBODY} euid=0 GUARDALLOC_OPTIONS=(unset)\ndone\n"
    assert proc.stderr == ""


# The Python front end (guardalloc.faults reads log_path at import) in a
# setuid-root copy of this interpreter, without the library preloaded.
PYTHON_PROBE = ("import os, guardalloc; print(os.geteuid(), os.getuid(), "
                "os.environ.get('GUARDALLOC_OPTIONS'), guardalloc.get_report_path())")


@pytest.mark.parametrize("as_user", [True, False])
def test_setuid_python_ignores_log_path(rig_run, tmp_path, as_user):
    """An unprivileged caller's log_path is not taken (and the variable is
    gone from os.environ); root's own, the twin, is."""
    interpreter = os.path.realpath(sys.executable)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(guardalloc.__file__)))
    victim = os.path.join(_root_only_dir(tmp_path), "victim")
    proc = rig_run(interpreter, f"log_path={victim}", as_user, preload=False,
                   args=("-c", PYTHON_PROBE),
                   env={"PYTHONHOME": sys.base_prefix, "PYTHONPATH": package_parent})
    assert proc.returncode == 0, proc.stderr
    if as_user:
        assert proc.stdout == f"0 {NOBODY} None None\n"
        assert proc.stderr == SECURE_LINE
    else:
        assert proc.stdout == f"0 0 log_path={victim} {victim}\n"
        assert proc.stderr == ""

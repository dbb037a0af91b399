"""``--guardalloc-native``: pytest run again, in a child process, with
guardalloc's malloc library preloaded (LD_PRELOAD) and its options in
``GUARDALLOC_OPTIONS``; the first pytest waits for it and exits as it did."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from guardalloc import faults

from .options import Settings
from .reports import report_directory

# Set in the environment of a pytest re-executed with the native library
# preloaded: its path (so the re-executed session does not exec again).
NATIVE_ENV = "GUARDALLOC_PYTEST_NATIVE"


def native_library_path() -> str:
    """The path of guardalloc's preloadable malloc library.

    Raises:
        pytest.UsageError: this guardalloc has no guardalloc.native module.
    """
    try:
        from guardalloc import native
    except ImportError as exc:
        raise pytest.UsageError(
            "--guardalloc-native needs guardalloc.native (the preloadable malloc library), "
            f"which this guardalloc build lacks: {exc}") from None
    return str(native.library_path())


def library_loaded(path: str) -> bool:
    """Whether the library at path is mapped in this process."""
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(real) for line in maps)


def native_environment(settings: Settings, library: str, report_dir: str | None) -> dict[str, str]:
    """The environment of the re-executed pytest: the library preloaded, its
    options set, its reports (when GUARDALLOC_OPTIONS names no log_path)
    written to report_dir, or to settings.report_dir when that is None."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env[NATIVE_ENV] = library
    options = [f"sample_rate={settings.native}"]
    if settings.uaf:
        options.append("uaf=1")
    if settings.alignment is not None:
        options.append(f"alignment={settings.alignment}")
    current = env.get(faults.OPTIONS_ENV, "")
    directory = report_dir
    if directory is None and settings.report_dir is not None:
        directory = report_directory(settings.report_dir)   # made 0700, or checked
    if directory is not None and not faults.parse_options(current).get("log_path"):
        # Children's reports must land where the session reads them.
        options.append(f"log_path='{os.path.abspath(os.path.join(directory, 'guardalloc.%p.json'))}'")
    env[faults.OPTIONS_ENV] = ":".join(p for p in (current, *options) if p)
    return env


def preloaded() -> bool:
    """Whether this is the re-executed session, with the library loaded.

    Raises:
        pytest.UsageError: the library was to be preloaded but is not loaded.
    """
    library = os.environ.get(NATIVE_ENV)
    if not library:
        return False
    if not library_loaded(library):
        raise pytest.UsageError(
            f"--guardalloc-native: {library} was to be preloaded (LD_PRELOAD) but is not "
            "loaded in this process")
    return True


# Passed on to the re-executed pytest. SIGINT is not: the terminal sends
# Ctrl-C to the whole process group, the re-executed pytest included.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def run_preloaded(config: pytest.Config, settings: Settings, library: str) -> int:
    """Run the same pytest command with library preloaded, wait for it and
    return its exit status; this process dies of the signal that killed it.
    Raises pytest.UsageError for options a Python cannot run under
    (alignment=1).
    The report directory made for it is removed once it has exited, however
    it ended (also when it died before its session started)."""
    from guardalloc.hooks.preload import python_alignment_error
    refused = python_alignment_error(native_environment(settings, library, None)[faults.OPTIONS_ENV])
    if refused is not None:
        raise pytest.UsageError(f"--guardalloc-native: {refused}")
    argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "pytest",  # type: ignore[attr-defined]
            *config.invocation_params.args]
    needs_directory = settings.report_dir is None and not faults.parse_options(
        os.environ.get(faults.OPTIONS_ENV, "")).get("log_path")
    scratch = tempfile.mkdtemp(prefix="guardalloc-reports-") if needs_directory else None   # 0700
    sys.stdout.flush()
    sys.stderr.flush()
    previous: dict[int, Any] = {}
    try:
        child = subprocess.Popen(argv, env=native_environment(settings, library, scratch),
                                 cwd=config.invocation_params.dir)

        def forward(signum: int, frame: Any) -> None:
            if signum != signal.SIGINT:
                child.send_signal(signum)

        for forwarded in (signal.SIGINT, *FORWARDED_SIGNALS):
            previous[forwarded] = signal.signal(forwarded, forward)
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if status < 0:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status

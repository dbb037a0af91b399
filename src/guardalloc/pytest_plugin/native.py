"""``--guardalloc-native``: pytest re-executed with guardalloc's malloc
library preloaded (LD_PRELOAD) and its options in ``GUARDALLOC_OPTIONS``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from guardalloc import faults

from .options import Settings

# Set in the environment of a pytest re-executed with the native library
# preloaded: its path (so the re-executed session does not exec again).
NATIVE_ENV = "GUARDALLOC_PYTEST_NATIVE"
# A report directory the re-executed session should remove at its end.
CLEANUP_ENV = "GUARDALLOC_PYTEST_CLEANUP"


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


def native_environment(settings: Settings, library: str) -> dict[str, str]:
    """The environment of the re-executed pytest: the library preloaded, its options set."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env[NATIVE_ENV] = library
    options = [f"sample_rate={settings.native}"]
    if settings.uaf:
        options.append("uaf=1")
    if settings.alignment is not None:
        options.append(f"alignment={settings.alignment}")
    current = env.get(faults.OPTIONS_ENV, "")
    if "log_path" not in faults.parse_options(current) or not faults.parse_options(current)["log_path"]:
        # Children's reports must land where the session reads them.
        directory = settings.report_dir
        if directory is None:
            directory = tempfile.mkdtemp(prefix="guardalloc-reports-")
            env[CLEANUP_ENV] = directory
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


def reexecute(config: pytest.Config, settings: Settings, library: str) -> None:
    """Replace this process by the same pytest command with library preloaded."""
    argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "pytest",  # type: ignore[attr-defined]
            *config.invocation_params.args]
    env = native_environment(settings, library)
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(sys.executable, argv, env)

"""Shared test helpers: the page size, a guard-page reader, and running code
in a child process that may crash.

Children started with :func:`run_child` have this directory on their path,
so child code imports the same helpers: ``from conftest import is_guard_page``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guardalloc
from guardalloc.maps import guard_pages

PAGE = os.sysconf("SC_PAGE_SIZE")
TESTS_DIR = str(Path(__file__).resolve().parent)

# pytester runs the plugin's tests (tests/test_pytest_plugin*.py).
pytest_plugins = ("pytester",)


def pytest_collection_modifyitems(config, items):
    """Leave out the tests marked ``wheel`` (they build the package from
    scratch: minutes) unless a -m expression names them (``-m wheel``)."""
    if "wheel" in (config.getoption("markexpr") or ""):
        return
    wheel = [item for item in items if item.get_closest_marker("wheel")]
    if wheel:
        config.hook.pytest_deselected(items=wheel)
        items[:] = [item for item in items if not item.get_closest_marker("wheel")]

# The directory that holds the imported guardalloc package (an in-place build
# or site-packages), so that children import the very same build.
PACKAGE_PARENT = str(Path(guardalloc.__file__).resolve().parent.parent)


def guard_flags(start: int, pages: int, pid: int | str = "self") -> list[bool]:
    """For each of ``pages`` pages from ``start``: whether it is a guard page
    (MADV_GUARD_INSTALL), as :func:`guardalloc.maps.guard_pages` finds them."""
    runs = guard_pages(start, start + pages * PAGE, pid)
    return [start + i * PAGE in runs for i in range(pages)]


def is_guard_page(address: int, pid: int | str = "self") -> bool:
    """Whether the page holding ``address`` is a guard page."""
    return address in guard_pages(address, address + 1, pid)


def run_child(code: str, *args: str, env: dict | None = None, timeout: float = 120,
              python_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run dedented ``code`` in a fresh interpreter; return the finished process.

    ``returncode`` is ``-signal.SIGSEGV`` when the child died of a fault.
    """
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PACKAGE_PARENT, TESTS_DIR, child_env.get("PYTHONPATH", "")) if p)
    child_env.pop("PYTHONFAULTHANDLER", None)
    child_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return subprocess.run(
        [sys.executable, *python_args, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, env=child_env, timeout=timeout,
    )


@pytest.fixture
def child():
    """The :func:`run_child` helper as a fixture."""
    return run_child


@pytest.fixture
def root_process():
    """A process of ours (root's), which the user nobody may not read."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody")
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as proc:
        yield proc.pid
        proc.stdin.close()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------
# buffer_source: every kind of guardalloc.Buffer, for the Buffer tests
# (kept in a block of its own: the helpers above are tidied elsewhere).

BUFFER_KINDS = ("arena", "pool", "shared", "file")


class BufferSource:
    """Makes Buffers of one kind: from an Arena, a Pool, a SharedArena
    (memfd) or a file-backed Arena; ``close()`` closes what made them."""

    def __init__(self, kind: str, directory: Path) -> None:
        page = os.sysconf("SC_PAGESIZE")
        self.kind = kind
        if kind == "arena":
            self.maker = guardalloc.Arena(page, 8)
        elif kind == "pool":
            self.maker = guardalloc.Pool(max_bytes=1 << 22)
        elif kind == "shared":
            self.maker = guardalloc.SharedArena(page, 8)
        else:
            self.maker = guardalloc.Arena(page, 8, file=str(directory / "arena.bin"))

    def alloc(self, nbytes: int) -> guardalloc.Buffer:
        return self.maker.alloc(nbytes)

    def close(self) -> None:
        self.maker.close()


@pytest.fixture(params=BUFFER_KINDS)
def buffer_source(request, tmp_path):
    """A :class:`BufferSource` of each kind in turn."""
    source = BufferSource(request.param, tmp_path)
    yield source
    source.close()

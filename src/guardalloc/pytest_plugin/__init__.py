"""The pytest plugin: a whole test suite under guard pages, each fault a failed test.

Registered through the ``pytest11`` entry point and inactive unless asked::

    pytest --guardalloc                        # numpy arrays + sampled PyMem
    pytest --guardalloc --guardalloc-forked    # tests in a forked child
    pytest --guardalloc-numpy --guardalloc-alignment=1 --guardalloc-uaf
    pytest --guardalloc-pymem=100 --guardalloc-report-dir=guardalloc-reports
    pytest --guardalloc-native=1               # the preloaded malloc library

or in the ini file: ``guardalloc = numpy pymem:100 forked``.

With ``--guardalloc-forked`` the tests run in a child forked from the
session (guard pages add no VMAs for fork to copy), one after the other; a
child that dies is replaced by a fresh fork for the next test. A guard fault
then fails that test only -- or errors it, when a fixture faulted in setup or
teardown -- with the fault report and the Python traceback as its failure
text (also in ``--junitxml``), and the terminal summary lists the tests that
faulted. The child runs pytest's whole test protocol and sends every
reporting hook call to the session, which replays them: outcomes, counts and
exit status are the plain run's (subtests, xfail, warnings, reruns). Modules
are imported in a child first as well, so a fault at import fails that
module's collection. Without forking, a fault ends the session as it would
without pytest, and the report names the test (node id and phase) that was
running; under pytest-xdist the controller reports the crashed worker's test
with the fault report.

Fault reports (and the malloc library's reports of a bad free) are also
written as JSON (docs/report-schema.json), one object per report, to ``--guardalloc-report-dir`` (or ``GUARDALLOC_OPTIONS=log_path``).

Tests that use pytest-benchmark's ``benchmark`` fixture run in the session
process even with forking, so that their timings reach pytest-benchmark.
"""

# The package's files, one concern each: options (ini and command line),
# native (pytest run again with the malloc library preloaded), reports (report
# files and their description), ipc (the pipe protocol with forked children,
# the reporting hook calls they send),
# forked (the forked runner), marker (@pytest.mark.guardalloc), plugin (the
# session object and its hooks, xdist crash reports). This module holds the entry points pytest
# calls (pytest11) and the fixtures.

from __future__ import annotations

from typing import Iterator

import pytest

import guardalloc
from guardalloc.cli.run import DEFAULT_PYMEM_RATE

from . import native
from .forked import ChildResult, ForkedRunner, Runner, wants_fork
from .marker import (MARKER_HELP, MARKER_OPTIONS, import_guardalloc_numpy, marker_pymem_rate,
                     marker_settings, switch_pymem, _MarkerScope)
from .native import NATIVE_ENV, native_library_path
from .options import Settings, add_options, settings_from
from .plugin import PLUGIN_NAME, GuardallocPlugin
from .reports import FAULT_PROPERTY, PLUGIN_DIR, describe, expand_log_path, read_reports

__all__ = [
    "DEFAULT_PYMEM_RATE", "FAULT_PROPERTY", "MARKER_OPTIONS", "NATIVE_ENV",
    "PLUGIN_DIR", "PLUGIN_NAME", "ChildResult", "ForkedRunner", "GuardallocPlugin", "Runner",
    "Settings", "describe", "expand_log_path", "guard_pool", "guarded_numpy", "marker_pymem_rate",
    "marker_settings", "native_library_path", "read_reports", "settings_from", "switch_pymem",
    "wants_fork",
]


# -- entry points pytest calls ---------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    settings = settings_from(config)
    if not settings.native or native.preloaded():
        return None
    # Looked up here, in this module: tests replace it with a stand-in library.
    return native.run_preloaded(config, settings, native_library_path())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    settings = settings_from(config)
    if not settings.active:
        return
    plugin = GuardallocPlugin(config, settings)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    plugin.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is not None:
        plugin.stop()
        config.pluginmanager.unregister(plugin)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the fixtures: their arrays get the marker's options too. Also
    # without --guardalloc: a marked test asks for guarding.
    plugin = item.config.pluginmanager.get_plugin(PLUGIN_NAME)
    _MarkerScope.enter(item, plugin.settings if plugin is not None else Settings())


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item):
    try:
        yield
    finally:
        _MarkerScope.exit(item)



# -- fixtures -------------------------------------------------------------------

def _session_settings(request: pytest.FixtureRequest) -> Settings:
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin.settings if plugin is not None else Settings()


@pytest.fixture
def guard_pool(request: pytest.FixtureRequest) -> Iterator[guardalloc.Pool]:
    """A fresh :class:`guardalloc.Pool` for this test, with the session's and
    the test's ``guardalloc`` marker options; closed after the test (left
    open when the test still exports its buffers)."""
    _, options = marker_settings(request.node, _session_settings(request))
    pool = guardalloc.Pool(**options)
    yield pool
    try:
        pool.close()
    except BufferError:
        pass    # a memoryview or array outlives the test; the pool stays mapped


@pytest.fixture
def guarded_numpy(request: pytest.FixtureRequest):
    """numpy arrays made during the test get guarded data (the session's and
    the marker's options); yields the :class:`guardalloc.numpy.Handler`."""
    pytest.importorskip("numpy")
    guarded = import_guardalloc_numpy("the guarded_numpy fixture")
    _, options = marker_settings(request.node, _session_settings(request))
    with guarded.guarded(**options) as handler:
        yield handler

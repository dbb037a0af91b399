"""The pytest plugin's options, ini option, marker and fixtures
(the package guardalloc/pytest_plugin), through pytester in fresh pytest processes.

Fault isolation (--guardalloc-forked), xdist and pytest-benchmark:
test_pytest_plugin_forked.py; --guardalloc-native: test_pytest_plugin_native.py.
"""

from __future__ import annotations

import importlib.util

import pytest

from guardalloc import pytest_plugin

needs_numpy = pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")

# A test file that reports what guarding the session turned on.
STATE_TEST = """
import guardalloc, guardalloc.faults, guardalloc.pymem

def test_state():
    import json, os, sys
    state = {
        "pymem": guardalloc.pymem.state(),
        "pymem_rate": guardalloc.pymem.stats().get("sample_rate") if guardalloc.pymem.state() != "off" else None,
        "tracebacks": guardalloc.get_tracebacks(),
        "test": guardalloc.faults.get_report_test(),
        "numpy": None,
    }
    if "numpy" in sys.modules:
        from guardalloc import numpy as guarded_numpy
        handler = guarded_numpy.installed()
        state["numpy"] = None if handler is None else handler.options
    with open(os.environ["STATE_FILE"], "w") as f:
        json.dump(state, f)
"""


def run_state(pytester, *args, ini=None, numpy=True):
    """Run STATE_TEST with these options; return (result, state dict)."""
    import json

    if ini is not None:
        pytester.makeini(ini)
    pytester.makepyfile(test_state=("import numpy\n" if numpy else "") + STATE_TEST)
    state_file = pytester.path / "state.json"
    pytester._monkeypatch.setenv("STATE_FILE", str(state_file))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    return result, state


def test_inactive_unless_asked(pytester):
    result, state = run_state(pytester, numpy=False)
    result.assert_outcomes(passed=1)
    assert state == {"pymem": "off", "pymem_rate": None, "tracebacks": False, "test": None, "numpy": None}


def test_help_lists_the_options(pytester):
    result = pytester.runpytest_subprocess("--help")
    for option in ("--guardalloc ", "--guardalloc-numpy", "--guardalloc-pymem=RATE",
                   "--guardalloc-native=RATE", "--guardalloc-uaf", "--guardalloc-alignment=N",
                   "--guardalloc-forked", "--guardalloc-tracebacks", "--guardalloc-report-dir=DIR"):
        assert any(option in line for line in result.outlines), option
    assert any(line.strip().startswith("guardalloc (args)") for line in result.outlines)


@needs_numpy
def test_guardalloc_turns_on_numpy_and_sampled_pymem(pytester):
    result, state = run_state(pytester, "--guardalloc")
    result.assert_outcomes(passed=1)
    assert state["pymem"] == "sampling"
    assert state["pymem_rate"] == pytest_plugin.DEFAULT_PYMEM_RATE
    assert _without_hugepages(state["numpy"]) == {"alignment": 16, "fallback": False, "strict": False,
                                                  "native_stacks": True}
    # The running test is named in every fault report.
    assert state["test"] == "test_state.py::test_state"


@needs_numpy
def test_numpy_alone(pytester):
    result, state = run_state(pytester, "--guardalloc-numpy")
    result.assert_outcomes(passed=1)
    assert state["pymem"] == "off" and state["numpy"] is not None


def test_pymem_rate(pytester):
    result, state = run_state(pytester, "--guardalloc-pymem=100", numpy=False)
    result.assert_outcomes(passed=1)
    assert (state["pymem"], state["pymem_rate"], state["numpy"]) == ("sampling", 100, None)


@needs_numpy
def test_pymem_zero_turns_it_off(pytester):
    result, state = run_state(pytester, "--guardalloc", "--guardalloc-pymem=0")
    result.assert_outcomes(passed=1)
    assert state["pymem"] == "off" and state["numpy"] is not None


@needs_numpy
def test_uaf_and_alignment(pytester):
    result, state = run_state(pytester, "--guardalloc-numpy", "--guardalloc-uaf", "--guardalloc-alignment=1")
    result.assert_outcomes(passed=1)
    assert _without_hugepages(state["numpy"]) == {"alignment": 1, "uaf": True, "fallback": False,
                                                  "strict": False, "native_stacks": True}


def test_tracebacks(pytester):
    result, state = run_state(pytester, "--guardalloc-tracebacks", numpy=False)
    result.assert_outcomes(passed=1)
    assert state["tracebacks"] is True


@needs_numpy
@pytest.mark.parametrize("ini", [
    "[pytest]\nguardalloc = numpy pymem:100 uaf alignment:1 tracebacks\n",
    "[tool.pytest.ini_options]\nguardalloc = \"numpy pymem:100 uaf alignment:1 tracebacks\"\n",
], ids=["pytest.ini", "pyproject.toml"])
def test_ini_option(pytester, ini):
    if ini.startswith("[tool."):
        pytester.makepyprojecttoml(ini)
        ini = None
    result, state = run_state(pytester, ini=ini)
    result.assert_outcomes(passed=1)
    assert state["pymem"] == "sampling" and state["pymem_rate"] == 100
    assert _without_hugepages(state["numpy"]) == {"alignment": 1, "uaf": True, "fallback": False,
                                                  "strict": False, "native_stacks": True}
    assert state["tracebacks"] is True


@needs_numpy
def test_command_line_overrides_ini(pytester):
    result, state = run_state(pytester, "--guardalloc-pymem=7", ini="[pytest]\nguardalloc = default\n")
    result.assert_outcomes(passed=1)
    assert state["pymem_rate"] == 7 and state["numpy"] is not None


@pytest.mark.parametrize("args, ini, message", [
    (["--guardalloc-pymem=often"], None, "--guardalloc-pymem: not an integer: 'often'"),
    (["--guardalloc-pymem=-1"], None, "--guardalloc-pymem: must be 0 (off) or more, not -1"),
    (["--guardalloc-alignment=8"], None, "--guardalloc-alignment: alignment must be 1 (byte-exact) or a power of two"),
    ([], "[pytest]\nguardalloc = numpy sometimes\n", "ini option guardalloc: 'sometimes': unknown"),
    ([], "[pytest]\nguardalloc = uaf:1\n", "ini option guardalloc: 'uaf:1': uaf takes no value"),
    ([], "[pytest]\nguardalloc = alignment:3\n", "ini option guardalloc: 'alignment:3': alignment must be"),
])
def test_bad_settings_are_usage_errors(pytester, args, ini, message):
    if ini:
        pytester.makeini(ini)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


# -- the marker ---------------------------------------------------------------

MARKER_TESTS = """
import numpy as np
import pytest
import guardalloc.numpy

def ends_at_guard(a):
    return (a.__array_interface__["data"][0] + a.nbytes) % 4096 == 0

@pytest.mark.guardalloc(alignment=1, uaf=True)
def test_byte_exact():
    a = np.zeros(3, dtype=np.uint8)
    assert guardalloc.numpy.is_guarded(a)
    assert ends_at_guard(a)

def test_session_alignment():
    a = np.zeros(3, dtype=np.uint8)
    assert guardalloc.numpy.is_guarded(a) == GUARDED
    if GUARDED:
        assert not ends_at_guard(a)   # 16-byte aligned: 13 slack bytes

@pytest.mark.guardalloc(False)
def test_opted_out():
    assert not guardalloc.numpy.is_guarded(np.zeros(10))

@pytest.mark.guardalloc(colour="red")
def test_bad_option():
    pass
"""


@needs_numpy
@pytest.mark.parametrize("args, guarded", [(["--guardalloc"], True), ([], False)],
                         ids=["--guardalloc", "marker-only"])
def test_marker(pytester, args, guarded):
    pytester.makepyfile(test_marker=MARKER_TESTS.replace("GUARDED", str(guarded)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", *args)
    result.assert_outcomes(passed=3, errors=1)
    assert "@pytest.mark.guardalloc: unknown option(s) ['colour']" in result.stdout.str()


PYMEM_MARKER_TESTS = """
import pytest
import guardalloc.pymem as pymem

kept = []

def rate():
    # The sample rate in force; 0: not sampling (off, or draining: guarded
    # blocks of an earlier setting still live).
    stats = pymem.stats()
    return stats["sample_rate"] if stats["state"] == "sampling" else 0

def sampled():
    stats = pymem.stats()
    return sum(stats[d]["sampled"] for d in pymem.DOMAIN_NAMES)

def test_session_rate_before():
    assert rate() == SESSION

@pytest.mark.guardalloc(pymem=1)
def test_every_allocation():
    assert rate() == 1
    # Objects guarded now outlive the test: they must stay valid after the switch.
    kept.extend(bytearray(b"x" * 200) for _ in range(50))
    assert all(pymem.pool().owns(id(b)) for b in kept)

def test_session_rate_restored():
    assert rate() == SESSION
    assert all(pymem.pool().owns(id(b)) and bytes(b) == b"x" * 200 for b in kept)
    kept.clear()         # freed under the session's setting: routed to the pool by ownership

@pytest.mark.guardalloc(pymem=False)
def test_pymem_off():
    assert rate() == 0
    before = sampled()
    junk = [bytearray(100) for _ in range(20000)]
    assert sampled() == before
    del junk

@pytest.mark.guardalloc(False)
def test_opted_out_of_pymem_too():
    assert rate() == 0

@pytest.mark.guardalloc(pymem=True)
def test_default_rate():
    assert rate() == DEFAULT

def test_session_rate_after():
    assert rate() == SESSION

@pytest.mark.guardalloc(pymem="often")
def test_bad_rate():
    pass

@pytest.mark.guardalloc(pymem=-1)
def test_negative_rate():
    pass
"""


@pytest.mark.parametrize("args, session", [
    (["--guardalloc-pymem=100"], 100),
    (["--guardalloc-pymem=100", "--guardalloc-forked"], 100),
    (["--guardalloc-report-dir=reports"], 0),
    ([], 0),
], ids=["pymem-100", "pymem-100-forked", "active-no-pymem", "inactive"])
def test_marker_switches_pymem_for_one_test(pytester, args, session):
    pytester.makepyfile(test_pymem_marker=PYMEM_MARKER_TESTS.replace("SESSION", repr(session)).replace(
        "DEFAULT", str(pytest_plugin.DEFAULT_PYMEM_RATE)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", *args)
    result.assert_outcomes(passed=7, errors=2)
    out = result.stdout.str()
    assert "pymem must be a sample rate (an int >= 0, 0: off) or True/False, not 'often'" in out
    assert "not -1" in out


def test_marker_is_registered(pytester):
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.guardalloc(enabled=True, *"])


# -- fixtures -------------------------------------------------------------------

FIXTURE_TESTS = """
import pytest
import guardalloc

pools = []

def test_guard_pool(guard_pool):
    assert isinstance(guard_pool, guardalloc.Pool)
    assert (guard_pool.uaf, guard_pool.alignment) == (SESSION_UAF, 16)
    buf = guard_pool.alloc(100)
    assert guard_pool.owns_address(buf.address)
    pools.append(guard_pool)

@pytest.mark.guardalloc(uaf=True, alignment=1)
def test_guard_pool_marker(guard_pool):
    assert (guard_pool.uaf, guard_pool.alignment) == (True, 1)

def test_pool_was_closed():
    assert pools[0].closed

def test_guarded_numpy(guarded_numpy):
    import numpy as np
    import guardalloc.numpy
    assert isinstance(guarded_numpy, guardalloc.numpy.Handler)
    assert guardalloc.numpy.is_guarded(np.arange(10))

@pytest.mark.guardalloc(alignment=1)
def test_guarded_numpy_marker(guarded_numpy):
    assert guarded_numpy.alignment == 1
"""


@needs_numpy
@pytest.mark.parametrize("args, uaf", [([], False), (["--guardalloc-uaf"], True)],
                         ids=["plain", "--guardalloc-uaf"])
def test_fixtures(pytester, args, uaf):
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS.replace("SESSION_UAF", str(uaf)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=5)


# -- units ------------------------------------------------------------------------

def test_read_reports_skips_torn_lines(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"pid": 1, "kind": "use-after-free"}\n{"pid": 2}\n{"pid": 1, "ki\n')
    assert pytest_plugin.read_reports(str(path), 1) == [{"pid": 1, "kind": "use-after-free"}]
    assert len(pytest_plugin.read_reports(str(path))) == 2
    assert pytest_plugin.read_reports(str(tmp_path / "missing"), 1) == []


def test_describe():
    assert pytest_plugin.describe({"kind": "heap-buffer-overflow", "access": "READ", "offset": 8400,
                                   "size": 8000}) == \
        "heap-buffer-overflow READ, 400 bytes past the end of a 8000-byte buffer"
    assert pytest_plugin.describe({"kind": "heap-buffer-underflow", "access": "WRITE", "offset": -1,
                                   "size": 10}) == "heap-buffer-underflow WRITE, 1 bytes before a 10-byte buffer"
    assert pytest_plugin.describe({"kind": "wild-access", "access": "READ", "offset": None,
                                   "size": None}) == "wild-access READ"


def test_describe_a_bad_free():
    """The native heap's reports of a free (access "free", schema_version 2)."""
    describe = pytest_plugin.describe
    assert describe({"kind": "double-free", "access": "free", "offset": 0, "size": 24, "slot": 3}) == \
        "double-free of a 24-byte buffer (slot 3)"
    assert describe({"kind": "invalid-free", "access": "free", "offset": 8, "size": 24, "slot": 0}) == \
        "invalid-free of a pointer 8 bytes inside a 24-byte buffer (slot 0)"
    assert describe({"kind": "invalid-free", "access": "free", "offset": None, "size": None}) == \
        "invalid-free at free, of a pointer in no slot"
    assert describe({"kind": "heap-buffer-overflow", "access": "free", "offset": 13, "size": 13,
                     "slot": 0, "damaged": 3}) == \
        "heap-buffer-overflow found at free: 3 slack byte(s) after a 13-byte buffer overwritten"
    # schema_version 3
    assert describe({"kind": "heap-buffer-underflow", "access": "free", "offset": -8, "size": 32,
                     "slot": 0, "damaged": 2}) == \
        "heap-buffer-underflow found at free: 2 byte(s) before a 32-byte buffer overwritten"
    assert describe({"kind": "alloc-dealloc-mismatch", "access": "free", "offset": 0, "size": 40, "slot": 1,
                     "allocated_by": "operator new []", "freed_by": "free"}) == \
        "alloc-dealloc-mismatch: a 40-byte buffer from operator new [] freed by free"
    assert describe({"kind": "bad-free", "access": "free", "offset": None, "size": None, "freed_by": "free",
                     "memory": {"kind": "stack"}}) == \
        "bad-free by free of stack memory (not from any allocator)"
    # schema_version 5
    pool_block = {"kind": "bad-free", "access": "free", "offset": 0, "size": 64, "freed_by": "free",
                  "memory": {"kind": "guardalloc", "module": "a guardalloc Pool"}}
    assert describe(pool_block) == "bad-free by free of a 64-byte block of a guardalloc Pool, not malloc()'s"
    assert describe({**pool_block, "offset": 8, "freed_by": "realloc"}) == \
        "bad-free by realloc of a pointer into a guardalloc Pool, not malloc()'s"
    assert describe({**pool_block, "memory": {**pool_block["memory"], "slot_state": "quarantined"}}) == \
        "bad-free by free of a block that a guardalloc Pool freed already, not malloc()'s"


def test_ci_recipe_runs_the_plugin_and_uploads_the_reports():
    from pathlib import Path

    recipe = (Path(__file__).resolve().parents[1] / "docs" / "ci" / "github-actions.yml").read_text()
    assert "pytest --guardalloc --guardalloc-forked" in recipe
    assert "--guardalloc-report-dir=guardalloc-reports" in recipe
    assert "actions/upload-artifact" in recipe and "guardalloc-reports/" in recipe


def _without_hugepages(options):
    """Handler options without ``hugepages``, which follows numpy's own
    setting on this machine (guardalloc.numpy.handler's default)."""
    return {name: value for name, value in options.items() if name != "hugepages"}

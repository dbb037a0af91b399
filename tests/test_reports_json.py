"""Machine-readable fault reports (JSON, docs/report-schema.json) written by
the C handler to log_path, and the GUARDALLOC_OPTIONS parser (_c/options.c)
that the native library shares. Faults happen in child processes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import guardalloc
from guardalloc import faults

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report-schema.json").read_text())


def validate(report: dict) -> None:
    import jsonschema
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(report, SCHEMA)


def reports_in(directory: Path) -> list[dict]:
    found = []
    for path in sorted(directory.iterdir()):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


# -- GUARDALLOC_OPTIONS ----------------------------------------------------------

def _some(options: dict, expected: dict) -> dict:
    """The values of options named in expected (a row added later has its own test)."""
    return {name: options[name] for name in expected}


def test_defaults():
    expected = {
        "sample_rate": 5000, "max_bytes": 1 << 30, "alignment": 0, "uaf": False,
        "quarantine": 4096, "on_fault": "abort", "random": False, "align": "right",
        "native_stacks": True, "alloc_dealloc_mismatch": True, "log_path": "", "help": False}
    assert _some(faults.parse_options(), expected) == expected
    assert faults.parse_options("") == faults.parse_options(None)
    assert [row.name for row in faults.option_table()] == list(faults.parse_options())


def test_every_type_parses():
    options = faults.parse_options(
        "sample_rate=1:max_bytes=4G,alignment=1 uaf=yes:quarantine=64:on_fault=continue:"
        "random=on:align=random:native_stacks=off:alloc_dealloc_mismatch=0:"
        "log_path='/var/log/a:b/guardalloc.%p.json':help=1")
    expected = {
        "sample_rate": 1, "max_bytes": 4 << 30, "alignment": 1, "uaf": True, "quarantine": 64,
        "on_fault": "continue", "random": True, "align": "random", "native_stacks": False,
        "alloc_dealloc_mismatch": False, "log_path": "/var/log/a:b/guardalloc.%p.json", "help": True}
    assert _some(options, expected) == expected


@pytest.mark.parametrize("text, value", [("alignment=auto", 0), ("alignment=0", 0), ("alignment=1", 1),
                                         ("alignment=16", 16), ("alignment=4096", 4096)])
def test_alignment_auto_or_power_of_two(text, value):
    assert faults.parse_options(text)["alignment"] == value


@given(st.integers(min_value=0, max_value=1 << 40))
def test_alignment_accepts_exactly_auto_and_powers_of_two(n):
    if n == 0 or (n <= 4096 and n & (n - 1) == 0):
        assert faults.parse_options(f"alignment={n}")["alignment"] == n
    else:
        with pytest.raises(ValueError, match="expected auto"):
            faults.parse_options(f"alignment={n}")


@pytest.mark.parametrize("text, value", [
    ("max_bytes=0", 0), ("max_bytes=123", 123), ("max_bytes=2k", 2048), ("max_bytes=3M", 3 << 20),
    ("max_bytes=1T", 1 << 40), ("max_bytes=16777215T", 16777215 << 40),
])
def test_size_suffixes(text, value):
    assert faults.parse_options(text)["max_bytes"] == value


@pytest.mark.parametrize("text, message", [
    ("colour=red", "GUARDALLOC_OPTIONS: colour: unknown option (known: sample_rate max_bytes"),
    ("uaf", "GUARDALLOC_OPTIONS: uaf: expected name=value"),
    ("uaf=2", "GUARDALLOC_OPTIONS: uaf: expected 0 or 1"),
    ("sample_rate=-1", "GUARDALLOC_OPTIONS: sample_rate: expected a whole number, not '-1'"),
    ("sample_rate=4294967296", "GUARDALLOC_OPTIONS: sample_rate: expected a number between 0 and 4294967295"),
    ("sample_rate=99999999999999999999999", "GUARDALLOC_OPTIONS: sample_rate: expected a whole number"),
    ("max_bytes=4X", "GUARDALLOC_OPTIONS: max_bytes: unknown size suffix in '4X'"),
    ("max_bytes=4GB", "GUARDALLOC_OPTIONS: max_bytes: expected a whole number with an optional K/M/G/T suffix"),
    ("max_bytes=16777216T", "GUARDALLOC_OPTIONS: max_bytes: too large: '16777216T'"),
    ("alignment=24", "GUARDALLOC_OPTIONS: alignment: expected auto (0) or a power of two between 1 and 4096, not 24"),
    ("alignment=8192", "GUARDALLOC_OPTIONS: alignment: expected auto (0) or a power of two between 1 and 4096"),
    ("alignment=Auto", "GUARDALLOC_OPTIONS: alignment: expected a whole number, not 'Auto'"),
    ("on_fault=ignore", "GUARDALLOC_OPTIONS: on_fault: expected one of abort, continue; not 'ignore'"),
    ("align=middle", "GUARDALLOC_OPTIONS: align: expected one of left, right, random; not 'middle'"),
    ("log_path='/tmp/x", "GUARDALLOC_OPTIONS: log_path: unterminated quote"),
    ("log_path=" + "x" * 1024, "GUARDALLOC_OPTIONS: log_path: longer than 1023 bytes"),
    ("uaf=1:alignment=3", "GUARDALLOC_OPTIONS: alignment:"),   # the bad one is named, not the first
    # control characters of a quoted value: '?', so the message stays one line
    ("uaf='1\n\x1b[2J'", "GUARDALLOC_OPTIONS: uaf: expected 0 or 1 (true/false, yes/no, on/off), not '1??[2J'"),
])
def test_bad_options_name_the_option(text, message):
    with pytest.raises(ValueError) as caught:
        faults.parse_options(text)
    assert str(caught.value).startswith(message), str(caught.value)


def test_parse_options_type_errors():
    with pytest.raises(TypeError, match="text must be a str or None"):
        faults.parse_options(b"uaf=1")
    with pytest.raises(ValueError, match="embedded NUL"):
        faults.parse_options("uaf=1\0")


@given(st.text(alphabet=st.sampled_from(list("=:,'\" \t%pabcdefgiklmnoqrstuxz_0123456789KMGT-")), max_size=80))
def test_hostile_option_strings_give_a_dict_or_a_value_error(text):
    try:
        options = faults.parse_options(text)
    except ValueError as exc:
        assert str(exc).startswith("GUARDALLOC_OPTIONS: ")
    else:
        assert set(options) == set(faults.parse_options())


def test_bad_environment_option_does_not_break_the_import(child):
    """GUARDALLOC_OPTIONS is the native library's: a typo in it must not break
    a program (or a pytest run: the plugin imports guardalloc) that only
    imports guardalloc."""
    result = child("import guardalloc, guardalloc.native, guardalloc.pytest_plugin; print('ran')",
                   env={"GUARDALLOC_OPTIONS": "uaf=1:sample_rate=often"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n" and result.stderr == ""


def test_bad_environment_option_is_said_once_when_reports_start(child, tmp_path):
    """A bad value in the environment is said in one line when the first
    arena installs the handler: its log_path is then not used."""
    result = child(f"""
        import guardalloc
        for _ in range(3):
            guardalloc.Arena(2, 64).close()
        guardalloc.enable_reports()
        print(guardalloc.get_report_path())
    """, env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.%p.json:alignmnt=1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "None\n"
    assert result.stderr == ("guardalloc: GUARDALLOC_OPTIONS: alignmnt: unknown option (known: "
                             + " ".join(faults.parse_options()) + "); its log_path is not used\n")


def test_good_environment_log_path_is_used(child, tmp_path):
    result = child("import guardalloc; print(guardalloc.get_report_path())",
                   env={"GUARDALLOC_OPTIONS": f"uaf=1:log_path={tmp_path}/r.%p.json"})
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"{tmp_path}/r.%p.json\n"


# -- the Python API ------------------------------------------------------------------

def test_report_path_api(tmp_path):
    before = guardalloc.get_report_path()
    try:
        guardalloc.set_report_path(tmp_path / "r.%p.json")
        assert guardalloc.get_report_path() == str(tmp_path / "r.%p.json")
        guardalloc.set_report_path(None)
        assert guardalloc.get_report_path() is None
        guardalloc.set_report_path(b"/tmp/x.json")
        assert guardalloc.get_report_path() == "/tmp/x.json"
        with pytest.raises(ValueError, match="longer than 1023 bytes"):
            guardalloc.set_report_path("/" + "x" * 1023)
        with pytest.raises(ValueError, match="NUL"):
            guardalloc.set_report_path("/tmp/\0")
        with pytest.raises(TypeError, match="path must be"):
            guardalloc.set_report_path(3)
    finally:
        guardalloc.set_report_path(before)


def test_report_test_and_fd_api():
    try:
        faults.set_report_test("a.py::t", "call")
        assert faults.get_report_test() == "a.py::t"
        faults.set_report_test("x" * 2000)
        assert faults.get_report_test() == "x" * 1023
        with pytest.raises(ValueError, match="phase must be at most 31 bytes"):
            faults.set_report_test("a.py::t", "p" * 32)
        with pytest.raises(TypeError):
            faults.set_report_test(3)
    finally:
        faults.set_report_test(None)
    assert faults.get_report_test() is None
    assert faults.get_report_fd() == 2
    with pytest.raises(ValueError, match="fd must be"):
        faults.set_report_fd(-2)


# -- reports written by the handler ------------------------------------------------------

FAULTS = {
    "overflow": ("buf = arena.alloc(4000)\nctypes.memset(buf.address + 4000, 0, 1)",
                 {"kind": "heap-buffer-overflow", "access": "WRITE", "offset": 4000, "size": 4000}),
    "underflow": ("buf = arena.alloc(4000)\nctypes.string_at(buf.address - 1, 1)",
                  {"kind": "heap-buffer-underflow", "access": "READ", "offset": -1, "size": 4000}),
    "uaf": ("buf = arena.alloc(100)\naddress = buf.address\nbuf.free()\nctypes.string_at(address, 1)",
            {"kind": "use-after-free", "access": "READ", "offset": 0, "size": 100}),
    "wild": ("ctypes.string_at(arena.address + 10, 1)",
             {"kind": "wild-access", "access": "READ", "offset": None, "size": None, "slot": None}),
}
ALIGN = {"overflow": "right", "underflow": "left", "uaf": "right", "wild": "right"}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_kind_is_written_as_valid_json(child, tmp_path, name):
    body, expected = FAULTS[name]
    result = child(f"""
        import ctypes, guardalloc
        guardalloc.set_tracebacks(True)
        arena = guardalloc.Arena(4096, 4, uaf=True, align={ALIGN[name]!r}, alignment=1)
        {body.replace(chr(10), chr(10) + '        ')}
    """, env={"GUARDALLOC_OPTIONS": f"uaf=1:log_path={tmp_path}/guardalloc.%p.json"})
    assert result.returncode == -signal.SIGSEGV, result.stderr
    (path,) = tmp_path.iterdir()
    (report,) = reports_in(tmp_path)
    validate(report)
    assert path.name == f"guardalloc.{report['pid']}.json"
    for key, value in expected.items():
        assert report[key] == value, key
    assert report["tid"] == report["pid"]           # the main thread
    assert report["signal"] == "SIGSEGV" and report["on_fault"] == "abort"
    assert report["test"] is None
    assert int(report["arena"]["base"], 16) <= int(report["address"], 16)
    assert report["arena"]["slots"] == 4 and report["arena"]["slot_size"] == 4096
    # The same text as on stderr, whole.
    assert report["text"].splitlines() == [line for line in result.stderr.splitlines()
                                           if line.startswith(("==", "  ", "SUMMARY: "))][:len(report["text"].splitlines())]
    if report["slot"] is not None:
        assert "<string>" in report["stacks"]["allocated"]
    if name == "uaf":
        assert "<string>" in report["stacks"]["freed"]
    else:
        assert report["stacks"]["freed"] is None


def test_test_name_and_escaping(child, tmp_path):
    result = child(r"""
        import ctypes, guardalloc, guardalloc.faults
        guardalloc.set_report_path(__import__("sys").argv[1] + "/r.%p.json")
        guardalloc.faults.set_report_test('t.py::test_x["a\\b\n\x01"]', "call")
        arena = guardalloc.Arena(4096, 4)
        buf = arena.alloc(4096)
        ctypes.memset(buf.address, 0, 4097)
    """, str(tmp_path))
    assert result.returncode == -signal.SIGSEGV
    (report,) = reports_in(tmp_path)
    validate(report)
    assert report["test"] == {"nodeid": 't.py::test_x["a\\b\n\x01"]', "phase": "call"}
    assert 'test: t.py::test_x["a\\b' in result.stderr
    access = report["stacks"].pop("access_native")   # the faulting thread's, walked from the signal context
    assert access and access[0] == report["faulting_instruction"]
    access_python = report["stacks"].pop("access_python")   # the faulting thread's Python frames
    assert access_python[-1] == {"function": "<module>", "file": "<string>", "line": 7, "entry": True,
                                  "launcher_below": False}
    assert report["stacks"] == {"allocated": None, "freed": None, "allocated_native": None,
                                "freed_native": None, "allocated_python": None, "freed_python": None}


def test_continue_mode_writes_one_report_per_slot(child, tmp_path):
    result = child("""
        import ctypes, guardalloc
        arena = guardalloc.Arena(4096, 4, on_fault="continue")
        one, two = arena.alloc(4096), arena.alloc(4096)
        ctypes.memset(one.address, 0, 4097)
        ctypes.memset(one.address, 0, 4097)       # the same guard again: no second report
        ctypes.string_at(two.address + 4096, 1)
    """, env={"GUARDALLOC_OPTIONS": f"log_path={tmp_path}/r.json"})
    assert result.returncode == 0, result.stderr
    found = reports_in(tmp_path)
    assert [(r["kind"], r["access"], r["on_fault"]) for r in found] == [
        ("heap-buffer-overflow", "WRITE", "continue"), ("heap-buffer-overflow", "READ", "continue")]
    for report in found:
        validate(report)


def test_percent_escapes_and_unwritable_paths(child, tmp_path):
    result = child("""
        import ctypes, guardalloc, sys
        guardalloc.set_report_path(sys.argv[1] + "/100%%-%p.json")
        arena = guardalloc.Arena(4096, 4)
        buf = arena.alloc(4096)
        ctypes.memset(buf.address, 0, 4097)
    """, str(tmp_path))
    assert result.returncode == -signal.SIGSEGV
    (path,) = tmp_path.iterdir()
    assert path.name.startswith("100%-") and path.name.endswith(".json")
    # A directory that does not exist: the text report still comes, no JSON.
    result = child("""
        import ctypes, guardalloc
        guardalloc.set_report_path("/nonexistent/dir/r.json")
        arena = guardalloc.Arena(4096, 4)
        buf = arena.alloc(4096)
        ctypes.memset(buf.address, 0, 4097)
    """)
    assert result.returncode == -signal.SIGSEGV
    assert "guardalloc: heap-buffer-overflow WRITE" in result.stderr


def test_report_fd_redirects_the_text(child, tmp_path):
    result = child("""
        import ctypes, os, sys, guardalloc, guardalloc.faults
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
        guardalloc.faults.set_report_fd(fd)
        arena = guardalloc.Arena(4096, 4)
        buf = arena.alloc(4096)
        ctypes.memset(buf.address, 0, 4097)
    """, str(tmp_path / "text"))
    assert result.returncode == -signal.SIGSEGV
    assert "guardalloc:" not in result.stderr
    assert "guardalloc: heap-buffer-overflow WRITE" in (tmp_path / "text").read_text()


def test_schema_version_2_keeps_version_1_reports_valid():
    """A fault's report is the same in versions 1 and 2; the fields a free's
    report leaves null (signal, si_code, arena) stay required in a fault's."""
    import jsonschema

    fault = {"schema_version": 1, "tool": "guardalloc", "kind": "use-after-free", "access": "READ",
             "address": "0x7f00", "offset": 0, "size": 96, "buffer": "0x7f00", "slot": 0,
             "arena": {"base": "0x7e00", "slots": 4, "slot_size": 4096, "guard_size": 4096},
             "pid": 5, "tid": 5, "signal": "SIGSEGV", "si_code": "SEGV_MAPERR", "on_fault": "abort",
             "test": None, "stacks": {"allocated": None, "freed": None}, "text": "..."}
    validate(fault)
    validate({**fault, "schema_version": 2})
    free = {**fault, "schema_version": 2, "kind": "double-free", "access": "free", "signal": None,
            "si_code": None, "stacks": {"allocated": None, "freed": None, "this_free_native": ["0x1: f+0x1 (a)"]}}
    validate(free)
    validate({**free, "kind": "invalid-free", "arena": None, "slot": None, "offset": None, "size": None,
              "buffer": None})
    for bad in ({**fault, "signal": None}, {**fault, "arena": None}, {**fault, "kind": "double-free"},
                {**fault, "damaged": 3}, {**free, "signal": "SIGSEGV"}, {**free, "schema_version": 1},
                {**free, "kind": "use-after-free"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)

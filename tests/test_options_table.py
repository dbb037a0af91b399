"""The table of GUARDALLOC_OPTIONS (``_c/options.c``) as the one source of
every option: what guardalloc.faults exposes of it, the flags of ``exec`` and
``run --native`` made from it, ``help=1``, the docs table, and where a bad
value in the environment is refused (and where it must break nothing).

A new row of the table is covered by these tests as it is: each test walks
the whole table, so the row needs only a test of its own behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from guardalloc import faults, native
from guardalloc.cli import main as cli_main, native_flags

ROOT = Path(__file__).resolve().parents[1]
ROWS = faults.option_table()
FLAG_ROWS = [row for row in ROWS if row.flag]


def _cli(*args: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", *args], capture_output=True, text=True,
                          timeout=300, env=full, cwd=cwd)


def _typed_default(row: faults.Option):
    return faults.parse_options()[row.name]


# -- the table as guardalloc.faults gives it -------------------------------------------

def test_rows_are_well_formed():
    assert len({row.name for row in ROWS}) == len(ROWS)
    for row in ROWS:
        assert row.name.isidentifier() and row.name == row.name.lower()
        assert row.type in ("bool", "uint", "size", "pow2", "choice", "string")
        assert row.help and "\n" not in row.help
        # The default parses by the row's own rule, to what parse_options gives.
        assert faults.parse_option(row.name, row.default) == _typed_default(row)
        assert (row.choices is not None) == (row.type == "choice")
        if row.type != "choice":
            assert row.min <= row.max


def test_help_is_the_only_row_without_a_flag():
    assert [row.name for row in ROWS if not row.flag] == ["help"]


_VALUE = st.text(alphabet=st.sampled_from(list("0123456789KMGTkx-abcdefilnorstuy%p/._")), max_size=24)


@given(st.sampled_from([row.name for row in ROWS]), _VALUE)
def test_one_value_has_the_rule_and_message_of_the_whole_string(name, value):
    """parse_option (the flags, options_string) and parse_options (the
    environment) are one parser: the same value, or the same message."""
    try:
        alone = faults.parse_option(name, value)
    except ValueError as exc:
        with pytest.raises(ValueError) as whole:
            faults.parse_options(f"{name}={value}")
        assert str(whole.value) == str(exc)
        assert str(exc).startswith(f"GUARDALLOC_OPTIONS: {name}: ") and "\n" not in str(exc)
    else:
        assert faults.parse_options(f"{name}={value}")[name] == alone


def test_parse_option_refuses_unknown_names_and_wrong_types():
    with pytest.raises(ValueError, match="GUARDALLOC_OPTIONS: alignmnt: unknown option"):
        faults.parse_option("alignmnt", "1")
    with pytest.raises(TypeError, match="value must be a str"):
        faults.parse_option("alignment", 16)
    with pytest.raises(ValueError, match="embedded NUL"):
        faults.parse_option("log_path", "/tmp/a\0b")


def test_options_help_lists_every_row_with_its_default():
    lines = faults.options_help().splitlines()
    assert lines[0].startswith("GUARDALLOC_OPTIONS: ")
    assert len(lines) == 1 + len(ROWS)
    for line, row in zip(lines[1:], ROWS):
        assert line.split()[0] == f"{row.name}={row.default}"
        assert line.endswith(row.help)


def test_expand_log_path_is_the_c_handlers():
    assert faults.expand_log_path("/r/g.%p.json", 42) == "/r/g.42.json"
    assert faults.expand_log_path("/r/100%%.%p.%p", 7) == "/r/100%.7.7"
    assert faults.expand_log_path("/r/plain%", 7) == "/r/plain%"
    assert faults.expand_log_path("/r/g.%p.json", "*") == "/r/g.*.json"   # the plugin's glob
    assert faults.expand_log_path("/r/g.%p.json", "12-3") == "/r/g.12-3.json"
    with pytest.raises(TypeError):
        faults.expand_log_path("/r/%p", 7.0)
    with pytest.raises(ValueError, match="pid: embedded NUL"):
        faults.expand_log_path("/r/%p", "1\0")
    with pytest.raises(ValueError, match="0 or more"):
        faults.expand_log_path("/r/%p", -1)
    with pytest.raises(ValueError, match="longer than"):
        faults.expand_log_path("%p" * 1000, 1 << 60)


def _expanded_model(template: str, pid: int) -> str:
    """%p -> pid, %% -> %, anything else as it is, left to right."""
    out, i = [], 0
    while i < len(template):
        pair = template[i:i + 2]
        if pair == "%p":
            out.append(str(pid))
            i += 2
        elif pair == "%%":
            out.append("%")
            i += 2
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


@given(st.text(alphabet=st.sampled_from(list("%p%/a.é")), max_size=60), st.integers(0, (1 << 64) - 1))
def test_expand_log_path_matches_its_model(template, pid):
    assert faults.expand_log_path(template, pid) == _expanded_model(template, pid)


def test_defaults_are_read_from_the_table():
    assert native.DEFAULT_SAMPLE_RATE == int(next(r for r in ROWS if r.name == "sample_rate").default)


# -- options_string and the flags -------------------------------------------------------

def test_options_string_takes_every_row():
    values = {row.name: _typed_default(row) for row in ROWS}
    assert faults.parse_options(native.options_string(**values)) == faults.parse_options()
    with pytest.raises(TypeError, match="unknown option.*'colour'"):
        native.options_string(colour="red")


_HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-2, 1 << 65), st.floats(allow_nan=False),
                     st.text(alphabet=st.sampled_from(list("0123456789abcdefglmnoprstuKG:,'\" %")), max_size=12),
                     st.binary(max_size=4))


@given(st.dictionaries(st.sampled_from([row.name for row in ROWS]), _HOSTILE, max_size=4))
def test_options_string_gives_text_the_library_reads_back_or_refuses(options):
    """Hostile values: options_string raises TypeError or ValueError, or its
    text parses back (by the library's parser) to exactly what was given."""
    try:
        text = native.options_string(**options)
    except (TypeError, ValueError) as exc:
        assert "\n" not in str(exc)
        return
    parsed = faults.parse_options(text)
    for name, value in options.items():
        if value is not None:
            assert parsed[name] == (faults.parse_option(name, value) if isinstance(value, str) else value)


def test_options_string_quotes_strings_whatever_they_hold():
    for path in ("/a:b,c d/r.%p.json", "/it's/r.json", '/say "x"/r.json', ""):
        assert faults.parse_options(native.options_string(log_path=path))["log_path"] == path
    with pytest.raises(ValueError, match="log_path"):
        native.options_string(log_path="/both'\"/r.json")


def _flag_words(row: faults.Option) -> list[str]:
    """The command-line words that set row to its default."""
    if row.type == "bool":
        return [native_flags.flag_name(row)]    # --uaf sets 1, --no-x sets 0: not the default
    return [native_flags.flag_name(row), row.default]


@pytest.mark.parametrize("command, skip", [("exec", ()), ("run", ("sample_rate",))])
def test_every_row_is_a_flag(command, skip):
    argv = [command]
    expected = {}
    for row in FLAG_ROWS:
        if row.name in skip:
            continue
        argv += _flag_words(row)
        expected[row.name] = (not _typed_default(row)) if row.type == "bool" else _typed_default(row)
    argv += ["--", "true"] if command == "exec" else ["prog.py"]
    parser, found = cli_main.build_parser(argv)
    args, _ = parser.parse_known_args(argv)
    assert native_flags.given(args) == expected
    help_text = found["parser"].format_help()
    for row in FLAG_ROWS:
        assert (native_flags.flag_name(row) in help_text) == (row.name not in skip)
        usage = found["parser"].format_usage()
        assert (native_flags.flag_name(row) in usage) == (row.name not in skip)


def test_a_flag_value_is_refused_with_the_parsers_words():
    with pytest.raises(ValueError) as refused:
        faults.parse_option("alignment", "24")
    words = str(refused.value).removeprefix("GUARDALLOC_OPTIONS: alignment: ")
    assert "power of two between 1 and 4096, not 24" in words
    result = _cli("exec", "--alignment", "24", "--", "/bin/true")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"python -m guardalloc exec: error: argument --alignment: {words}"
    result = _cli("exec", "--on-fault", "ignore", "--", "/bin/true")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith(
        "argument --on-fault: expected one of abort, continue; not 'ignore'")


def test_docs_table_is_the_generated_one():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_options_table.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- help=1 ---------------------------------------------------------------------------

def test_help_prints_every_option_and_the_program_goes_on():
    env = native.environment(sample_rate=0, help=True)
    result = subprocess.run(["/bin/echo", "the program ran"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout == "the program ran\n"
    assert result.stderr == faults.options_help()


def test_exec_passes_help_from_the_environment():
    result = _cli("exec", "--", "/bin/echo", "ran", env={"GUARDALLOC_OPTIONS": "help=1"})
    assert result.returncode == 0 and result.stdout == "ran\n"
    assert result.stderr == faults.options_help()


# -- a bad value in the environment ------------------------------------------------------

TYPO = {"GUARDALLOC_OPTIONS": "alignmnt=1"}
TYPO_LINE = ("GUARDALLOC_OPTIONS: alignmnt: unknown option (known: "
             + " ".join(row.name for row in ROWS) + ")")


def test_exec_refuses_a_bad_environment_in_one_line():
    result = _cli("exec", "--sample-rate", "1", "--", "/bin/true", env=TYPO)
    assert result.returncode == 2
    assert result.stderr == f"python -m guardalloc exec: {TYPO_LINE}\n"


def test_run_native_refuses_a_bad_environment_in_one_line(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("print('ran')\n")
    result = _cli("run", "--native", "1", str(script), env=TYPO, cwd=str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"python -m guardalloc run: --native: {TYPO_LINE}\n"


def test_run_without_native_is_not_broken_by_it(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("print('ran')\n")
    result = _cli("run", "--pymem", "0", str(script), env=TYPO, cwd=str(tmp_path))
    assert result.returncode == 0 and result.stdout == "ran\n", result.stderr


def test_an_unrelated_pytest_run_is_not_broken_by_it(pytester, monkeypatch):
    """The plugin is loaded by its entry point in every pytest run of the
    environment: a typo meant for the native library must not fail them."""
    monkeypatch.setenv("GUARDALLOC_OPTIONS", "alignmnt=1")
    pytester.makepyfile("def test_one(): assert 1 + 1 == 2")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert "alignmnt" not in result.stdout.str() + result.stderr.str()


def test_pytest_native_mode_refuses_it_in_one_line(pytester, monkeypatch):
    monkeypatch.setenv("GUARDALLOC_OPTIONS", "alignmnt=1")
    pytester.makepyfile("def test_one(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--guardalloc-native=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: --guardalloc-native: {TYPO_LINE}"
    assert [line for line in result.stderr.lines if line.strip()] == [result.stderr.lines[0]]

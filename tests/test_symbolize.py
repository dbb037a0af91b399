"""guardalloc.symbolize: raw frames (what the fault handler writes) turned
into functions, files and lines by llvm-symbolizer or addr2line, checked
against build-ids and cached; text and JSON reports rewritten."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from guardalloc.symbolize import RawFrame, Symbolizer, symbolize_report, symbolize_text
from guardalloc.symbolize.backends import Addr2line, LlvmSymbolizer, SymbolizerError, find_backend
from guardalloc.symbolize.elfid import build_id
from guardalloc.symbolize.text import TextRewriter

C_SOURCE = textwrap.dedent("""\
    #include <stdlib.h>
    #include <string.h>
    static char *make_buffer(size_t n) { return malloc(n); }
    static void fill(char *p, size_t n) { memset(p, 'x', n + 16); }
    int main(void) {
        char *p = make_buffer(4096);
        fill(p, 4096);
        free(p);
        return 0;
    }
    """)

CXX_SOURCE = textwrap.dedent("""\
    #include <cstdlib>
    namespace shapes {
    struct Grid {
        explicit Grid(int n) : cells(new int[n]), n(n) {}
        void poke(int i, int v) { cells[i] = v; }
        int *cells; int n;
    };
    template <typename T> __attribute__((noinline)) void walk(T &g, int count)
    {
        for (int i = 0; i <= count; i++)
            g.poke(i + g.n, i);
    }
    }
    int main(int argc, char **argv) {
        shapes::Grid g(argc > 1 ? atoi(argv[1]) : 1024);
        shapes::walk(g, 4);
        return g.cells[0];
    }
    """)


def _backends():
    found = []
    for cls, names in ((LlvmSymbolizer, ["llvm-symbolizer"] + [f"llvm-symbolizer-{v}" for v in range(30, 13, -1)]),
                       (Addr2line, ["addr2line"]), (Addr2line, ["eu-addr2line"])):
        path = next((shutil.which(n) for n in names if shutil.which(n)), None)
        found.append(pytest.param(cls(path) if path else None, id=names[0]))
    return found


@pytest.fixture(params=_backends())
def backend(request):
    if request.param is None:
        pytest.skip(f"{request.node.callspec.id} is not installed")
    return request.param


def _compile(tmp_path, source: str, name: str, *flags: str) -> str:
    compiler = "g++" if name.endswith("pp") else "gcc"
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    src = tmp_path / (name + (".cpp" if compiler == "g++" else ".c"))
    src.write_text(CXX_SOURCE if compiler == "g++" else C_SOURCE)
    out = tmp_path / name
    subprocess.run([compiler, "-g", *flags, "-o", str(out), str(src)], check=True)
    return str(out)


def _symbol(path: str, name: str) -> int:
    """The address of function ``name`` in the file's symbol table (nm)."""
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed")
    out = subprocess.run(["nm", "-C", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[2].split("(")[0] in (name, f"void {name}") or line.endswith(" " + name):
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {path}")


def _line_of(source: str, needle: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if needle in line)


# -- build-ids --------------------------------------------------------------

def test_build_id_is_read_from_the_note(tmp_path):
    program = _compile(tmp_path, "x", "prog", "-Wl,--build-id=0x0123456789abcdef")
    assert build_id(program) == "0123456789abcdef"


@pytest.mark.parametrize("content", [b"", b"\x7fELF", b"not an elf file at all" * 10, b"\x7fELF\x02\x01" + b"\xff" * 200])
def test_build_id_of_a_file_that_is_no_elf_is_none(tmp_path, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert build_id(str(path)) is None
    assert build_id(str(tmp_path / "missing")) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_build_id_never_raises_on_hostile_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("elf") / "f"
    path.write_bytes(b"\x7fELF" + data)
    assert build_id(str(path)) is None or isinstance(build_id(str(path)), str)


# -- raw frames ---------------------------------------------------------------

def test_raw_frame_round_trips():
    text = "0x55c3f0a0f218 (/tmp/a b/prog+0x1218) (BuildId: 8A7F)"
    frame = RawFrame.parse(text)
    assert frame == RawFrame(0x55c3f0a0f218, "/tmp/a b/prog", 0x1218, "8a7f")
    assert RawFrame.parse("    #3 " + text) == frame
    assert RawFrame.parse(frame.body()) == frame
    assert RawFrame.parse("#0 0x10 (<unknown module>)") == RawFrame(0x10)
    assert RawFrame.parse("    #0 0x55c3f0a0f218 in main /src/a.c:5") is None


# -- backends on real binaries --------------------------------------------------

def test_c_program_function_and_line(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0")
    offset = _symbol(program, "make_buffer") + 4
    [locs] = backend.symbolize([(program, offset)])
    assert locs[0].function == "make_buffer"
    assert locs[0].file.endswith("prog.c") and locs[0].line == _line_of(C_SOURCE, "make_buffer(size_t")


def test_cxx_program_demangled_and_inlined(tmp_path, backend):
    program = _compile(tmp_path, "x", "progpp", "-O2")
    walk = _symbol(program, "shapes::walk<shapes::Grid>")
    answers = backend.symbolize([(program, walk + off) for off in range(0, 48)])
    inlined = [locs for locs in answers if len(locs) == 2]
    assert inlined, answers
    assert inlined[0][0].function.startswith("shapes::Grid::poke(int, int)")
    assert "shapes::walk<shapes::Grid>(shapes::Grid&, int)" in inlined[0][1].function
    assert inlined[0][0].line == _line_of(CXX_SOURCE, "void poke")


def test_backends_agree_on_the_c_program(tmp_path):
    present = [p.values[0] for p in _backends() if p.values[0] is not None]
    if len(present) < 2:
        pytest.skip("fewer than two symbolizers installed")
    program = _compile(tmp_path, "x", "prog", "-O0")
    queries = [(program, _symbol(program, name) + 4) for name in ("make_buffer", "fill", "main")]
    answers = [[(locs[0].function, locs[0].line) for locs in b.symbolize(queries)] for b in present]
    assert all(a == answers[0] for a in answers), answers


def test_unknown_module_is_no_answer(tmp_path, backend):
    assert backend.symbolize([(str(tmp_path / "missing.so"), 0x10)]) == [()]


def test_preferred_backend_that_is_missing_is_an_error():
    with pytest.raises(SymbolizerError, match="not found"):
        find_backend("no-such-symbolizer-anywhere")


# -- the Symbolizer: build-id checks, the cache ------------------------------------

def test_build_id_mismatch_keeps_the_raw_frame(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0", "-Wl,--build-id=0xaaaa")
    frame = RawFrame(0x1000, program, _symbol(program, "main"), "bbbb")
    [out] = Symbolizer(backend, cache_dir=None).symbolize([frame])
    assert out.locations == () and "changed since the report" in out.problem


class _Failing(Addr2line):
    def symbolize(self, queries):
        raise SymbolizerError("must not be asked")


def test_answers_are_cached_on_disk_by_build_id(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0", "-Wl,--build-id=0xcafe")
    frame = RawFrame(0x1000, program, _symbol(program, "fill") + 4, "cafe")
    first = Symbolizer(backend, cache_dir=str(tmp_path / "cache")).symbolize([frame])
    assert (tmp_path / "cache" / "cafe.json").exists()
    again = Symbolizer(_Failing("false"), cache_dir=str(tmp_path / "cache")).symbolize([frame])
    assert again == first and again[0].locations[0].function == "fill"


def test_a_damaged_cache_is_ignored(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0", "-Wl,--build-id=0xbeef")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "beef.json").write_text("{not json")
    frame = RawFrame(0x1000, program, _symbol(program, "fill") + 4, "beef")
    [out] = Symbolizer(backend, cache_dir=str(tmp_path / "cache")).symbolize([frame])
    assert out.locations[0].function == "fill"


def test_backend_failure_keeps_raw_frames_and_is_told(tmp_path):
    program = _compile(tmp_path, "x", "prog", "-O0")
    s = Symbolizer(_Failing("false"), cache_dir=None)
    [out] = s.symbolize([RawFrame(0x1000, program, 0x1139)])
    assert out.locations == () and out.problem == "the symbolizer failed"
    assert s.errors == ["must not be asked"]


def test_without_any_symbolizer_frames_stay_raw(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GUARDALLOC_SYMBOLIZER", raising=False)
    s = Symbolizer(cache_dir=None)
    assert s.backend is None
    text = "    #0 0x1139 (/bin/sh+0x1139)"
    assert symbolize_text(text, s) == text


# -- text and JSON reports ------------------------------------------------------

def _report(program: str, libc_frame: str) -> str:
    fill, main = _symbol(program, "fill") + 4, _symbol(program, "main") + 4
    return textwrap.dedent(f"""\
        ==42== guardalloc: heap-buffer-overflow WRITE at 0x7f0000001000
            #0 {libc_frame}
            #1 0x5500000{fill:05x} ({program}+0x{fill:x})
            #2 0x5500000{main:05x} ({program}+0x{main:x})
          allocated at:
            #0 0x5500000{main:05x} ({program}+0x{main:x})
        SUMMARY: guardalloc: heap-buffer-overflow ({program}+0x{fill:x})""")


def test_text_report_is_symbolized_and_summarized(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0")
    out = symbolize_text(_report(program, "0x7f00 (<unknown module>)"), Symbolizer(backend, cache_dir=None))
    lines = out.splitlines()
    assert lines[0].startswith("==42== guardalloc:")
    assert lines[1] == "    #0 0x7f00 (<unknown module>)"
    assert lines[2].startswith("    #1 0x5500000") and " in fill " in lines[2] and "prog.c:" in lines[2]
    assert " in main " in lines[3] and lines[4] == "  allocated at:" and " in main " in lines[5]
    assert lines[-1] == f"SUMMARY: guardalloc: heap-buffer-overflow fill {tmp_path}/prog.c:{_line_of(C_SOURCE, 'memset')}" \
        or lines[-1].startswith("SUMMARY: guardalloc: heap-buffer-overflow fill ") and "prog.c:4" in lines[-1]


def test_inlined_frames_renumber_the_stack(tmp_path, backend):
    program = _compile(tmp_path, "x", "progpp", "-O2")
    walk = _symbol(program, "shapes::walk<shapes::Grid>")
    s = Symbolizer(backend, cache_dir=None)
    offset = next(walk + off for off in range(48) if len(s.symbolize([RawFrame(1, program, walk + off)])[0].locations) == 2)
    text = f"    #0 0x1 ({program}+0x{offset:x})\n    #1 0x2 ({program}+0x{offset:x})"
    numbers = [line.split()[0] for line in symbolize_text(text, s).splitlines()]
    assert numbers == ["#0", "#1", "#2", "#3"]


def test_json_report_keeps_raw_frames_and_gains_symbolized(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0")
    fill = _symbol(program, "fill") + 4
    raw = f"0x55000001139 ({program}+0x{fill:x})"
    report = {"schema_version": 3, "tool": "guardalloc", "kind": "heap-buffer-overflow",
              "stacks": {"allocated": None, "freed": None, "access_native": [raw], "allocated_native": None},
              "text": "==1== guardalloc: x\n    #0 " + raw + "\nSUMMARY: guardalloc: heap-buffer-overflow"}
    out = symbolize_report(report, Symbolizer(backend, cache_dir=None))
    assert out["stacks"] == report["stacks"]
    [frame] = out["symbolized"]["stacks"]["access_native"]
    assert frame["frame"] == raw and frame["locations"][0]["function"] == "fill"
    assert out["symbolized"]["summary"].startswith("SUMMARY: guardalloc: heap-buffer-overflow fill ")
    assert " in fill " in out["text"] and out["text"].splitlines()[-1] == out["symbolized"]["summary"]
    json.dumps(out)


def test_a_version_2_report_is_accepted_unchanged_in_its_stacks():
    report = {"schema_version": 2, "tool": "guardalloc", "kind": "double-free",
              "stacks": {"allocated_native": ["0x7f..: malloc+0x1c (/lib/libc.so.6)"]}, "text": "x"}
    out = symbolize_report(report, Symbolizer(cache_dir=None))
    assert out["symbolized"]["stacks"] == {"allocated_native": []} and out["text"] == "x"
    with pytest.raises(TypeError):
        symbolize_report([1, 2], Symbolizer(cache_dir=None))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=80), max_size=12))
def test_lines_that_are_no_frames_pass_unchanged(lines):
    rewriter = TextRewriter(Symbolizer(_Failing("false"), cache_dir=None))
    out = []
    for line in lines:
        out += rewriter.feed(line)
    out += rewriter.close()
    assert len(out) == len(lines)
    for before, after in zip(lines, out):
        assert after == before or RawFrame.parse(before) is not None


# -- python -m guardalloc symbolize -----------------------------------------------

def _cli(*args, stdin: str = "", env=None):
    import sys
    return subprocess.run([sys.executable, "-m", "guardalloc", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, env=env)


def test_symbolize_command_filters_stdin_and_files(tmp_path, backend):
    program = _compile(tmp_path, "x", "prog", "-O0")
    text = _report(program, "0x7f00 (<unknown module>)")
    report = {"schema_version": 3, "tool": "guardalloc", "kind": "heap-buffer-overflow", "text": text,
              "stacks": {"allocated_native": [f"0x1 ({program}+0x{_symbol(program, 'main') + 4:x})"]}}
    mixed = "before\n" + text + "\n" + json.dumps(report) + "\nafter\n"
    (tmp_path / "in.log").write_text(mixed)
    env = dict(os.environ, GUARDALLOC_SYMBOLIZER=backend.program, GUARDALLOC_CACHE_DIR="")
    for proc in (_cli("symbolize", stdin=mixed, env=env), _cli("symbolize", str(tmp_path / "in.log"), env=env)):
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "before" and lines[-1] == "after"
        assert any(" in fill " in line for line in lines)
        done = json.loads(lines[-2])
        assert done["symbolized"]["stacks"]["allocated_native"][0]["locations"][0]["function"] == "main"
        assert done["stacks"] == report["stacks"]


@pytest.mark.parametrize("args, message", [
    (["symbolize", "/nonexistent/reports.log"], "cannot read /nonexistent/reports.log"),
    (["symbolize", "--symbolizer", "no-such-program-here"], "symbolizer not found"),
    (["symbolize", "--frobnicate"], "unrecognized arguments"),
    (["report", "/nonexistent/dir"], "cannot read /nonexistent/dir"),
    (["report", "--frames", "0", "x"], "must be between 1 and 64"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# -- exec: the launcher symbolizes its child's reports -------------------------------

def test_exec_symbolizes_a_plain_gcc_program(tmp_path, backend):
    """gcc -g -O0 without -rdynamic: the allocation stack names the
    program's own functions with file:line."""
    program = _compile(tmp_path, "x", "prog", "-O0")
    env = dict(os.environ, GUARDALLOC_SYMBOLIZER=backend.program, GUARDALLOC_CACHE_DIR="")
    env.pop("GUARDALLOC_OPTIONS", None)
    proc = _cli("exec", "--sample-rate", "1", "--", program, env=env)
    assert proc.returncode == -11, proc.stderr   # exec dies of the program's SIGSEGV
    assert "heap-buffer-overflow WRITE" in proc.stderr
    line = _line_of(C_SOURCE, "make_buffer(size_t")
    assert re.search(rf"#0 0x[0-9a-f]+ in make_buffer \S*prog\.c:{line}\b", proc.stderr), proc.stderr
    assert re.search(r"#1 0x[0-9a-f]+ in main \S*prog\.c:", proc.stderr), proc.stderr


def test_exec_keeps_frames_raw_when_asked(tmp_path):
    program = _compile(tmp_path, "x", "prog", "-O0")
    env = dict(os.environ)
    env.pop("GUARDALLOC_OPTIONS", None)
    proc = _cli("exec", "--sample-rate", "1", "--no-symbolize", "--", program, env=env)
    assert proc.returncode == -11
    assert re.search(rf"#0 0x[0-9a-f]+ \({re.escape(program)}\+0x[0-9a-f]+\) \(BuildId: [0-9a-f]+\)", proc.stderr)


def test_exec_passes_exit_status_and_output_through(tmp_path):
    script = tmp_path / "prog.sh"
    script.write_text("#!/bin/sh\necho out; echo err >&2; exit 7\n")
    script.chmod(0o755)
    proc = _cli("exec", "--", str(script))
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "out\n", "err\n")
    assert _cli("exec", "--", str(tmp_path / "missing")).returncode == 127


def test_exec_with_a_descendant_that_outlives_the_program(tmp_path):
    """A background child keeps the report pipe open: exec still returns
    when the program itself ends."""
    script = tmp_path / "prog.sh"
    script.write_text("#!/bin/sh\nsleep 30 &\nexit 3\n")
    script.chmod(0o755)
    proc = _cli("exec", "--", str(script))
    assert proc.returncode == 3


def test_report_pipe_of_another_inode_is_not_used(tmp_path):
    """A descendant whose FD was reused for another pipe writes its report
    to stderr, not into that pipe."""
    program = _compile(tmp_path, "x", "prog", "-O0")
    from guardalloc import native
    env = dict(os.environ, LD_PRELOAD=native.library_path(), GUARDALLOC_OPTIONS="sample_rate=1")
    read_end, write_end = os.pipe()
    env["GUARDALLOC_REPORT_PIPE"] = f"{write_end}:{os.fstat(write_end).st_ino + 1}"
    proc = subprocess.run([program], env=env, capture_output=True, text=True, pass_fds=(write_end,), timeout=60)
    os.close(write_end)
    leaked = os.read(read_end, 65536)
    os.close(read_end)
    assert proc.returncode == -11 and "heap-buffer-overflow" in proc.stderr and leaked == b""

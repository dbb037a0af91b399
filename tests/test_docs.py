"""Every code block of README.md and docs/*.md runs, so that a claim cannot drift.

- A ```python block runs in a child interpreter, standalone, from a scratch
  directory. A line before its fence can say how:
  ``<!-- docs-test: continue -->`` (runs after the blocks before it in the
  same file, as one program), ``<!-- docs-test: faults SIGSEGV "text" -->``
  (must die of that signal with that text on stderr) or
  ``<!-- docs-test: pytest -->`` (a test file: run by pytest, every test
  must pass).
- Where a line's comment starts with a value (``print(n)  # 3: ...``,
  ``f(a)  # 'guardalloc'``), the value of that print or expression is
  checked against it.
- Every ``guardalloc ...`` / ``python -m guardalloc ...`` command line of a
  shell block (and ``$ ``-prompted ones in transcripts) must be listed in
  :data:`COMMANDS`: run (cheaply, with the placeholders below filled in) or
  skipped with a reason.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
SHELL_LANGS = {"sh", "bash", "shell", "console"}
PYTHON_TIMEOUT = 120

# A guardalloc command line -> None (run it, placeholders filled in) or the
# reason it is not run here.
SYNOPSIS = "a usage synopsis with [options], not a command"
COMMANDS: dict[str, str | None] = {
    "python -m guardalloc demo": "builds arenas of up to 30,000 slots with mprotect for a median: "
                                 "seconds of a busy machine; run by tests/test_cli.py",
    "python -m guardalloc run --pymem 100 --numpy app.py": None,
    "guardalloc exec -- ./program": None,
    "python -m guardalloc maps <PID>": None,
    "python -m guardalloc bench --quick --out report/": "a measurement (a minute); the same run with "
                                                        "tiny settings is tests/test_benchmark_cli.py",
    "python -m guardalloc run [--pymem RATE] [--numpy] [--native [RATE]] [--traceback] script.py [args ...]":
        SYNOPSIS,
    "python -m guardalloc run [options] -m module [args ...]": SYNOPSIS,
    "python -m guardalloc run [--pymem RATE] [--numpy] [--traceback] script.py [args ...]": SYNOPSIS,
    "guardalloc exec -- ./program args": None,
    "python -m guardalloc run --native 1 script.py": None,
    "guardalloc exec [--sample-rate N] [--uaf [--quarantine N]] [--alignment 1] [--align left|right|random] "
    "[--on-fault continue] [--max-bytes 4G] [--random] -- PROGRAM [ARGS...]": SYNOPSIS,
    "python -m guardalloc run --native [RATE] [same flags] script.py [args ...]": SYNOPSIS,
    "guardalloc exec --sample-rate 1 --alignment 1 -- ./overflow_write": "a transcript of a corpus "
        "program (tests/native/corpus, compiled by the native tests, which check its report)",
    "guardalloc exec --sample-rate 1 --log-path 'r.%p.json' -- ./double_free": "a transcript of a corpus "
        "program (tests/native/corpus, compiled by the native tests, which check its report)",
    "guardalloc exec --sample-rate 1 -- ./free_stack_array": "a transcript of a corpus program "
        "(tests/native/corpus/classes, compiled by the native tests, which check its report)",
    "python -m guardalloc maps 31786": "a transcript of another process's map; this test runs "
                                       "`python -m guardalloc maps <PID>` on itself",
}
# docs/performance.md lists the commands that produced its figures: each
# measures for seconds to minutes, on purpose.
MEASUREMENTS = "docs/performance.md"


@dataclass
class Block:
    path: Path
    line: int          # of the opening fence, 1-based
    lang: str
    text: str
    marker: str        # the docs-test marker before the fence, or ""

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their markers."""
    lines = path.read_text().split("\n")
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        indent = len(opening.group(1))
        body = "\n".join(line[indent:] for line in lines[i + 1:end])
        before = lines[i - 1] if i > 0 else ""
        marker = MARKER.search(before)
        found.append(Block(path, i + 1, opening.group(2), body, marker.group(1) if marker else ""))
        i = end + 1
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]


def python_programs() -> list[tuple[str, list[Block]]]:
    """(name, blocks) of every python program: a block and the continuations after it."""
    programs: list[tuple[str, list[Block]]] = []
    for block in ALL_BLOCKS:
        if block.lang != "python":
            continue
        if block.marker == "continue":
            assert programs and programs[-1][1][0].path == block.path, \
                f"{block.name}: 'continue' with no python block before it in the same file"
            programs[-1][1].append(block)
        else:
            programs.append((block.name, [block]))
    return programs


# ---------------------------------------------------------------------------
# Claims in comments

VALUE = re.compile(r"""^(?P<value>-?\d[\d,_]*(?:\.\d+)?|True|False|None|b?'[^']*'|b?"[^"]*")(?=$|[:;,\s)])""")


def stated_value(comment: str):
    """The value a ``# ...`` comment starts with, or None when it states none."""
    found = VALUE.match(comment.lstrip("#").strip())
    if not found:
        return None
    text = found.group("value")
    if re.match(r"^-?\d", text):
        text = text.replace(",", "")
    return ast.literal_eval(text)


def with_checks(source: str) -> tuple[str, int]:
    """``source`` with each one-line print or expression whose comment states
    a value turned into a check of that value; and how many there are."""
    comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    lines = source.split("\n")
    checks = 0
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Expr) or node.lineno != node.end_lineno or node.lineno not in comments:
            continue
        expected = stated_value(comments[node.lineno])
        if expected is None and not re.match(r"^#\s*None\b", comments[node.lineno]):
            continue
        value = node.value
        printed = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
                   and len(value.args) == 1 and not value.keywords)
        expr = value.args[0] if printed else value
        line = lines[node.lineno - 1].encode()   # AST offsets count UTF-8 bytes
        segment = line[expr.col_offset:expr.end_col_offset].decode()
        lines[node.lineno - 1] = (line[:node.col_offset].decode() + f"__docs_check__({segment}, {expected!r}, "
                                  f"{node.lineno}, {printed})")
        checks += 1
    return "\n".join(lines), checks


PRELUDE = '''\
import sys as __docs_sys__
def __docs_check__(value, expected, line, printed):
    if printed:
        print(value)
    if value != expected:
        print(f"docs-test: line {line}: the comment says {expected!r}, the code gives {value!r}",
              file=__docs_sys__.stderr)
        __docs_sys__.exit(97)
'''


def _needs(blocks: list[Block]) -> None:
    text = "\n".join(b.text for b in blocks)
    if re.search(r"^\s*import numpy|^\s*import .*\bnumpy\b|guardalloc\.numpy", text, re.M):
        pytest.importorskip("numpy")


@pytest.mark.parametrize("blocks", [blocks for _, blocks in python_programs()],
                         ids=[name for name, _ in python_programs()])
def test_python_block_runs_as_shown(blocks: list[Block], tmp_path):
    _needs(blocks)
    marker = blocks[-1].marker if blocks[-1].marker != "continue" else blocks[0].marker
    source = "\n".join(b.text for b in blocks) + "\n"
    env = {**os.environ, "PYTHONFAULTHANDLER": "", "GUARDALLOC_OPTIONS": ""}
    env.pop("PYTHONFAULTHANDLER")
    if marker == "pytest":
        (tmp_path / "test_doc_block.py").write_text(source)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "test_doc_block.py"], cwd=tmp_path, capture_output=True, text=True,
                              env=env, timeout=PYTHON_TIMEOUT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert " passed" in proc.stdout and "failed" not in proc.stdout
        return
    checked, _ = with_checks(source)
    program = tmp_path / "doc_block.py"
    program.write_text(PRELUDE + checked)
    proc = subprocess.run([sys.executable, str(program)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=PYTHON_TIMEOUT)
    faults = re.match(r'^faults (SIG\w+)(?: "(.*)")?$', marker)
    if faults:
        assert proc.returncode == -getattr(signal, faults.group(1)), \
            f"expected death by {faults.group(1)}, got status {proc.returncode}\n{proc.stderr}"
        assert (faults.group(2) or "") in proc.stderr
    else:
        assert marker in ("", "continue"), f"{blocks[0].name}: unknown docs-test marker {marker!r}"
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------
# Shell blocks

def _command_lines(block: Block) -> list[str]:
    """The guardalloc commands of a block, continuation lines joined,
    comments, prompts and ``&&`` chains split off."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    prompted = block.lang not in SHELL_LANGS
    commands = []
    for line in joined.split("\n"):
        if prompted:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        line = re.sub(r"\s+#.*$", "", line).strip()
        for part in line.split("&&"):
            part = " ".join(part.split())
            if re.match(r"^(guardalloc|python3? -m guardalloc)\s", part):
                commands.append(part)
    return commands


SHELL_COMMANDS = [(block, command) for block in ALL_BLOCKS
                  if block.lang in SHELL_LANGS or "$ " in block.text
                  for command in _command_lines(block)]


def test_every_command_is_run_or_skipped_with_a_reason():
    unlisted = [f"{block.name}: {command}" for block, command in SHELL_COMMANDS
                if command not in COMMANDS and str(block.path.relative_to(ROOT)) != MEASUREMENTS]
    assert not unlisted, "add these to COMMANDS in tests/test_docs.py (None: run; or a reason):\n" + \
        "\n".join(unlisted)
    assert all(reason is None or reason.strip() for reason in COMMANDS.values())


def _argv(command: str, tmp_path: Path) -> list[str]:
    """The command with its placeholders filled in: a script that prints,
    `true` for a program, this process for <PID>."""
    script = tmp_path / "app.py"
    script.write_text("print('guarded and fine')\n")
    words = shlex.split(command.replace("<PID>", str(os.getpid())))
    words = words[3:] if words[:3] == ["python", "-m", "guardalloc"] else words[1:]
    true = shutil.which("true")
    if true is None:
        pytest.skip("no `true` program to stand in for ./program")
    filled = [str(script) if w in ("app.py", "script.py") else true if w == "./program" else w for w in words]
    return [sys.executable, "-m", "guardalloc", *filled]


RUNNABLE = sorted({command for _, command in SHELL_COMMANDS if COMMANDS.get(command, "") is None})


@pytest.mark.parametrize("command", RUNNABLE)
def test_shell_command_runs(command: str, tmp_path):
    if "--numpy" in command:
        pytest.importorskip("numpy")
    proc = subprocess.run(_argv(command, tmp_path), cwd=tmp_path, capture_output=True, text=True,
                          timeout=PYTHON_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "app.py" in command or "script.py" in command:
        assert "guarded and fine" in proc.stdout


# ---------------------------------------------------------------------------
# The extractor itself

def test_a_stated_value_is_checked(tmp_path):
    checked, count = with_checks("x = 2\nprint(x + 1)    # 3: the sum\nx  # 'two': wrong\n")
    assert count == 2
    program = tmp_path / "p.py"
    program.write_text(PRELUDE + checked)
    proc = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "3\n" and proc.returncode == 97
    assert "line 3: the comment says 'two', the code gives 2" in proc.stderr


def test_comments_that_state_no_value_are_left_alone():
    assert stated_value("# a PoolStats: .live or ['live']") is None
    assert stated_value("# byte-exact: byte 100 faults") is None
    assert stated_value("# 1,000,001 guards") == 1_000_001
    assert stated_value("# b'hello'") == b"hello"
    assert stated_value("# True: allocators restored") is True


def test_blocks_and_markers_are_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\na = 1\n```\n\n<!-- docs-test: continue -->\n```python\n"
                    "print(a)  # 1\n```\n\n- item\n\n  ```sh\n  $ guardalloc demo\n  ```\n")
    found = blocks_of(page)
    assert [(b.line, b.lang, b.marker) for b in found] == [(3, "python", ""), (8, "python", "continue"),
                                                            (14, "sh", "")]
    assert found[2].text == "$ guardalloc demo"


# ---------------------------------------------------------------------------
# Links into the docs

LINK = re.compile(r"\]\(([^)\s#]*\.md)?#([^)\s]+)\)|(?<![\w/])((?:docs/)?[\w-]+\.md)#([\w-]+)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M)}


def test_links_to_sections_resolve():
    broken = []
    for page in DOCS:
        for m in LINK.finditer(page.read_text()):
            target, anchor = (m.group(1), m.group(2)) if m.group(2) else (m.group(3), m.group(4))
            path = (page.parent / target).resolve() if target else page
            if not path.exists() and target:
                path = (ROOT / target).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}#{anchor} (no such file)")
            elif anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target or ''}#{anchor}")
    assert not broken, "links to sections that do not exist:\n" + "\n".join(broken)

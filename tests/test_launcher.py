"""``python -m guardalloc run``: exit status, argv, -m, the guarding options."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import PACKAGE_PARENT

REPORT = """
import json, os, sys
import guardalloc, guardalloc.pymem
print(json.dumps({
    "name": __name__, "argv": sys.argv, "path0": sys.path[0],
    "pymem": guardalloc.pymem.stats()["state"], "rate": guardalloc.pymem.stats()["sample_rate"],
    "tracebacks": guardalloc.tracebacks_enabled(),
}))
"""


def launch(*args: str, cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", "run", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


def write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("body, status", [
    ("pass", 0), ("import sys; sys.exit(3)", 3), ("raise SystemExit(0)", 0),
    ("import sys; sys.exit(None)", 0), ("import os; os._exit(7)", 7),
])
def test_exit_status_is_the_programs(tmp_path, body, status):
    script = write(tmp_path / "prog.py", body)
    proc = launch(script, cwd=str(tmp_path))
    assert proc.returncode == status, proc.stderr


def test_uncaught_exception_exits_1_with_the_programs_traceback(tmp_path):
    script = write(tmp_path / "prog.py", """
        def broken():
            raise ValueError("the program's own error")
        broken()
    """)
    proc = launch(script, cwd=str(tmp_path))
    assert proc.returncode == 1
    assert "ValueError: the program's own error" in proc.stderr
    assert 'prog.py", line 3, in broken' in proc.stderr
    assert "launcher.py" not in proc.stderr and "runpy" not in proc.stderr


def test_exit_with_a_message(tmp_path):
    script = write(tmp_path / "prog.py", "import sys; sys.exit('bye now')")
    proc = launch(script, cwd=str(tmp_path))
    assert proc.returncode == 1 and "bye now" in proc.stderr


def test_script_argv_name_and_path(tmp_path):
    (tmp_path / "sub").mkdir()
    script = write(tmp_path / "sub" / "prog.py", REPORT)
    proc = launch("--pymem", "7", "--traceback", script, "a", "--flag", "-m", "x", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [script, "a", "--flag", "-m", "x"]
    assert seen["path0"] == str(tmp_path / "sub")
    assert seen["pymem"] == "sampling" and seen["rate"] == 7
    assert seen["tracebacks"] is True


def test_module(tmp_path):
    write(tmp_path / "mymod.py", REPORT)
    proc = launch("--pymem", "0", "-m", "mymod", "x", "--y", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [str(tmp_path / "mymod.py"), "x", "--y"]
    assert seen["path0"] == str(tmp_path)
    assert seen["pymem"] == "off" and seen["tracebacks"] is False


def test_package_module_and_its_exit_status(tmp_path):
    (tmp_path / "pkg").mkdir()
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", "import sys; print(sys.argv[1:]); sys.exit(5)")
    proc = launch("-m", "pkg", "one", cwd=str(tmp_path))
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "['one']\n"


def test_default_samples_the_interpreter(tmp_path):
    script = write(tmp_path / "prog.py", REPORT)
    proc = launch(script, cwd=str(tmp_path))
    seen = json.loads(proc.stdout)
    assert seen["pymem"] == "sampling" and seen["rate"] == 5000


def test_overflow_in_the_program_dies_of_sigsegv(tmp_path):
    script = write(tmp_path / "prog.py", """
        import ctypes, guardalloc.pymem
        pool = guardalloc.pymem.pool()
        for _ in range(100_000):
            data = bytearray(200)
            address = ctypes.addressof((ctypes.c_char * 200).from_buffer(data))
            if pool.owns(address):
                break
        print("guarded", pool.owns(address), flush=True)
        ctypes.memset(address, 0, 200 + 4096)
    """)
    proc = launch("--pymem", "1", script, cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "guarded True\n"
    assert "guardalloc: heap-buffer-overflow WRITE at 0x" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args, message", [
    ((), "no script given"),
    (("missing.py",), "can't open file 'missing.py'"),
    (("-m", "no_such_module_here"), "no module named 'no_such_module_here'"),
    (("-m",), "-m needs a module name"),
    (("--pymem", "-1", "x.py"), "must be 0 (off) or more"),
    (("--pymem", "lots", "x.py"), "not an integer"),
])
def test_usage_errors_exit_2(tmp_path, args, message):
    proc = launch(*args, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr


def test_numpy_option(tmp_path):
    pytest.importorskip("numpy")
    pytest.importorskip("guardalloc.numpy")
    script = write(tmp_path / "prog.py", """
        import numpy as np
        a = np.zeros(1000)
        print(np._core.multiarray.get_handler_name(a))
    """)
    proc = launch("--numpy", script, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "guardalloc\n"


def test_fault_tracebacks_start_at_the_programs_code(tmp_path):
    """Allocation tracebacks recorded under the launcher leave out its own
    frames, the CLI's and runpy's: the oldest line is the program's."""
    script = write(tmp_path / "prog.py", """
        import ctypes, guardalloc
        arena = guardalloc.Arena(4096, 4, alignment=1, tracebacks=True)

        def load():
            return arena.alloc(100)

        buf = load()
        ctypes.memset(buf.address + 100, 0, 1)
    """)
    proc = launch(script, cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    frames = proc.stderr.split("allocated at:\n")[1].splitlines()
    frames = [line.strip() for line in frames if re.match(r"\s*#\d+ in ", line)]
    assert [f.replace(" (called from C)", "") for f in frames] == [f"#0 in load {script}:6",
                                                                    f"#1 in <module> {script}:8 (launcher below)"], \
        proc.stderr


# -- the native library's flags without --native (the PyMem and numpy pools) --------

POOLS = """
import json, guardalloc, guardalloc.pymem
numpy_options = None
try:
    import guardalloc.numpy
    handler = guardalloc.numpy.installed()
    numpy_options = handler.options if handler is not None else None
except ImportError:
    pass
pool = guardalloc.pymem.pool()
print(json.dumps({
    "pymem": None if pool is None or guardalloc.pymem.state() == "off" else
             {"uaf": pool.uaf, "max_bytes": pool.max_bytes, "native_stacks": pool.native_stacks},
    "numpy": numpy_options, "report_path": guardalloc.get_report_path(),
}))
"""


def test_guard_flags_apply_to_the_pymem_pool(tmp_path):
    script = write(tmp_path / "prog.py", POOLS)
    proc = launch("--pymem", "7", "--uaf", "--max-bytes", "64M", "--no-native-stacks",
                  "--log-path", str(tmp_path / "r.%p.json"), script, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["pymem"] == {"uaf": True, "max_bytes": 64 << 20, "native_stacks": False}
    assert seen["report_path"] == str(tmp_path / "r.%p.json")


def test_guard_flags_apply_to_the_numpy_pool(tmp_path):
    pytest.importorskip("numpy")
    pytest.importorskip("guardalloc.numpy")
    script = write(tmp_path / "prog.py", POOLS)
    proc = launch("--pymem", "0", "--numpy", "--uaf", "--alignment", "1", "--align", "left",
                  "--on-fault", "continue", "--quarantine", "8", script, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["pymem"] is None
    options = seen["numpy"]
    assert (options["uaf"], options["alignment"], options["align"], options["on_fault"],
            options["quarantine"]) == (True, 1, "left", "continue", 8)


def test_use_after_free_is_caught_with_uaf_and_not_without(tmp_path):
    """run --uaf guards the PyMem pool's freed blocks: a read after free
    faults; its bug-free twin (read before the free) runs silently."""
    body = """
        import ctypes
        api = ctypes.pythonapi
        api.PyMem_Malloc.restype = ctypes.c_void_p
        api.PyMem_Malloc.argtypes = [ctypes.c_size_t]
        api.PyMem_Free.argtypes = [ctypes.c_void_p]
        p = api.PyMem_Malloc(64)
        ctypes.memset(p, 1, 64)
        {before}
        api.PyMem_Free(p)
        {after}
        print("done", flush=True)
    """
    read = "print(ctypes.string_at(p, 1), flush=True)"
    buggy = write(tmp_path / "buggy.py", body.format(before="", after=read))
    proc = launch("--pymem", "1", "--uaf", buggy, cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "guardalloc: use-after-free READ" in proc.stderr
    twin = write(tmp_path / "twin.py", body.format(before=read, after=""))
    proc = launch("--pymem", "1", "--uaf", twin, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "b'\\x01'\ndone\n" and proc.stderr == ""


def test_log_path_gets_the_report_of_a_pymem_fault(tmp_path):
    script = write(tmp_path / "prog.py", """
        import ctypes
        api = ctypes.pythonapi
        api.PyMem_Malloc.restype = ctypes.c_void_p
        p = api.PyMem_Malloc(ctypes.c_size_t(64))
        ctypes.memset(p, 0, 64 + 4096)
    """)
    proc = launch("--pymem", "1", "--log-path", str(tmp_path / "r.%p.json"), script, cwd=str(tmp_path))
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    reports = [json.loads(line) for path in tmp_path.glob("r.*.json") for line in path.read_text().splitlines()]
    assert [r["kind"] for r in reports] == ["heap-buffer-overflow"]


@pytest.mark.parametrize("args, message", [
    (("--pymem", "0", "--uaf"), "--uaf needs --pymem RATE or --numpy or --native"),
    (("--alignment", "1"), "--alignment needs --numpy or --native"),
    (("--on-fault", "continue"), "--on-fault needs --numpy or --native"),
    (("--align", "left"), "--align needs --numpy or --native"),
    (("--quarantine", "8"), "--quarantine needs --numpy or --native"),
    (("--pymem", "0", "--log-path", "r.json"), "--log-path needs --pymem/--numpy or --native"),
    (("--pymem", "0", "--random"), "--random needs --pymem RATE or --native"),
])
def test_guard_flags_no_front_end_takes_are_refused(tmp_path, args, message):
    script = write(tmp_path / "prog.py", "print('ran')")
    proc = launch(*args, script, cwd=str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"python -m guardalloc run: {message}: nothing in this run takes it\n"


def test_a_pool_refusing_a_flag_value_is_one_line(tmp_path):
    pytest.importorskip("numpy")
    pytest.importorskip("guardalloc.numpy")
    script = write(tmp_path / "prog.py", "print('ran')")
    proc = launch("--numpy", "--alignment", "8", script, cwd=str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("python -m guardalloc run: --numpy: alignment must be 1 (byte-exact)")
    assert proc.stderr.count("\n") == 1


def test_an_uncaught_keyboard_interrupt_ends_by_sigint_as_python_does(tmp_path):
    (tmp_path / "interrupted.py").write_text("raise KeyboardInterrupt\n")
    plain = subprocess.run([sys.executable, "interrupted.py"], cwd=tmp_path, capture_output=True, text=True)
    result = launch("interrupted.py", cwd=str(tmp_path))
    assert result.returncode == plain.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in result.stderr


def test_a_scripts_traceback_names_it_by_its_absolute_path_as_python_does(tmp_path):
    (tmp_path / "failing.py").write_text("raise ValueError('no')\n")
    plain = subprocess.run([sys.executable, "failing.py"], cwd=tmp_path, capture_output=True, text=True)
    result = launch("failing.py", cwd=str(tmp_path))
    assert f'File "{tmp_path / "failing.py"}", line 1' in result.stderr
    assert result.stderr.splitlines()[-3:] == plain.stderr.splitlines()[-3:]

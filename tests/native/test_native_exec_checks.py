"""``guardalloc exec`` guards every allocation by default, and refuses, with
one line and exit status 2, what it cannot guard: a statically linked
program, a setuid/setgid program not run by its owner, and a Python
interpreter under alignment=1 (refused by ``run --native`` and the pytest
plugin's native mode too)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from guardalloc import native
from native_support import CORPUS, build  # noqa: F401 (build: a fixture)

HELLO = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"


def _cli(*args, env=None, **kwargs):
    full = dict(os.environ if env is None else env)
    full.pop("PYTHONFAULTHANDLER", None)
    full.pop("GUARDALLOC_OPTIONS", None)
    return subprocess.run([sys.executable, "-m", "guardalloc", *args], capture_output=True, text=True,
                          timeout=300, env=full, **kwargs)


def _compile(tmp_path, name, *flags):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / f"{name}.c"
    source.write_text(HELLO)
    target = tmp_path / name
    done = subprocess.run(["gcc", *flags, "-o", str(target), str(source)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot link {' '.join(flags) or 'a program'} here: {done.stderr.strip()[-200:]}")
    return str(target)


def test_exec_guards_every_allocation_by_default(build):
    # One small overflow in a program that allocates once: found only when
    # every allocation is guarded.
    program = build(os.path.join(CORPUS, "overflow_write.c"))
    result = _cli("exec", "--alignment", "1", "--", program)
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "heap-buffer-overflow WRITE" in result.stderr


def test_exec_sampling_stays_available(build):
    program = build(os.path.join(CORPUS, "overflow_write.c"))
    result = _cli("exec", "--sample-rate", "0", "--", program)
    assert result.returncode == 0, result.stderr
    # sample_rate from the environment is kept too
    env = dict(os.environ, GUARDALLOC_OPTIONS="sample_rate=0")
    env.pop("PYTHONFAULTHANDLER", None)
    result = subprocess.run([sys.executable, "-m", "guardalloc", "exec", "--", program], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_exec_refuses_a_static_program(tmp_path):
    program = _compile(tmp_path, "static_hello", "-static")
    result = _cli("exec", "--", program)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and result.stdout == ""
    assert len(lines) == 1 and "statically linked" in lines[0] and "LD_PRELOAD" in lines[0], lines
    # its dynamic twin runs
    dynamic = _compile(tmp_path, "dynamic_hello")
    result = _cli("exec", "--", dynamic)
    assert result.returncode == 0 and result.stdout == "hello\n", result.stderr


def test_exec_refuses_a_static_program_behind_a_script(tmp_path):
    program = _compile(tmp_path, "static_hello", "-static")
    script = tmp_path / "wrapper"
    script.write_text(f"#!{program}\n")
    script.chmod(0o755)
    result = _cli("exec", "--", str(script))
    assert result.returncode == 2 and "statically linked" in result.stderr


def test_exec_refuses_setuid_of_another_user(tmp_path, monkeypatch):
    program = _compile(tmp_path, "suid_hello")
    os.chmod(program, 0o4755)
    # As seen by another user than the owner (this test's euid, shifted).
    owner = os.stat(program).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    problem = native.unguardable(program, dict(os.environ))
    assert problem is not None and "setuid" in problem and "ignores LD_PRELOAD" in problem
    monkeypatch.undo()
    assert native.unguardable(program, dict(os.environ)) is None     # its owner may


@pytest.mark.skipif(os.geteuid() != 0, reason="making a program setuid to another user needs root")
def test_exec_refuses_a_real_setuid_program(tmp_path):
    program = _compile(tmp_path, "suid_hello")
    os.chmod(tmp_path, 0o755)
    os.chown(program, 65534, 65534)     # nobody
    os.chmod(program, 0o4755)
    result = _cli("exec", "--", program)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "setuid" in lines[0], result.stderr


def test_exec_refuses_setgid_of_another_group(tmp_path, monkeypatch):
    program = _compile(tmp_path, "sgid_hello")
    os.chmod(program, 0o2755)
    group = os.stat(program).st_gid
    monkeypatch.setattr(os, "getegid", lambda: group + 1)
    problem = native.unguardable(program, dict(os.environ))
    assert problem is not None and "setgid" in problem


def test_elf_probe():
    assert native._elf_interpreter(sys.executable) is True
    assert native._elf_interpreter(__file__) is None


def test_exec_refuses_python_with_alignment_1():
    result = _cli("exec", "--alignment", "1", "--", sys.executable, "-c", "print('ran')")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "ran" not in result.stdout
    assert len(lines) == 1 and "alignment=1 cannot run a Python interpreter" in lines[0], lines
    # alignment 2 runs
    result = _cli("exec", "--alignment", "2", "--", sys.executable, "-c", "print('ran')")
    assert result.returncode == 0 and result.stdout == "ran\n", result.stderr


def test_exec_refuses_python_script_with_alignment_1(tmp_path):
    script = tmp_path / "tool"
    script.write_text(f"#!{sys.executable}\nprint('ran')\n")
    script.chmod(0o755)
    result = _cli("exec", "--alignment", "1", "--", str(script))
    assert result.returncode == 2 and "cannot run a Python interpreter" in result.stderr


def test_run_native_refuses_alignment_1(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("print('ran')\n")
    result = _cli("run", "--native", "1", "--alignment", "1", str(script))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "ran" not in result.stdout
    assert len(lines) == 1 and "alignment=1 cannot run a Python interpreter" in lines[0], lines


def test_plugin_native_mode_refuses_alignment_1(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--guardalloc-native=1", "--guardalloc-alignment=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "alignment=1 cannot run a Python interpreter" in result.stderr.str()


def test_python_alignment_error():
    assert native.python_alignment_error("sample_rate=1:alignment=1") is not None
    assert native.python_alignment_error("sample_rate=0:alignment=1") is None      # guards nothing
    assert native.python_alignment_error("alignment=1:alignment=16") is None       # the last wins
    assert native.python_alignment_error("sample_rate=1") is None

"""Fault reports: every error kind in a child process, continue mode, and the
handler's manners towards the dispositions it found (SIG_DFL, faulthandler)."""

from __future__ import annotations

import json
import re
import signal

import pytest

import guardalloc

HAVE_GUARDS = guardalloc.support().anonymous
GUARD_BACKENDS = ["madvise", "mprotect"] if HAVE_GUARDS else ["mprotect"]

# The child prints the addresses it is about to touch (one JSON line on
# stdout), then faults. PRELUDE gives it an arena built from argv[1] (JSON
# keyword arguments) and helpers that touch one byte.
PRELUDE = """
import ctypes, json, sys, guardalloc
kwargs = json.loads(sys.argv[1])
arena = guardalloc.Arena(4096, 8, **kwargs)

def tell(**values):
    print(json.dumps(values, default=dict), flush=True)   # stats objects are mappings

def write(address):
    ctypes.memset(address, 0x41, 1)

def read(address):
    return ctypes.string_at(address, 1)
"""


def run(child, body: str, *, python_args=(), env=None, **arena_kwargs):
    result = child(PRELUDE + body, json.dumps(arena_kwargs), python_args=python_args, env=env)
    told = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (told[0] if told else {})


def header(result) -> str:
    """The report's first line."""
    lines = [line for line in result.stderr.splitlines() if "== guardalloc: " in line]
    assert lines, result.stderr
    return lines[0]


def reports(result) -> int:
    return len(re.findall(r"^==\d+== guardalloc: ", result.stderr, re.M))


# -- one report per error kind ----------------------------------------------------

@pytest.mark.parametrize("backend", GUARD_BACKENDS)
def test_overflow_write_says_how_far_past_which_buffer(child, backend):
    result, told = run(child, """
buf = arena.alloc(4000)
tell(start=buf.address, end=buf.address + 4000, base=arena.address)
write(buf.address + 4000)
""", backend=backend, alignment=1)
    assert result.returncode == -signal.SIGSEGV
    start, end = told["start"], told["end"]
    assert header(result).endswith(f"== guardalloc: heap-buffer-overflow WRITE at {end:#x}")
    assert f"  0 bytes past the end of a 4000-byte buffer [{start:#x}, {end:#x})\n" in result.stderr
    assert f"  arena {told['base']:#x}, slot 0 of 8 (slot 4096 B, 1 guard page)\n" in result.stderr
    code = "SEGV_MAPERR: guard page" if backend == "madvise" else "SEGV_ACCERR: PROT_NONE page"
    assert f"signal SIGSEGV ({code})" in result.stderr


@pytest.mark.parametrize("backend", GUARD_BACKENDS)
def test_overflow_read_counts_the_slack_bytes(child, backend):
    # alignment=16: a 100-byte buffer is padded to 112, so the guard starts
    # 12 bytes past its end; reading 3 bytes into the guard is 15 bytes past.
    result, told = run(child, """
buf = arena.alloc(100)
tell(start=buf.address, slot_end=arena.slot_address(buf.slot) + arena.slot_size)
read(arena.slot_address(buf.slot) + arena.slot_size + 3)
""", backend=backend, alignment=16)
    assert result.returncode == -signal.SIGSEGV
    start = told["start"]
    assert header(result).endswith(f"heap-buffer-overflow READ at {told['slot_end'] + 3:#x}")
    assert f"  15 bytes past the end of a 100-byte buffer [{start:#x}, {start + 100:#x})\n" in result.stderr


def test_report_header_carries_the_pid(child):
    result, _ = run(child, """
import os
tell(pid=os.getpid())
buf = arena.alloc(1)
write(buf.address + 1)
""", alignment=1)
    pid = json.loads(result.stdout.splitlines()[0])["pid"]
    assert header(result).startswith(f"=={pid}== guardalloc: heap-buffer-overflow WRITE at 0x")


@pytest.mark.parametrize("backend", GUARD_BACKENDS)
def test_underflow_of_a_left_aligned_buffer(child, backend):
    result, told = run(child, """
before = arena.alloc(10)      # slot 0, live: the guard is shared
buf = arena.alloc(100)
tell(start=buf.address)
write(buf.address - 5)
""", backend=backend, align="left")
    assert result.returncode == -signal.SIGSEGV
    start = told["start"]
    assert header(result).endswith(f"heap-buffer-underflow WRITE at {start - 5:#x}")
    assert f"  5 bytes before the start of a 100-byte buffer [{start:#x}, {start + 100:#x})\n" in result.stderr
    assert ", slot 1 of 8 (" in result.stderr


@pytest.mark.parametrize("backend", GUARD_BACKENDS)
def test_use_after_free_shows_allocation_and_free_tracebacks(child, backend):
    result, told = run(child, """
def make_buffer():
    return arena.alloc(64)

def drop_buffer(buf):
    buf.free()

buf = make_buffer()
address = buf.address
drop_buffer(buf)
tell(start=address)
read(address + 10)
""", backend=backend, uaf=True, tracebacks=True)
    assert result.returncode == -signal.SIGSEGV
    start = told["start"]
    assert header(result).endswith(f"use-after-free READ at {start + 10:#x}")
    assert f"  10 bytes inside a freed 64-byte buffer [{start:#x}, {start + 64:#x})\n" in result.stderr
    allocated = result.stderr.index("  allocated at:\n")
    freed = result.stderr.index("  freed at:\n")
    assert allocated < freed
    alloc_trace, free_trace = result.stderr[allocated:freed], result.stderr[freed:]
    # Innermost frame first and numbered, like the native frames.
    module = r'    #1 in <module> <string>:\d+( \(called from C\))?\n'   # run by C: exec
    assert re.search(r'    #0 in make_buffer <string>:\d+\n' + module, alloc_trace)
    assert re.search(r'    #0 in drop_buffer <string>:\d+\n' + module, free_trace)


def test_tracebacks_are_off_by_default_and_the_report_says_how_to_turn_them_on(child):
    result, _ = run(child, """
buf = arena.alloc(8)
write(buf.address + 8)
""", alignment=1)
    assert result.returncode == -signal.SIGSEGV
    assert "  allocated at: (not recorded: Arena(tracebacks=True) or guardalloc.enable_tracebacks())\n" \
        in result.stderr


def test_global_traceback_setting_applies_to_arenas_that_do_not_choose(child):
    result = child("""
import ctypes, guardalloc
guardalloc.enable_tracebacks()
arena = guardalloc.Arena(4096, 2, alignment=1)
def allocate_here():
    return arena.alloc(8)
buf = allocate_here()
ctypes.memset(buf.address + 8, 0, 1)
""")
    assert result.returncode == -signal.SIGSEGV
    assert re.search(r'  allocated at:\n    #0 in allocate_here <string>:\d+\n'
                     r'    #1 in <module> <string>:\d+( \(called from C\))?\n',
                     result.stderr)


def test_wild_access_to_a_guard_between_free_slots(child):
    result, told = run(child, """
target = arena.slot_address(3) - 1
tell(target=target)
write(target)
""")
    assert result.returncode == -signal.SIGSEGV
    assert header(result).endswith(f"wild-access WRITE at {told['target']:#x}")
    assert "  guard page between slot 2 (free) and slot 3 (free): no live buffer next to it\n" in result.stderr
    assert ", 8 slots (slot 4096 B, 1 guard page)\n" in result.stderr


@pytest.mark.skipif(not HAVE_GUARDS, reason="kernel without MADV_GUARD_INSTALL")
@pytest.mark.parametrize("on_fault", ["abort", "continue"])
@pytest.mark.parametrize("where", ["data", "guard"])
def test_wild_access_into_the_never_opened_tail(child, on_fault, where):
    """Past the lazily opened slots of a large arena the pages are PROT_NONE:
    a wild access there is reported (SEGV_ACCERR) and, having no guard to
    lift, ends the process even in continue mode."""
    result, told = run(child, f"""
big = guardalloc.Arena(4096, 5000, backend="madvise", on_fault={on_fault!r})
big.alloc(8)
target = big.slot_address(3000) - ({where!r} == "guard")
tell(target=target)
write(target)
""")
    assert result.returncode == -signal.SIGSEGV
    assert header(result).endswith(f"wild-access WRITE at {told['target']:#x}")
    assert "SEGV_ACCERR" in result.stderr
    assert "guard lifted" not in result.stderr


def test_wild_access_to_the_guard_before_the_first_slot(child):
    result, _ = run(child, "write(arena.address)\n")
    assert result.returncode == -signal.SIGSEGV
    assert "guard page between the arena's edge and slot 0 (free)" in result.stderr


def test_far_underflow_of_a_right_aligned_buffer_is_blamed_on_it(child):
    result, told = run(child, """
buf = arena.alloc(100)
tell(start=buf.address, slot_start=arena.slot_address(buf.slot))
write(arena.slot_address(buf.slot) - 1)
""", alignment=1)
    start = told["start"]
    distance = start - (told["slot_start"] - 1)
    assert header(result).endswith(f"heap-buffer-underflow WRITE at {told['slot_start'] - 1:#x}")
    assert f"  {distance} bytes before the start of a 100-byte buffer" in result.stderr


def test_two_guard_pages(child):
    result, _ = run(child, "buf = arena.alloc(1)\nwrite(buf.address + 1 + 4096)\n", alignment=1, guard_pages=2)
    assert result.returncode == -signal.SIGSEGV
    assert "  4096 bytes past the end of a 1-byte buffer" in result.stderr
    assert "(slot 4096 B, 2 guard pages)" in result.stderr


def test_bus_error_on_a_truncated_file_arena(child):
    result = child("""
import ctypes, os, tempfile, guardalloc
# A path-backed arena: guardalloc's own memfds are sealed against shrinking.
path = os.path.join(tempfile.mkdtemp(), "arena")
arena = guardalloc.Arena(4096, 4, file=path, alignment=1)
buf = arena.alloc(100)
os.truncate(path, 0)
ctypes.string_at(buf.address + 1, 1)
""")
    assert result.returncode == -signal.SIGBUS
    assert "== guardalloc: bus-error READ at 0x" in result.stderr
    assert "  1 bytes inside a 100-byte buffer" in result.stderr
    assert "signal SIGBUS (BUS_ADRERR)" in result.stderr


def test_fault_in_a_thread_without_an_alternate_stack(child):
    result, told = run(child, """
import threading
buf = arena.alloc(32)
tell(end=buf.address + 32)
thread = threading.Thread(target=write, args=(buf.address + 32,))
thread.start()
thread.join()
""", alignment=1)
    assert result.returncode == -signal.SIGSEGV
    assert header(result).endswith(f"heap-buffer-overflow WRITE at {told['end']:#x}")


# -- continue mode ----------------------------------------------------------------

def test_continue_mode_reports_once_per_slot_retires_and_counts(child):
    result, told = run(child, """
a = arena.alloc(100)          # slot 0
b = arena.alloc(100)          # slot 1, behind the guard a overflows into
write(a.address + 100)        # reported; guard lifted; slots 0 and 1 retired
write(a.address + 101)        # no fault any more: the guard is gone
write(a.address + 100 + 4096 + 5)   # inside slot 1's data: no fault either
c = arena.alloc(50)           # slot 2
address = c.address
c.free()
read(address)                 # use-after-free, reported, then zeros
second = read(address + 1)
stats = arena.stats()
a.free(); b.free()
after = arena.stats()
fresh = sorted(buf.slot for buf in [arena.alloc(1) for _ in range(after["free"])])
tell(stats=stats, after=after, fresh=fresh, second=second.hex())
""", alignment=1, uaf=True, quarantine=0, on_fault="continue")
    assert result.returncode == 0, result.stderr
    assert reports(result) == 2
    assert "heap-buffer-overflow WRITE" in result.stderr
    assert "use-after-free READ" in result.stderr
    assert 'on_fault="continue": guard lifted, slot(s) 0 and 1 retired; the program goes on' in result.stderr
    assert 'on_fault="continue": guard lifted, slot(s) 2 retired; the program goes on' in result.stderr
    assert told["stats"]["faults_continued"] == 2
    assert told["stats"]["retired"] == 1          # slot 2; 0 and 1 are live, marked to retire
    assert told["after"]["retired"] == 3 and told["after"]["live"] == 0
    assert told["fresh"] == [3, 4, 5, 6, 7]       # retired slots are never handed out
    assert told["second"] == "00"                 # the lifted pages come back zero-filled


def test_continue_mode_on_a_slot_already_reported_stays_quiet(child):
    # Slot 0 overflows (reported), then underflows into the leading guard:
    # lifted and counted, but not reported again.
    result, told = run(child, """
a = arena.alloc(100)
write(a.address + 100)
write(arena.slot_address(0) - 1)
tell(stats=arena.stats())
""", alignment=1, on_fault="continue")
    assert result.returncode == 0, result.stderr
    assert reports(result) == 1
    assert told["stats"]["faults_continued"] == 2


@pytest.mark.parametrize("backend", GUARD_BACKENDS)
def test_continue_mode_lifts_the_guard_of_either_backend(child, backend):
    result, told = run(child, """
buf = arena.alloc(10)
write(buf.address + 10)
write(arena.slot_address(5) - 1)     # wild, between free slots 4 and 5
tell(stats=arena.stats())
""", backend=backend, alignment=1, on_fault="continue")
    assert result.returncode == 0, result.stderr
    assert reports(result) == 2
    assert "guard page between slot 4 (free) and slot 5 (free)" in result.stderr
    assert told["stats"]["faults_continued"] == 2
    assert told["stats"]["retired"] == 3         # 1, 4 and 5; slot 0 is live


def test_abort_mode_dies_even_when_another_arena_continues(child):
    result = child("""
import ctypes, guardalloc
tolerant = guardalloc.Arena(4096, 2, alignment=1, on_fault="continue")
strict = guardalloc.Arena(4096, 2, alignment=1)
kept = tolerant.alloc(1)
ctypes.memset(kept.address + 1, 0, 1)
print("continued", flush=True)
buf = strict.alloc(1)
ctypes.memset(buf.address + 1, 0, 1)
print("not reached", flush=True)
""")
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == "continued\n"
    assert reports(result) == 2


# -- the default, and opting out ---------------------------------------------------

def test_the_first_arena_enables_reports(child):
    result = child("""
import guardalloc
before = guardalloc.reports_enabled()
arena = guardalloc.Arena(4096, 1)
print(before, guardalloc.reports_enabled(), guardalloc.faults._handler_on_top())
""")
    assert result.stdout.split() == ["False", "True", "True"], result.stderr


def test_environment_variable_opts_out_and_enable_reports_opts_back_in(child):
    body = """
import ctypes, sys, guardalloc
arena = guardalloc.Arena(4096, 1, alignment=1)
print(guardalloc.reports_enabled(), flush=True)
if sys.argv[1] == "enable":
    guardalloc.enable_reports()
buf = arena.alloc(1)
ctypes.memset(buf.address + 1, 0, 1)
"""
    quiet = child(body, "no", env={"GUARDALLOC_REPORTS": "0"})
    assert quiet.returncode == -signal.SIGSEGV
    assert quiet.stdout == "False\n" and quiet.stderr == ""
    loud = child(body, "enable", env={"GUARDALLOC_REPORTS": "0"})
    assert loud.returncode == -signal.SIGSEGV
    assert "heap-buffer-overflow WRITE" in loud.stderr


def test_disable_reports_puts_the_default_disposition_back(child):
    result = child("""
import ctypes, signal, guardalloc
arena = guardalloc.Arena(4096, 1, alignment=1)
guardalloc.disable_reports()
print(guardalloc.reports_enabled(), signal.getsignal(signal.SIGSEGV) == signal.SIG_DFL, flush=True)
buf = arena.alloc(1)
ctypes.memset(buf.address + 1, 0, 1)
""")
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == "False True\n"
    assert result.stderr == ""


def test_disable_before_the_first_arena_keeps_the_handler_out(child):
    result = child("""
import guardalloc
guardalloc.disable_reports()
arena = guardalloc.Arena(4096, 1)
print(guardalloc.reports_enabled(), guardalloc.faults._handler_on_top())
""")
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_enable_reports_is_idempotent(child):
    result = child("""
import guardalloc
guardalloc.enable_reports()
guardalloc.enable_reports()
guardalloc.disable_reports()
guardalloc.enable_reports()
print(guardalloc.reports_enabled(), guardalloc.faults._handler_on_top())
""")
    assert result.stdout.split() == ["True", "True"], result.stderr


# -- faults outside arenas, and faulthandler ---------------------------------------

OUTSIDE = """
import ctypes, sys
if sys.argv[1] == "guardalloc":
    import guardalloc
    arena = guardalloc.Arena(4096, 4)
    buf = arena.alloc(10)
if sys.argv[2] == "faulthandler-after":
    import faulthandler
    faulthandler.enable()
ctypes.memset(16, 0, 1)     # a NULL-page write: no arena there
"""


def normalized(stderr: str) -> str:
    # faulthandler names the thread by its (run-dependent) pthread id.
    return re.sub(r"0x[0-9a-f]+", "0x?", stderr)


@pytest.mark.parametrize("faulthandler", ["off", "faulthandler-before", "faulthandler-after"])
def test_a_fault_outside_arenas_is_untouched(child, faulthandler):
    python_args = ("-X", "faulthandler") if faulthandler == "faulthandler-before" else ()
    ours = child(OUTSIDE, "guardalloc", faulthandler, python_args=python_args)
    if faulthandler == "off":
        control = child(OUTSIDE, "none", faulthandler, python_args=python_args)
    else:
        # Same modules loaded (faulthandler lists extension modules), but
        # the handler never installed.
        control = child(OUTSIDE, "guardalloc", faulthandler, python_args=python_args,
                        env={"GUARDALLOC_REPORTS": "0"})
    assert control.returncode == -signal.SIGSEGV
    assert ours.returncode == control.returncode
    assert normalized(ours.stderr) == normalized(control.stderr)
    if faulthandler != "off":
        assert "Fatal Python error: Segmentation fault" in ours.stderr


REPORT_WITH_FAULTHANDLER = """
import ctypes, faulthandler, sys, guardalloc
arena = guardalloc.Arena(4096, 4, alignment=1)
buf = arena.alloc(10)
if sys.argv[1] == "after":
    faulthandler.enable()
print(faulthandler.is_enabled(), flush=True)
ctypes.memset(buf.address + 10, 0, 1)
"""


@pytest.mark.parametrize("order", ["before", "after"])
def test_report_and_faulthandler_traceback_both_print(child, order):
    python_args = ("-X", "faulthandler") if order == "before" else ()
    result = child(REPORT_WITH_FAULTHANDLER, order, python_args=python_args)
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == "True\n"
    report = result.stderr.index("== guardalloc: heap-buffer-overflow WRITE at 0x")
    fatal = result.stderr.index("Fatal Python error: Segmentation fault")
    assert 'File "<string>", line 8 in <module>' in result.stderr   # the faulting line
    assert "0 bytes past the end of a 10-byte buffer" in result.stderr
    # Whoever was installed last sees the fault first.
    assert (report < fatal) if order == "before" else (fatal < report)


def test_report_without_faulthandler_prints_no_python_traceback(child):
    result = child(REPORT_WITH_FAULTHANDLER, "never")
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == "False\n"
    assert "Fatal Python error" not in result.stderr
    assert reports(result) == 1


@pytest.mark.parametrize("faulthandler", ["off", "before", "after"])
def test_a_segv_the_process_sends_itself_still_kills_it(child, faulthandler):
    # Not a fault: passed on, even right after a continued fault left the
    # arena's address in the thread's fault registers.
    code = """
import ctypes, faulthandler, os, signal, sys, guardalloc
arena = guardalloc.Arena(4096, 4, alignment=1, on_fault="continue")
buf = arena.alloc(10)
ctypes.memset(buf.address + 10, 0, 1)
if sys.argv[1] == "after":
    faulthandler.enable()
print("continued", flush=True)
os.kill(os.getpid(), signal.SIGSEGV)
print("survived", flush=True)
"""
    python_args = ("-X", "faulthandler") if faulthandler == "before" else ()
    result = child(code, faulthandler, python_args=python_args)
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == "continued\n"
    assert reports(result) == 1


def test_faulthandler_chained_above_a_continuing_arena(child):
    # faulthandler (installed after us) prints first and passes the fault on;
    # guardalloc recognises it, lifts the guard, and the program goes on.
    result = child("""
import ctypes, faulthandler, guardalloc
arena = guardalloc.Arena(4096, 4, alignment=1, on_fault="continue")
buf = arena.alloc(10)
faulthandler.enable()
ctypes.memset(buf.address + 10, 0, 1)
print(arena.stats()["faults_continued"], flush=True)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n"
    assert reports(result) == 1


HOST_HANDLER = """
import ctypes, os, signal, sys

# A host's own SA_SIGINFO handler, installed before guardalloc: it names the
# fault address the kernel gave it and exits with status 42.
libc = ctypes.CDLL(None, use_errno=True)
HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

class SigAction(ctypes.Structure):
    _fields_ = [("sa_sigaction", HANDLER), ("sa_mask", ctypes.c_ulong * 16),
                ("sa_flags", ctypes.c_int), ("sa_restorer", ctypes.c_void_p)]

@HANDLER
def host_handler(sig, info, context):
    address = ctypes.c_void_p.from_address(info + 16).value   # si_addr
    os.write(2, f"host handler: signal {sig} at {address:#x}\\n".encode())
    os._exit(42)

action = SigAction(host_handler, (ctypes.c_ulong * 16)(), 4, None)   # SA_SIGINFO
assert libc.sigaction(signal.SIGSEGV, ctypes.byref(action), None) == 0

import guardalloc
arena = guardalloc.Arena(4096, 2, alignment=1)
buf = arena.alloc(8)
target = buf.address + 8 if sys.argv[1] == "arena" else 16
ctypes.memset(target, 0, 1)
"""


def test_a_host_handler_installed_first_still_gets_every_fault(child):
    outside = child(HOST_HANDLER, "outside")
    assert outside.returncode == 42
    assert outside.stderr == "host handler: signal 11 at 0x10\n"
    inside = child(HOST_HANDLER, "arena")
    assert inside.returncode == 42
    report, host = inside.stderr.split("host handler: ")
    assert "heap-buffer-overflow WRITE at " in report
    address = report.split("WRITE at ")[1].split("\n")[0]
    assert host == f"signal 11 at {address}\n"     # the kernel's siginfo, unchanged


def test_a_slot_retired_by_continue_mode_still_catches_use_after_free(child):
    # b's slot is retired when a overflows into the guard they share; b's
    # own use-after-free later is still caught, and reported (it is b's
    # first report).
    result, told = run(child, """
def make(n):
    return arena.alloc(n)

a, b = make(10), make(20)
write(a.address + 10)
address = b.address
b.free()
read(address)
tell(stats=arena.stats())
""", alignment=1, uaf=True, on_fault="continue", tracebacks=True)
    assert result.returncode == 0, result.stderr
    assert reports(result) == 2
    assert "use-after-free READ at" in result.stderr
    assert "  0 bytes inside a freed 20-byte buffer" in result.stderr
    assert told["stats"]["retired"] == 1 and told["stats"]["faults_continued"] == 2


@pytest.mark.parametrize("order", ["before", "after"])
def test_faulthandler_disabled_again_leaves_reports_working(child, order):
    # Enabled before us, faulthandler.disable() puts SIG_DFL back over our
    # handler: reports_enabled() notices, and the next arena (or
    # enable_reports()) installs it again. Enabled after us, disable() puts
    # ours back.
    result = child("""
import ctypes, faulthandler, sys, guardalloc
first = guardalloc.Arena(4096, 1)
if sys.argv[1] == "after":
    faulthandler.enable()
faulthandler.disable()
print(guardalloc.reports_enabled(), end=" ")
arena = guardalloc.Arena(4096, 2, alignment=1)
print(guardalloc.reports_enabled(), flush=True)
buf = arena.alloc(8)
ctypes.memset(buf.address + 8, 0, 1)
""", order, python_args=("-X", "faulthandler") if order == "before" else ())
    assert result.returncode == -signal.SIGSEGV
    assert result.stdout == ("False True\n" if order == "before" else "True True\n")
    assert reports(result) == 1
    assert "Fatal Python error" not in result.stderr

"""Hostile use of the Python API: no Python code may crash the interpreter
through guardalloc (objects made with __new__ alone, init twice, subclassing),
every bad argument is a TypeError/ValueError naming the parameter, limits end
in an exception that says what to do, and probes never blame the kernel for a
missing descriptor. Anything that could crash runs in a child process."""

from __future__ import annotations

import os
import signal

import pytest

import guardalloc

PAGE = os.sysconf("SC_PAGESIZE")
np = pytest.importorskip("numpy")


def _ok(proc):
    assert proc.returncode == 0, (
        f"child died (status {proc.returncode}"
        f"{', ' + signal.Signals(-proc.returncode).name if proc.returncode < 0 else ''})\n"
        f"--- stdout tail\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


# ---------------------------------------------------------------------------
# __new__ without __init__, __init__ twice, subclassing: for every class

SWEEP = r'''
import copy, importlib, itertools, pickle, pkgutil, sys, warnings
import guardalloc
warnings.simplefilter("ignore")
SKIP_MODULES = {"guardalloc.__main__"}
ARGS = [(), (0,), (1,), (-1,), (4096,), (2**64,), (-2**70,), (None,), ("x",), (b"x",), (1.5,),
        (0, 0), (4096, 1), (-1, -1), (None, None)]
classes = {}
for info in pkgutil.walk_packages(guardalloc.__path__, "guardalloc."):
    if info.name in SKIP_MODULES or info.name.rsplit(".", 1)[-1].startswith("lib"):
        continue        # running the CLI; the C core library (no Python module)
    module = importlib.import_module(info.name)
    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == info.name:
            classes[f"{info.name}.{value.__qualname__}"] = value
print("classes", len(classes), flush=True)

def attempt(label, action):
    print(label, flush=True)       # the last line names the culprit of a signal
    try:
        return action()
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return exc

def operations(obj):
    yield "repr", lambda: repr(obj)
    yield "str", lambda: str(obj)
    yield "len", lambda: len(obj)
    yield "bool", lambda: bool(obj)
    yield "hash", lambda: hash(obj)
    yield "eq", lambda: obj == obj
    yield "iter", lambda: list(itertools.islice(iter(obj), 3))
    yield "getitem", lambda: obj[0]
    yield "setitem", lambda: obj.__setitem__(0, 0)
    yield "contains", lambda: 0 in obj
    yield "memoryview", lambda: memoryview(obj).release()
    yield "pickle", lambda: pickle.dumps(obj)
    yield "copy", lambda: copy.copy(obj)
    yield "enter", lambda: obj.__enter__()
    yield "exit", lambda: obj.__exit__(None, None, None)
    for name in sorted(dir(type(obj))):
        if name.startswith("_"):
            continue
        attr = attempt(f"  getattr {name}", lambda: getattr(obj, name))
        if callable(attr) and not isinstance(attr, type):
            for args in ARGS:
                yield f"{name}{args!r}", lambda attr=attr, args=args: attr(*args)

for qualname, cls in sorted(classes.items()):
    obj = attempt(f"{qualname}.__new__", lambda: cls.__new__(cls))
    if isinstance(obj, BaseException) or not isinstance(obj, cls):
        continue
    for label, action in operations(obj):
        attempt(f"  {qualname} {label}", action)
    for args in ARGS:
        attempt(f"  {qualname}.__init__{args!r}", lambda: obj.__init__(*args))
    for label, action in operations(obj):      # and once more, half-initialised or not
        attempt(f"  {qualname} again {label}", action)
    del obj
print("sweep done", len(classes), flush=True)
'''


def test_every_class_survives_new_without_init(child):
    proc = _ok(child(SWEEP, timeout=600))
    assert proc.stdout.rstrip().endswith(f"sweep done {proc.stdout.split()[1]}")
    # The sweep saw the extension types and the Python classes alike.
    for name in ("guardalloc.arena.Buffer", "guardalloc.arena.Arena", "guardalloc.pool.Pool",
                 "guardalloc.hooks._numpy_handler.Handler", "guardalloc.shared.SharedArena",
                 "guardalloc.introspect.probe.Support", "guardalloc.options.GuardOptions",
                 "guardalloc.introspect.pagemap.GuardRuns", "guardalloc.introspect.pagemap.Ranges"):
        assert f"{name}.__new__" in proc.stdout


def test_issue_examples_of_new_without_init(child):
    proc = _ok(child("""
        from guardalloc import Buffer
        from guardalloc.numpy import Handler
        views = []
        for _ in range(512):
            try:
                views.append(memoryview(Buffer.__new__(Buffer)))
            except ValueError as exc:
                error = exc
        print(type(None).__name__, "not made by an arena" in str(error))
        try:
            Buffer.__new__(Buffer).free()
        except ValueError as exc:
            print("free", "Buffer.__new__" in str(exc))
        h = Handler.__new__(Handler)
        for action in (lambda: h.owns(0), lambda: h.name, lambda: h.block_size(0), h.pool_stats, h.stats):
            try:
                action()
            except ValueError as exc:
                print("handler", "handler()" in str(exc))
        print(repr(h))
    """))
    lines = proc.stdout.splitlines()
    assert lines[0] == "NoneType True" and lines[1] == "free True"
    assert lines[2:7] == ["handler True"] * 5 and "not made by" in lines[7]


def test_init_twice_is_refused():
    arena = guardalloc.Arena(PAGE, 2)
    with pytest.raises(RuntimeError, match="twice"):
        arena.__init__(PAGE, 2)
    pool = guardalloc.Pool(max_bytes=1 << 20)
    with pytest.raises(RuntimeError, match="twice"):
        pool.__init__()
    shared = guardalloc.SharedArena(PAGE, 2)
    with pytest.raises(RuntimeError, match="twice"):
        shared.__init__(PAGE, 2)
    buf = arena.alloc(10)
    with pytest.raises(TypeError, match="cannot be created directly"):
        buf.__init__()
    for made in (shared, pool, arena):
        made.close()


@pytest.mark.parametrize("cls", [guardalloc.Arena, guardalloc.Buffer, guardalloc.Pool,
                                 pytest.param("Handler", id="Handler"), pytest.param("GuardRuns", id="GuardRuns")])
def test_extension_types_cannot_be_subclassed(cls):
    if cls == "Handler":
        from guardalloc.numpy import Handler as cls
    elif cls == "GuardRuns":
        from guardalloc.maps import GuardRuns as cls
    with pytest.raises(TypeError):
        type("Sub", (cls,), {})


# ---------------------------------------------------------------------------
# Hostile arguments to every public callable (in a child: a crash is possible)

HOSTILE = r'''
import math, sys, warnings
import numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck
import guardalloc, guardalloc.maps as maps, guardalloc.numpy as gnp, guardalloc.pymem as pymem
warnings.simplefilter("ignore")
PAGE = 4096
arena = guardalloc.Arena(PAGE, 4)
pool = guardalloc.Pool(max_bytes=1 << 22)
shared = guardalloc.SharedArena(PAGE, 2)
ranges = maps.guard_pages(arena.address, arena.address + arena.size)
handler = gnp.handler()
ALLOWED = (TypeError, ValueError, MemoryError, guardalloc.GuardError, ProcessLookupError, PermissionError)

def made(x):   # free what a successful call made, so that the child does not fill up
    for method in ("free", "close"):
        if hasattr(x, method) and not isinstance(x, type):
            try:
                getattr(x, method)()
            except Exception:
                pass
    return x

# (name, callable, {parameter: valid value}); each parameter in turn gets a hostile value.
TARGETS = [
    ("Arena", lambda **k: made(guardalloc.Arena(**k)),
     dict(slot_size=PAGE, slots=2, guard_pages=1, backend="auto", align="right", alignment=16,
          batch=True, uaf=False, quarantine=None, tracebacks=None, on_fault="abort", shared=True)),
    ("Pool", lambda **k: made(guardalloc.Pool(**k)),
     dict(guard_pages=1, backend="auto", align="right", alignment=16, uaf=False, quarantine=None,
          tracebacks=None, on_fault="abort", max_bytes=1 << 20, max_arenas=16, grow="sync")),
    ("SharedArena", lambda **k: made(guardalloc.SharedArena(**k)),
     dict(slot_size=PAGE, slots=2, guard_pages=1, align="right", alignment=16, uaf=False)),
    ("configure", guardalloc.configure, dict(max_bytes=1 << 20, guard_pages=1, uaf=False)),
    ("alloc", lambda **k: made(guardalloc.alloc(**k)), dict(nbytes=10, zero=True)),
    ("Arena.alloc", lambda **k: made(arena.alloc(**k)), dict(nbytes=10, zero=True, slot=None)),
    ("Arena.alloc_raw", lambda **k: arena.free(arena.alloc_raw(**k)), dict(nbytes=10, zero=True)),
    ("Arena.slot_of", arena.slot_of, dict(address=0)),
    ("Arena.owns", arena.owns, dict(address=0)),
    ("Arena.block_size", arena.block_size, dict(address=0)),
    ("Arena.slot_address", arena.slot_address, dict(slot=0)),
    ("Arena.free", arena.free, dict(buffer=0)),
    ("Pool.alloc", lambda **k: made(pool.alloc(**k)), dict(nbytes=10, zero=True)),
    ("Pool.alloc_raw", lambda **k: pool.free(pool.alloc_raw(**k)), dict(nbytes=10, zero=True)),
    ("Pool.owns", pool.owns, dict(address=0)),
    ("Pool.block_size", pool.block_size, dict(address=0)),
    ("Pool.prepare", pool.prepare, dict(nbytes=10, arenas=1)),
    ("Pool.slot_size_for", guardalloc.Pool.slot_size_for, dict(nbytes=10)),
    ("Pool.realloc_raw", lambda **k: pool.free(pool.realloc_raw(**k)), dict(address=0, nbytes=10)),
    ("Pool.free", pool.free, dict(buffer=0)),
    ("SharedArena.alloc", lambda **k: made(shared.alloc(**k)), dict(nbytes=10, slot=None, zero=True)),
    ("SharedArena.attach", lambda **k: made(shared.attach(**k)), dict(slot=1, nbytes=10)),
    ("numpy.handler", gnp.handler, dict(alignment=16, fallback=False, strict=False, guard_pages=1,
                                        max_bytes=1 << 20, uaf=False)),
    ("numpy.guarded", gnp.guarded, dict(alignment=16, fallback=False, strict=False, max_bytes=1 << 20)),
    ("numpy.install", lambda **k: (gnp.install(**k), gnp.uninstall()), dict(alignment=16, strict=False,
                                                                        max_bytes=1 << 20)),
    ("Handler.owns", handler.owns, dict(address=0)),
    ("Handler.block_size", handler.block_size, dict(address=0)),
    ("pymem.install", lambda **k: (pymem.install(**k), pymem.uninstall()),
     dict(sample_rate=1000, max_bytes=1 << 20, random=False, seed=None, alignment=16, uaf=False,
          guard_pages=1)),
    ("support", guardalloc.support, dict(refresh=False)),
    ("set_tracebacks", guardalloc.arena.set_tracebacks if hasattr(guardalloc.arena, "set_tracebacks")
     else guardalloc.set_tracebacks, dict(enabled=False)),
    ("maps.vma_count", maps.vma_count, dict(pid="self")),
    ("maps.vmas", maps.vmas, dict(pid="self")),
    ("maps.vmas_in_range", maps.vmas_in_range, dict(start=0, end=PAGE, pid="self")),
    ("maps.guard_pages", maps.guard_pages, dict(start=arena.address, end=arena.address + arena.size,
                                               pid="self", method="auto")),
    ("maps.readable_ranges", maps.readable_ranges, dict(pid="self", method="auto")),
    ("Ranges.within", ranges.within, dict(start=0, end=2**63)),
]

class Index:
    def __init__(self, value): self.value = value
    def __index__(self): return self.value

VALUES = st.one_of(
    st.sampled_from([None, True, False, 1.5, math.nan, math.inf, "1", "", "auto", "bogus", b"1", [], (),
                     {}, object(), 0, -1, 1, 2**31, 2**32, 2**63, 2**64, 2**100, -2**100, np.int64(4),
                     np.float64(2.0), Index(-1), Index(2**70)]),
    st.integers(), st.text(max_size=3))

failures = []

@settings(max_examples=int(sys.argv[1]), deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(target=st.sampled_from(TARGETS), data=st.data())
def hostile(target, data):
    name, function, valid = target
    parameter = data.draw(st.sampled_from(sorted(valid)))
    value = data.draw(VALUES)
    kwargs = dict(valid, **{parameter: value})
    try:
        function(**kwargs)
    except ALLOWED as exc:
        text = str(exc).lower()
        if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, guardalloc.GuardError) \
                and parameter.lower() not in text and not (parameter == "buffer" and "free()" in text):
            failures.append(f"{name}({parameter}={value!r}): {type(exc).__name__} does not name it: {exc}")
    except Exception as exc:
        failures.append(f"{name}({parameter}={value!r}): {type(exc).__name__}: {exc}")

hostile()
for line in sorted(set(failures)):
    print("FAIL", line)
print("done", flush=True)
'''


def test_hostile_arguments_get_named_type_and_value_errors(child):
    proc = _ok(child(HOSTILE, "1500", timeout=900))
    assert proc.stdout.splitlines()[-1] == "done"
    assert [line for line in proc.stdout.splitlines() if line.startswith("FAIL")] == []


@pytest.mark.parametrize("call, parameter", [
    (lambda: guardalloc.Arena("4096", 10), "slot_size"),
    (lambda: guardalloc.Arena(4096.7, 10), "slot_size"),
    (lambda: guardalloc.Arena(True, 10), "slot_size"),
    (lambda: guardalloc.Arena("a", 10), "slot_size"),
    (lambda: guardalloc.Arena(4096, 10, guard_pages=0), "guard_pages"),
    (lambda: guardalloc.Arena(4096, 10, guard_pages=2**40), "guard_pages"),
    (lambda: guardalloc.alloc(10, zero="yes"), "zero"),
    (lambda: guardalloc.configure(bogus=1), "bogus"),
    (lambda: guardalloc.numpy.guarded(bogus=1), "bogus"),
    (lambda: guardalloc.numpy.install(strict=1), "strict"),
    (lambda: guardalloc.support(refresh="yes"), "refresh"),
    (lambda: guardalloc.maps.guard_pages("0", 10), "start"),
    (lambda: guardalloc.maps.vmas_in_range(0, None), "end"),
    (lambda: guardalloc.maps.vma_count(1.5), "pid"),
    (lambda: guardalloc.pymem.install(max_bytes="1"), "max_bytes"),
    (lambda: guardalloc.pymem.install(random="yes"), "random"),
    (lambda: guardalloc.pymem.install(guard_pages=True), "guard_pages"),
    (lambda: guardalloc.SharedArena.open(0, "a", 1), "slot_size"),
])
def test_bad_arguments_name_the_parameter(call, parameter):
    import guardalloc.maps
    import guardalloc.numpy
    import guardalloc.pymem
    with pytest.raises((TypeError, ValueError), match=parameter):
        call()


def test_arena_alloc_of_a_huge_size_is_a_value_error():
    with guardalloc.Arena(PAGE, 2) as arena:
        with pytest.raises(ValueError, match="nbytes"):
            arena.alloc(10**20)


# ---------------------------------------------------------------------------
# Bad addresses

def test_bad_addresses_are_nobodys():
    with guardalloc.Arena(PAGE, 2) as arena, guardalloc.Pool(max_bytes=1 << 20) as pool:
        assert arena.slot_of(-1) is None and arena.owns(-5) is False and arena.block_size(-1) == 0
        assert arena.slot_of(2**64) is None and arena.owns(2**100) is False
        assert pool.owns(-5) is False and pool.block_size(-1) == 0
        with pytest.warns(DeprecationWarning):
            assert pool.block_nbytes(-1) == 0
        with pytest.warns(DeprecationWarning):
            assert pool.owns_address(-1) is False
        for owns in (arena.owns, pool.owns, arena.slot_of, pool.block_size):
            with pytest.raises(TypeError, match="address must be an integer"):
                owns(None)
        with pytest.raises(guardalloc.ForeignBufferError):
            arena.free(-1)
        with pytest.raises(guardalloc.ForeignBufferError):
            pool.free(-1)
        with pytest.raises(guardalloc.InvalidFreeError, match="-1"):
            pool.realloc_raw(-1, 10)
        with pytest.raises(TypeError, match="slot must be an integer, not bool"):
            arena.alloc(10, slot=True)
        with pytest.raises(ValueError, match="arenas must be 1 or more, not -1"):
            pool.prepare(10, -1)


def test_freeing_an_interior_address_does_not_call_it_the_buffer_object():
    with guardalloc.Arena(PAGE, 2, alignment=1) as arena:
        buf = arena.alloc(100)
        for address in (buf.address + 1, buf.address - 1, buf.address + 99):
            with pytest.raises(guardalloc.InvalidFreeError) as info:
                arena.free(address)
            assert "Buffer object" not in str(info.value) and "not the start of a live buffer" in str(info.value)
        with pytest.raises(guardalloc.InvalidFreeError, match="start of slot 0's Buffer object"):
            arena.free(buf.address)
        buf.free()


# ---------------------------------------------------------------------------
# Limits: the default pool under RLIMIT_AS

def test_default_pool_fits_a_modest_rlimit_as(child):
    proc = _ok(child("""
        import resource, numpy as np
        import guardalloc, guardalloc.numpy as gnp
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.RLIM_INFINITY))
        buf = guardalloc.alloc(100)
        pool = guardalloc.default_pool()
        print("reserved", pool.reserved < 4 << 30, pool.max_bytes < guardalloc.pool.DEFAULT_MAX_BYTES)
        gnp.install()
        a = np.ones(1000)
        print("numpy", gnp.is_guarded(a), a.sum())
    """))
    assert proc.stdout.splitlines() == ["reserved True True", "numpy True 1000.0"]


def test_reservation_failure_names_what_works_where_the_user_called(child):
    proc = _ok(child("""
        import resource
        import guardalloc, guardalloc.numpy as gnp, guardalloc.pymem as pymem
        guardalloc.configure(max_bytes=1 << 40)     # fits now: no limit yet
        import re
        status = open("/proc/self/status").read()
        vm = int(re.search(r"VmSize:\\s+(\\d+)", status).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
        for label, call in [("Pool", lambda: guardalloc.Pool(max_bytes=1 << 30)),
                            ("configure", lambda: guardalloc.configure(max_bytes=1 << 30)),
                            ("numpy", lambda: gnp.install(max_bytes=1 << 30)),
                            ("pymem", lambda: pymem.install(max_bytes=1 << 30))]:
            try:
                call()
                print(label, "no error")
            except guardalloc.AddressSpaceError as exc:
                print(label, isinstance(exc, MemoryError), exc.fits is not None, str(exc))
                if label == "Pool":
                    guardalloc.Pool(max_bytes=exc.fits).close()    # the advice works
                    print("advice works")
    """))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Pool True True") and "pass max_bytes=" in lines[0] and "to Pool()" in lines[0]
    assert lines[1] == "advice works"
    assert lines[2].startswith("configure True True") and "guardalloc.configure()" in lines[2]
    assert "guardalloc.numpy.install()" in lines[3] and "guardalloc.pymem.install()" in lines[4]
    assert all("RLIMIT_AS lets this process map" in line for line in lines[:1] + lines[2:])


def test_default_pool_that_cannot_reserve_says_configure(child):
    proc = _ok(child("""
        import re, resource, guardalloc
        guardalloc.configure(max_bytes=1 << 30)
        guardalloc.default_pool().close()          # the next alloc() makes it again
        status = open("/proc/self/status").read()
        vm = int(re.search(r"VmSize:\\s+(\\d+)", status).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (16 << 20), resource.RLIM_INFINITY))
        try:
            guardalloc.alloc(100)
        except MemoryError as exc:
            print(exc)
    """))
    assert "pass max_bytes=" in proc.stdout
    assert "or less to guardalloc.configure() before guardalloc.alloc()" in proc.stdout


def test_configure_replaces_the_default_pool_and_old_buffers_keep_working():
    old = guardalloc.alloc(10)
    before = guardalloc.default_pool()
    try:
        guardalloc.configure(max_bytes=1 << 22, guard_pages=2)
        new = guardalloc.alloc(10)
        assert guardalloc.default_pool() is not before and guardalloc.default_pool().guard_pages == 2
        assert guardalloc.default_pool().max_bytes == 1 << 22
        old[0] = 1
        new[0] = 2
        assert old[0] == 1 and new[0] == 2
        old.free()
        new.free()
    finally:
        guardalloc.configure()


# ---------------------------------------------------------------------------
# numpy: arrays larger than the largest class

def test_oversize_arrays_go_to_numpy_and_are_reported_once_at_exit(child):
    proc = _ok(child("""
        import numpy as np, guardalloc.numpy as gnp
        h = gnp.install()
        size = gnp.max_block() + 8
        arrays = [np.empty(size, np.uint8), np.zeros(size + 8, np.uint8)]
        print(sum(gnp.is_guarded(a) for a in arrays), h.stats()["oversize"], h.stats()["oversize_live"])
        arrays[0].resize(size + 16, refcheck=False)
        small = np.ones(10)
        del arrays
        print(gnp.is_guarded(small), h.stats()["oversize_live"], h.stats()["bad_free"], h.stats()["failed"])
    """, timeout=300))
    assert proc.stdout.splitlines() == ["0 2 2", "True 0 0 0"]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("guardalloc.numpy:")]
    assert len(lines) == 1
    assert "2 array request(s) larger than the largest guarded block" in lines[0]
    assert "strict=True" in lines[0] and f"{3758096400 if PAGE == 4096 else ''}"[:4] in lines[0].replace(",", "")


def test_strict_handler_refuses_oversize_arrays():
    import guardalloc.numpy as gnp
    with gnp.guarded(strict=True) as h:
        with pytest.raises(MemoryError):
            np.empty(gnp.max_block() + 1, np.uint8)
    assert h.strict and h.stats()["oversize"] == 0 and h.stats()["failed"] >= 1


# ---------------------------------------------------------------------------
# Probes that cannot run say "unknown", never blame the kernel

NOFILE = r'''
import os, resource, warnings, guardalloc, guardalloc.maps as maps
warnings.simplefilter("error")
low = 64
resource.setrlimit(resource.RLIMIT_NOFILE, (low, low))
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
'''


def test_support_says_unknown_under_emfile_and_refresh_probes_again(child):
    proc = _ok(child(NOFILE + r'''
found = guardalloc.support(refresh=True)
print("fields", found.anonymous, found.file_shared, found.process_madvise, found.pagemap_guard_bit,
      found.pagemap_scan)
print("unknown", found.unknown)
print("reason", repr(found.reason))
arena = guardalloc.Arena(4096, 1000)          # no descriptor needed: guards all the same
print("arena", arena.backend, arena.stats()["batched"], arena.stats()["guard_syscalls"])
try:
    guardalloc.Arena(4096, 2, file="memfd")
except OSError as exc:
    print("file", type(exc).__name__, exc.errno)
for fd in held:
    os.close(fd)
again = guardalloc.support()                    # not cached while unknown: probes again
print("again", again.file_shared, again.process_madvise, again.pagemap_scan, repr(again.unknown))
runs = maps.guard_pages(arena.address, arena.address + arena.size, method="scan")
print("scan", runs.pages)
'''))
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["fields"] == "True None None None None"
    for field in ("file_shared: memfd_create", "process_madvise: pidfd_open", "pagemap_scan: opening",
                  "pagemap_guard_bit: opening"):
        assert field in lines["unknown"]
    assert "errno 24" in lines["unknown"] and lines["reason"] == "''"
    # stats()["batched"] tells the truth: no pidfd, so one madvise() per guard.
    assert lines["arena"] == "madvise False 1001"
    assert lines["file"] == "OSError 24"      # EMFILE, with no warning blaming the kernel
    assert lines["again"] == "True True True ''" and lines["scan"] == "1001"
    assert "kernel" not in proc.stderr


def test_refresh_reprobes_pagemap_scan_after_an_inconclusive_probe(child):
    proc = _ok(child(NOFILE + r'''
print(guardalloc.support().pagemap_scan)
try:
    maps.guard_pages(0, 4096, method="scan")
except guardalloc.GuardUnsupportedError as exc:
    print("kernel" in str(exc), "could not run" in str(exc))
for fd in held:
    os.close(fd)
print(guardalloc.support(refresh=True).pagemap_scan)
'''))
    assert proc.stdout.splitlines() == ["None", "False True", "True"]


def test_batched_is_true_when_process_madvise_did_the_work():
    with guardalloc.Arena(PAGE, 1000) as arena:
        stats = arena.stats()
        if not guardalloc.support().process_madvise:
            pytest.skip("process_madvise refused here")
        assert stats["batched"] and stats["guard_syscalls"] == 1
    with guardalloc.Arena(PAGE, 1000, batch=False) as arena:
        assert not arena.stats()["batched"] and arena.stats()["guard_syscalls"] == 1001

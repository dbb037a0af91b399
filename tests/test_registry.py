"""The registry of live arenas (_c/registry.c), the table the fault handler
searches by address: a hypothesis state machine of registrations, removals
and lookups against a Python model, its search cost (O(log n) nodes), and
tests/c/registry_stress.c (writer threads against a lock-free reader, and
fork() during registration) in a child under a watchdog.

Arenas here are descriptors only: their ranges lie in the non-canonical hole
of x86-64's address space ([2**47, 2**63)), where nothing can be mapped, so a
real fault never lands in them."""

from __future__ import annotations

import ctypes
import errno
import glob
import math
import os
import platform
import subprocess

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

import guardalloc
from test_c_core import TEST_DIR, build  # noqa: F401 (build: a fixture)

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the fake arenas sit in x86-64's non-canonical hole")

HOLE = 1 << 47
GRAIN = 1 << 16


class FakeArena(ctypes.Structure):
    """The head of ga_arena_t (layout.h: base, then size), padded past the
    whole descriptor; the registry reads nothing else."""
    _fields_ = [("base", ctypes.c_void_p), ("size", ctypes.c_size_t), ("rest", ctypes.c_char * 512)]


def _core() -> ctypes.CDLL:
    [path] = glob.glob(os.path.join(os.path.dirname(guardalloc.__file__), "libguardalloc_core*.so"))
    core = ctypes.CDLL(path, use_errno=True)   # the instance the extension modules loaded
    core.ga_register_arena.argtypes = [ctypes.POINTER(FakeArena)]
    core.ga_register_arena.restype = ctypes.c_int
    core.ga_unregister_arena.argtypes = [ctypes.POINTER(FakeArena)]
    core.ga_unregister_arena.restype = None
    core.ga_find_arena.argtypes = [ctypes.c_void_p]
    core.ga_find_arena.restype = ctypes.c_void_p
    core.ga_registry_steps.argtypes = [ctypes.c_void_p]
    core.ga_registry_steps.restype = ctypes.c_ulong
    core.ga_registered_arenas.restype = ctypes.c_size_t
    return core


CORE = _core()


def _arena(start: int, size: int) -> FakeArena:
    return FakeArena(base=HOLE + start, size=size)


class RegistryModel(RuleBasedStateMachine):
    """Non-overlapping ranges in units of GRAIN; the model is a dict of
    start -> (size, descriptor)."""

    arenas = Bundle("arenas")

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[int, FakeArena]] = {}
        self.baseline = CORE.ga_registered_arenas()

    def _owner(self, offset: int):
        for start, (size, arena) in self.live.items():
            if start <= offset < start + size:
                return arena
        return None

    def _overlaps(self, start: int, size: int) -> bool:
        return any(s < start + size and start < s + z for s, (z, _) in self.live.items())

    @rule(target=arenas, slot=st.integers(0, 255), grains=st.integers(1, 4),
          extra=st.integers(0, GRAIN - 1))
    def add(self, slot, grains, extra):
        start, size = slot * GRAIN, grains * GRAIN - extra
        arena = _arena(start, size)
        rc = CORE.ga_register_arena(ctypes.byref(arena))
        if self._overlaps(start, size):
            assert rc == -1   # refused, and the registry unchanged
            return None
        assert rc == 0
        self.live[start] = (size, arena)
        return start

    @rule(start=consumes(arenas))
    def remove(self, start):
        if start is None or start not in self.live:
            return
        _, arena = self.live.pop(start)
        CORE.ga_unregister_arena(ctypes.byref(arena))

    @rule(start=st.integers(0, 255 * GRAIN))
    def remove_unregistered(self, start):
        """Unregistering a descriptor that was never registered changes nothing."""
        CORE.ga_unregister_arena(ctypes.byref(_arena(start, GRAIN)))

    @rule(offset=st.integers(0, 260 * GRAIN))
    def lookup(self, offset):
        owner = self._owner(offset)
        found = CORE.ga_find_arena(HOLE + offset)
        assert found == (None if owner is None else ctypes.addressof(owner))

    @invariant()
    def count_and_every_edge(self):
        assert CORE.ga_registered_arenas() == self.baseline + len(self.live)
        for start, (size, arena) in self.live.items():
            for offset in (start, start + size - 1):
                assert CORE.ga_find_arena(HOLE + offset) == ctypes.addressof(arena)
            assert CORE.ga_find_arena(HOLE + start + size) != ctypes.addressof(arena)

    def teardown(self):
        for size, arena in self.live.values():
            CORE.ga_unregister_arena(ctypes.byref(arena))
        assert CORE.ga_registered_arenas() == self.baseline


TestRegistryModel = RegistryModel.TestCase
TestRegistryModel.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)


def test_refuses_empty_and_overlapping_arenas():
    before = CORE.ga_registered_arenas()
    first = _arena(0, GRAIN)
    assert CORE.ga_register_arena(ctypes.byref(first)) == 0
    try:
        assert CORE.ga_register_arena(ctypes.byref(_arena(4 * GRAIN, 0))) == -1
        assert ctypes.get_errno() == errno.EINVAL
        assert CORE.ga_register_arena(ctypes.byref(_arena(GRAIN // 2, GRAIN))) == -1
        assert ctypes.get_errno() == errno.EEXIST
        assert CORE.ga_register_arena(ctypes.byref(first)) == -1   # twice
        assert CORE.ga_registered_arenas() == before + 1
    finally:
        CORE.ga_unregister_arena(ctypes.byref(first))
    assert CORE.ga_find_arena(HOLE) is None


@pytest.mark.parametrize("n", [16, 1024, 16384])
def test_search_visits_logarithmically_many_nodes(n):
    """The number of nodes a lookup visits (its comparisons) grows as log n:
    at most 4 log2(n + the process's own arenas) for every arena's first
    byte and for a miss (a linear table visited up to n entries)."""
    arenas = [_arena(i * 2 * GRAIN, GRAIN) for i in range(n)]
    for arena in arenas:
        assert CORE.ga_register_arena(ctypes.byref(arena)) == 0
    try:
        total = CORE.ga_registered_arenas()
        steps = [CORE.ga_registry_steps(HOLE + i * 2 * GRAIN) for i in range(0, n, max(1, n // 512))]
        miss = CORE.ga_registry_steps(HOLE + 2 * n * GRAIN + 1)
        bound = 4 * math.log2(total + 1)
        assert max(steps) <= bound and miss <= bound, (max(steps), miss, bound)
        assert sum(steps) / len(steps) <= 2 * math.log2(total + 1)
    finally:
        for arena in arenas:
            CORE.ga_unregister_arena(ctypes.byref(arena))


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def test_churn_reuses_retired_nodes():
    """100,000 registrations and removals beside 1,000 live arenas map no new
    nodes once warm: every copy a write retires is reused (each write copies
    about 2 log n nodes, 56 bytes each: a leak would map ~100 MB)."""
    live = [_arena(i * 2 * GRAIN, GRAIN) for i in range(1000)]
    churn = [_arena((2000 + i) * 2 * GRAIN, GRAIN) for i in range(100)]
    for arena in live:
        assert CORE.ga_register_arena(ctypes.byref(arena)) == 0
    try:
        def cycle():
            for arena in churn:
                assert CORE.ga_register_arena(ctypes.byref(arena)) == 0
            for arena in churn:
                CORE.ga_unregister_arena(ctypes.byref(arena))
        cycle()
        before = _vm_size()
        for _ in range(500):
            cycle()
        assert _vm_size() - before < 4 << 20
    finally:
        for arena in live:
            CORE.ga_unregister_arena(ctypes.byref(arena))


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_concurrent_writers_lock_free_reader_and_fork(build, mode):
    """Three threads register and unregister 200 arenas each, 60 times, while
    a fourth looks addresses up without a lock; "fork": the main thread forks
    40 times meanwhile and each child finds every arena and registers one
    more (a lock held across fork would hang it: the watchdog is the
    program's alarm(100) and this timeout)."""
    program = build(TEST_DIR / "registry_stress.c")   # with the core's C sources, no Python
    proc = subprocess.run([str(program), mode], capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok "), proc.stdout
    lookups = int(proc.stdout.split()[1])
    assert lookups > 0
    if mode == "fork":
        assert proc.stdout.rstrip().endswith("40 forks"), proc.stdout

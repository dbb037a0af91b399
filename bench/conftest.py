"""The guardalloc benchmark suite: ``python -m pytest bench/``.

Conventions (every ``bench/bench_*.py`` file follows them)
------------------------------------------------------------

Files and names
    ``bench/bench_<concern>.py`` (pyproject's ``python_files`` collects
    ``bench_*.py``); the functions are ``test_*`` as in any pytest file, and
    the compared sides are a ``side`` parameter, so a row reads
    ``test_create[mprotect-30000]``. Shared helpers (interleaved timing,
    exact VMA counts, the operations compared, a pure-Python arena) live in
    :mod:`guardalloc.bench.timing`, so that ``python -m guardalloc bench``
    uses the same ones; import them from there.

Groups: one comparison, one table
    ``@pytest.mark.benchmark(group="<concern>: <what>")``, e.g.
    ``"create: 30,000 slots"``, ``"fork: 10,000 slots"``,
    ``"alloc+free: 64 B"``, ``"uaf: 10,000 live slots"``,
    ``"numpy: np.empty 64 KiB"``. Every side of a comparison is in the same
    group and the same run (pytest-benchmark prints one table per group,
    sorted by time, with ratios to the fastest row).

``benchmark.extra_info``: the deterministic figures, set with the ``record``
fixture: ``record(benchmark, side="mprotect", baseline=True, slots=n, ...)``
    ``side`` (str, required): what this row measures ("madvise-batched",
        "mprotect", "bytearray", ...).
    ``baseline`` (bool): the reference row of its group (mprotect, the
        unguarded allocator): ratios are read against it.
    ``slots`` (int): slots in the arena(s) involved.
    ``vmas_added`` (int): change of the process's VMA count.
    ``vmas_in_arena`` (int): VMAs overlapping the arena's address range
        (:func:`guardalloc.bench.timing.vmas_in_range`; exact, unlike
        ``vmas_added``, which also sees glibc's own mmaps).
    ``guard_syscalls`` (int): system calls spent installing guards
        (``arena.stats()["guard_syscalls"]``), plus ``uaf_syscalls`` where
        freed slots are guarded.
    Other keys are free, but must be deterministic counts, not times.
    Assert the invariants you record (e.g. ``vmas_in_arena == 1``): with
    ``--benchmark-disable`` the suite then runs once, as a fast test.

Nanosecond operations
    Use ``benchmark.pedantic(fn, iterations=1_000, rounds=60)``: a single
    80 ns call is below the timer's resolution.

Markers
    ``@pytest.mark.slow``: takes more than a few seconds (1,000,000 slots);
    deselect with ``-m "not slow"``.

Expensive one-shot operations (creating an arena) use
``benchmark.pedantic(..., setup=..., rounds=N)`` and close what they built
outside the timed part (the ``built`` fixture, a :class:`closing_setup`:
``benchmark.pedantic(lambda: built.keep(make_arena(...)), setup=built,
rounds=10)``, the last arena is ``built.last``); mprotect arenas of 30,000
slots use 60,000 VMAs, so never keep two alive at once.
"""

from __future__ import annotations

import gc

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def counts(benchmark, *, side: str, baseline: bool = False, **figures: int | str | bool) -> None:
    """Record a row's side and deterministic figures in ``extra_info``."""
    benchmark.extra_info["side"] = side
    benchmark.extra_info["baseline"] = baseline
    benchmark.extra_info.update(figures)


@pytest.fixture
def record():
    """:func:`counts` as a fixture: ``record(benchmark, side=..., slots=...)``."""
    return counts


class closing_setup:
    """A ``pedantic`` setup that closes what the previous round built.

        built = closing_setup()
        benchmark.pedantic(lambda: built.keep(make_arena(...)), setup=built, rounds=10)
        built.close()

    Only one object is alive at a time, and closing it is not timed.
    """

    def __init__(self) -> None:
        self.last = None

    def keep(self, obj):
        self.last = obj
        return obj

    def close(self) -> None:
        if self.last is not None:
            self.last.close()
            self.last = None
        gc.collect()

    def __call__(self):
        self.close()
        return (), {}


@pytest.fixture
def built():
    """A :class:`closing_setup` that is closed after the test."""
    holder = closing_setup()
    yield holder
    holder.close()

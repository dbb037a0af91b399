"""guardalloc's malloc library beside Electric Fence, DUMA and GWP-ASan
(scudo): the same CPython workload and the same fork() under each, in one
run (pytest-benchmark groups "peers: ..."), plus the exact counts of the
detection matrix and the VMAs of 100,000 live blocks.

``python -m guardalloc bench --peers`` prints the whole comparison as one
table (guardalloc/peers.py); a peer that is not installed is skipped here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from guardalloc.bench import peers

TOOLS = {tool.name: tool for tool in peers.tools()}
WORKLOAD = os.path.join(peers.PROGRAMS, "workload.py")


def _tool(name):
    tool = TOOLS[name]
    if tool.library is None:
        pytest.skip(f"{name}: {peers.NOT_INSTALLED}")
    return tool


@pytest.fixture(scope="module")
def programs():
    with tempfile.TemporaryDirectory(prefix="guardalloc-bench-peers-") as scratch:
        yield {name: peers._compile(os.path.join(peers.PROGRAMS, f"{name}.c"), scratch)
               for name in ("live", "forker", "mallocfree")}


@pytest.mark.slow
@pytest.mark.benchmark(group="peers: CPython workload")
@pytest.mark.parametrize("side", ["plain", *[f"{n}|{m}" for n in TOOLS for m in ("python", "sampled")
                                              if m == "python" or "sampled" in TOOLS[n].modes]])
def test_workload(benchmark, record, side):
    if side == "plain":
        env = dict(os.environ)
        env.pop("PYTHONFAULTHANDLER", None)
    else:
        name, mode = side.split("|")
        env = _tool(name).env(mode)
    run = lambda: subprocess.run([sys.executable, WORKLOAD], env=env, check=True,  # noqa: E731
                                 capture_output=True)
    benchmark.pedantic(run, rounds=3, iterations=1)
    record(benchmark, side=side, baseline=side == "plain")


@pytest.mark.benchmark(group="peers: fork with 30,000 live malloc(64)")
@pytest.mark.parametrize("side", ["plain", *TOOLS])
def test_fork(benchmark, record, programs, side):
    env = None if side == "plain" else _tool(side).env("fork")
    run = lambda: subprocess.run([programs["forker"], "30000", "3"], env=env, check=True,  # noqa: E731
                                 capture_output=True)
    benchmark.pedantic(run, rounds=3, iterations=1)
    record(benchmark, side=side, baseline=side == "plain")


def test_guardalloc_scale_adds_no_vma(benchmark, record, programs):
    """100,000 live guarded malloc(64): no VMA added after main (the heap's
    arenas are mapped inside its reservation, next to one another)."""
    tool = TOOLS["guardalloc"]
    proc = benchmark.pedantic(lambda: subprocess.run([programs["live"], "100000", "64"],
                                                     env=tool.env("scale"), capture_output=True,
                                                     text=True, check=True), rounds=1, iterations=1)
    done = proc.stdout.split()
    live, added, heap = int(done[-5]), int(done[-3]), int(done[done.index("heap_vmas") + 1])
    assert live == 100000 and added <= 4 and heap <= 4
    record(benchmark, side="guardalloc", live=live, vmas_added=added, heap_vmas=heap)


@pytest.mark.benchmark(group="native library: 100,000 malloc(64)+free at sample_rate=1")
@pytest.mark.parametrize("side", ["native_stacks=0", "native_stacks=1"])
def test_native_stacks_cost(benchmark, record, programs, side):
    """What the per-block native stacks (two unwinds per malloc+free) cost
    the library when it guards every allocation; the program prints its own
    ns per pair, the benchmark times the whole run."""
    from guardalloc import native

    env = native.environment(sample_rate=1, native_stacks=side.endswith("1"))
    env.pop("PYTHONFAULTHANDLER", None)
    run = lambda: subprocess.run([programs["mallocfree"], "100000"], env=env, check=True,  # noqa: E731
                                 capture_output=True, text=True)
    proc = benchmark.pedantic(run, rounds=3, iterations=1)
    assert "ns per malloc+free" in proc.stdout
    record(benchmark, side=side, baseline=side.endswith("0"), pairs=100000)

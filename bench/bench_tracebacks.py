"""What recording allocation/free tracebacks costs.

With ``Arena(tracebacks=True)`` every alloc and every free records the
innermost 16 Python frames compactly (code object, instruction, entry flag;
``_c/pyframes.h``), which the fault handler names when it reports. Measured
on one alloc + free cycle of a 64-byte buffer (two tracebacks), against the
same cycle without them:

- from a fresh thread, about a dozen frames deep (a worker's stack);
- from the test itself, deeper than the 16-frame cap (pytest's own stack;
  web frameworks and test runners are usually that deep).

    python -m pytest bench/bench_tracebacks.py --benchmark-columns=median,ops
"""

from __future__ import annotations

import sys
import threading

import pytest

from guardalloc import Arena

ROUNDS, ITERATIONS, WARMUP_ROUNDS = 200, 200, 5
TRACE_DEPTH = 32   # frames a recorded traceback keeps (arena.pyx)


def stack_depth() -> int:
    depth, frame = 0, sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def in_fresh_thread(function):
    """Run function in a new thread (a shallow Python stack); re-raise."""
    outcome = {}

    def main():
        try:
            outcome["value"] = function()
        except BaseException as exc:   # handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.mark.parametrize("stack", ["thread", "deep"])
@pytest.mark.parametrize("side", ["off", "on"])
def test_traceback_cost(benchmark, side, stack):
    """alloc(64) + free, recording tracebacks (on) or not (off)."""
    with Arena(4096, 16, tracebacks=side == "on") as arena:
        depth = []

        def cycle():
            arena.alloc(64).free()

        def measured():
            if not depth:
                depth.append(stack_depth())
            cycle()

        def run():
            benchmark.pedantic(measured, rounds=ROUNDS, iterations=ITERATIONS,
                               warmup_rounds=WARMUP_ROUNDS)

        if stack == "thread":
            in_fresh_thread(run)
        else:
            run()
        # The frames a traceback records: measured()'s caller chain plus
        # measured() and cycle() themselves, capped.
        frames = min(depth[0] + 2, TRACE_DEPTH)
        benchmark.group = "tracebacks: alloc+free of 64 B"
        benchmark.extra_info.update(side=side, baseline=side == "off", frames_recorded=frames,
                                    tracebacks_per_cycle=2 if side == "on" else 0)
        assert arena.stats()["allocations"] >= 1 and arena.stats()["live"] == 0
        assert (frames == TRACE_DEPTH) == (stack == "deep")

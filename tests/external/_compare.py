"""Shared by the external-suite scripts: run a suite twice, compare outcomes.

Each run happens in its own child interpreter that writes its outcome counts
(and the ids of failing tests) as JSON to a file; a child that dies of a
signal instead (a guard page fired) is reported as such.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def import_guardalloc():
    """Import guardalloc: the installed one, or the in-place build of this tree."""
    try:
        import guardalloc
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        import guardalloc
    return guardalloc


def child_env() -> dict:
    """Environment in which children import the same guardalloc build."""
    guardalloc = import_guardalloc()
    parent = str(Path(guardalloc.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (parent, env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONFAULTHANDLER", None)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def run_counted(label: str, argv: list[str], timeout: float) -> dict:
    """Run argv (which must accept ``--result FILE`` last) and return its counts."""
    with tempfile.TemporaryDirectory(prefix="guardalloc-external-") as scratch:
        result_file = os.path.join(scratch, "result.json")
        started = time.monotonic()
        proc = subprocess.run([*argv, "--result", result_file], cwd=scratch, env=child_env(),
                              capture_output=True, text=True, timeout=timeout)
        elapsed = time.monotonic() - started
        outcome = {"label": label, "returncode": proc.returncode, "seconds": round(elapsed, 1)}
        if os.path.exists(result_file):
            with open(result_file) as f:
                outcome.update(json.load(f))
        else:
            outcome["crashed"] = True
            if proc.returncode < 0:
                outcome["signal"] = signal.Signals(-proc.returncode).name
            outcome["stderr_tail"] = proc.stderr[-4000:]
            outcome["stdout_tail"] = proc.stdout[-2000:]
    return outcome


def compare(plain: dict, guarded: dict, keys=OUTCOMES) -> list[str]:
    """Differences between two runs ([] when they agree)."""
    problems = []
    for run in (plain, guarded):
        if run.get("crashed"):
            problems.append(f"{run['label']} run crashed ({run.get('signal', run['returncode'])}):\n"
                            f"{run['stderr_tail']}")
    if problems:
        return problems
    for run in (plain, guarded):
        if run["returncode"] < 0:
            problems.append(f"{run['label']} run died of {signal.Signals(-run['returncode']).name} "
                            "after writing its results (at exit?)")
    for key in keys:
        if plain["counts"].get(key, 0) != guarded["counts"].get(key, 0):
            problems.append(f"{key}: {plain['counts'].get(key, 0)} without guardalloc, "
                            f"{guarded['counts'].get(key, 0)} with")
    # not_passed holds "outcome: test id" for every test that did not pass.
    only_guarded = sorted(set(guarded["not_passed"]) - set(plain["not_passed"]))
    only_plain = sorted(set(plain["not_passed"]) - set(guarded["not_passed"]))
    if only_guarded:
        problems.append("only with guardalloc: " + "; ".join(only_guarded[:20]))
    if only_plain:
        problems.append("only without guardalloc: " + "; ".join(only_plain[:20]))
    return problems


def report(title: str, plain: dict, guarded: dict, keys=OUTCOMES) -> int:
    """Print both runs side by side; return the exit status (0: they agree)."""
    print(title)
    print(f"{'':12}" + "".join(f"{k:>10}" for k in keys) + f"{'seconds':>10}")
    for run in (plain, guarded):
        if run.get("crashed"):
            print(f"{run['label']:12}crashed: {run.get('signal', run['returncode'])}")
            continue
        print(f"{run['label']:12}" + "".join(f"{run['counts'].get(k, 0):>10}" for k in keys)
              + f"{run['seconds']:>10}" + f"   exit {run['returncode']}")
    for run in (plain, guarded):
        for key, value in run.get("extra", {}).items():
            print(f"  {run['label']}: {key} = {value}")
    problems = compare(plain, guarded, keys)
    for problem in problems:
        print("DIFFERENCE:", problem)
    print("same outcomes" if not problems else "outcomes differ")
    return 0 if not problems else 1


def write_result(path: str, counts: dict, not_passed: list[str], extra: dict | None = None) -> None:
    with open(path, "w") as f:
        # default=dict: guardalloc's stats objects are mappings, not dicts.
        json.dump({"counts": counts, "not_passed": not_passed, "extra": extra or {}}, f, default=dict)

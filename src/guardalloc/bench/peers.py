"""``python -m guardalloc bench --peers``: guardalloc's malloc library beside
Electric Fence, DUMA and GWP-ASan (scudo), all in one run.

1. Detection of the corpus of heap bugs (tests/native/corpus): for each
   tool, caught at the access (SIGSEGV; at the free for double and invalid
   frees), caught late (an abort at free or exit), or missed, in byte-exact
   modes. Then every corpus program (corpus/classes too) and its bug-free
   twin under each tool's default configuration, counted by bug class, and
   the over-read grid (guardalloc.bench.peer_corpus).
2. Scale: live ``malloc(64)`` blocks before the first failure, and the VMAs
   they added.
3. Overhead: one fixed CPython workload (bench/peers/workload.py) under each
   tool, as a ratio to the plain interpreter (medians, interleaved runs).
4. fork() latency with 30,000 live blocks (a C program, median of rounds).
5. Real programs (guardalloc.bench.programs: git, sqlite3, gcc, perl, sort,
   xz, tar, CPython's tests) plain and with every allocation guarded: same
   output or not, time and peak-memory ratios.

Besides the preloadable peers: valgrind memcheck (a wrapper: byte-exact,
reports at the access and goes on; its error exit status counts as caught)
and ASan, the compile-time reference (the corpus and C programs rebuilt with
``-fsanitize=address`` by clang or gcc). Neither runs the CPython workload.

A peer that is not installed is reported as "not installed". Runs from a
source checkout (it compiles the corpus and bench/peers/*.c with gcc).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
import typing
from typing import Any, Optional

from guardalloc.bench import peer_corpus
# The exit status valgrind and ASan are asked to use when they report an error.
from guardalloc.bench.peer_corpus import ERROR_STATUS
from guardalloc.bench.programs import markdown as programs_markdown
from guardalloc.bench.programs import real_programs
from guardalloc.hooks import preload as native

# The source checkout (src/guardalloc/bench/ is three levels below it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CORPUS = os.path.join(ROOT, "tests", "native", "corpus")
PROGRAMS = os.path.join(ROOT, "bench", "peers")
NOT_INSTALLED = "not installed"
AT_ACCESS, LATE, MISSED = "at access", "late", "missed"
FREE_CASES = ("double_free", "invalid_free")


# How a tool is applied to a program.
PRELOAD, WRAPPER, COMPILED = "preload", "wrapper", "compiled"


@dataclass
class Tool:
    """A guarding tool and how to ask it for each mode: a preloadable
    allocator (``LD_PRELOAD``), a wrapper command (valgrind), or a compiler
    option (ASan: the compile-time reference, the program is rebuilt)."""

    name: str
    patterns: list
    base: dict
    # Extra variables per mode: "exact" (byte-exact, freed memory guarded),
    # "below" (underflows), "sampled" (its default sampling), "python".
    modes: dict = field(default_factory=dict)
    library: Optional[str] = None
    kind: str = PRELOAD
    # WRAPPER: the arguments after the found command; COMPILED: the flags.
    args: list = field(default_factory=list)
    # The exit status the tool gives when it reported an error (None: it
    # stops the program with a signal).
    error_status: Optional[int] = None

    def find(self) -> Optional[str]:
        for pattern in self.patterns:
            found = sorted(glob.glob(pattern)) if "/" in pattern else [shutil.which(pattern) or ""]
            found = [f for f in found if f]
            if found:
                return found[-1]
        return None

    def env(self, mode: str) -> dict:
        env = dict(os.environ)
        env.pop("PYTHONFAULTHANDLER", None)
        if self.kind == PRELOAD:
            env["LD_PRELOAD"] = typing.cast(str, self.library)   # callers skip a tool not installed
        env.update(self.base)
        env.update(self.modes.get(mode, {}))
        return env

    def argv(self, program: list) -> list:
        """The command line that runs program (argv) under the tool."""
        if self.kind == WRAPPER:
            return [typing.cast(str, self.library), *self.args, *program]
        return list(program)

    def build(self, source: str, out_dir: str, flags: tuple | list = ()) -> str:
        """The program built from source for this tool (ASan: with it);
        flags ``-DTWIN``: its bug-free twin."""
        twin = "-twin" if "-DTWIN" in flags else ""
        if self.kind == COMPILED:
            return _compile(source, out_dir, typing.cast(str, self.library), [*self.args, *flags],
                            suffix="-asan" + twin)
        return _compile(source, out_dir, None, flags, suffix=twin)


def _asan_compiler() -> Optional[str]:
    """clang (clang-19 first) or, when its ASan runtime is installed, gcc."""
    for name in ("clang-19", "clang"):
        if shutil.which(name):
            return shutil.which(name)
    if glob.glob("/usr/lib/gcc/*/*/libasan.so") and shutil.which("gcc"):
        return shutil.which("gcc")
    return None


def tools() -> list:
    """The tools; ``library`` is None for a peer that is not installed."""
    lib_dirs = ["/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]
    scudo = "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-x86_64.so"
    gwp = "GWP_ASAN_Enabled=true:GWP_ASAN_SampleRate={rate}:GWP_ASAN_MaxSimultaneousAllocations={slots}"
    found = [
        Tool("guardalloc", [], {"GUARDALLOC_OPTIONS": "sample_rate=1:max_bytes=16G"}, {
            "exact": {"GUARDALLOC_OPTIONS": "sample_rate=1:alignment=1:uaf=1"},
            "below": {"GUARDALLOC_OPTIONS": "sample_rate=1:alignment=1:uaf=1:align=left"},
            "sampled": {"GUARDALLOC_OPTIONS": ""},
        }),
        Tool("Electric Fence", [f"{d}/libefence.so*" for d in lib_dirs], {"EF_DISABLE_BANNER": "1"}, {
            "exact": {"EF_ALIGNMENT": "0", "EF_PROTECT_FREE": "1"},
            "below": {"EF_ALIGNMENT": "0", "EF_PROTECT_FREE": "1", "EF_PROTECT_BELOW": "1"},
        }),
        Tool("DUMA", [f"{d}/libduma.so*" for d in lib_dirs],
             {"DUMA_DISABLE_BANNER": "1", "DUMA_ALIGNMENT": "4"}, {
            "exact": {"DUMA_ALIGNMENT": "1", "DUMA_PROTECT_FREE": "-1"},
            "below": {"DUMA_ALIGNMENT": "1", "DUMA_PROTECT_FREE": "-1", "DUMA_PROTECT_BELOW": "1"},
            "python": {"DUMA_PROTECT_FREE": "0"},
        }),
        Tool("GWP-ASan (scudo)", [scudo],
             {"SCUDO_OPTIONS": gwp.format(rate=1, slots=100000)}, {
            "sampled": {"SCUDO_OPTIONS": "GWP_ASAN_Enabled=true"},
        }),
        # valgrind reports each bad access where it happens and goes on; it
        # is byte-exact and checks freed memory in every mode. Too slow for
        # the CPython workload (not run there).
        Tool("valgrind memcheck", ["valgrind"], {}, kind=WRAPPER, error_status=ERROR_STATUS,
             args=["-q", "--tool=memcheck", "--leak-check=no", f"--error-exitcode={ERROR_STATUS}"]),
        # The compile-time reference: the corpus rebuilt with -fsanitize=address.
        Tool("ASan (recompiled)", [], {"ASAN_OPTIONS": f"exitcode={ERROR_STATUS}:detect_leaks=0"},
             kind=COMPILED, error_status=ERROR_STATUS, args=["-fsanitize=address", "-fno-omit-frame-pointer"]),
    ]
    for tool in found:
        if tool.name == "guardalloc":
            tool.library = native.library_path()
        elif tool.kind == COMPILED:
            tool.library = _asan_compiler()
        else:
            tool.library = tool.find()
    return found


def _compile(source: str, out_dir: str, compiler: Optional[str] = None, flags: tuple | list = (),
             suffix: str = "") -> str:
    """Build source (gcc/g++ unless compiler is given: a C++ source then gets
    the compiler's ++ twin) into out_dir; the path of the program."""
    cxx = source.endswith(".cc")
    if compiler is None:
        compiler = "g++" if cxx else "gcc"
    elif cxx:
        compiler = compiler.replace("clang", "clang++") if "clang" in compiler else compiler.replace("gcc", "g++")
    target = os.path.join(out_dir, os.path.splitext(os.path.basename(source))[0] + suffix)
    if not os.path.exists(target):    # each source is built once per run and tool kind
        subprocess.run([compiler, "-g", "-O0", "-rdynamic", *flags, "-o", target, source], check=True,
                       capture_output=True)
    return target


def classify(case: str, returncode: int, tool: Optional[Tool] = None) -> str:
    """What the outcome of a corpus case means (a tool with an error status
    reports at the access, and says so with that status)."""
    if tool is not None and tool.error_status is not None and returncode == tool.error_status:
        return AT_ACCESS
    if case in FREE_CASES:
        return AT_ACCESS if returncode < 0 else MISSED
    if returncode == -signal.SIGSEGV or returncode == -signal.SIGBUS:
        return AT_ACCESS
    if returncode != 0:
        return LATE
    return MISSED


def detection(all_tools: list, out_dir: str) -> dict:
    sources = sorted(glob.glob(os.path.join(CORPUS, "*.c")) + glob.glob(os.path.join(CORPUS, "*.cc")))
    cases = {os.path.splitext(os.path.basename(s))[0]: s for s in sources}
    table = {}
    for tool in all_tools:
        row = {}
        for case, source in cases.items():
            if tool.library is None:
                row[case] = NOT_INSTALLED
                continue
            mode = "below" if case == "underflow" else "exact"
            try:
                program = tool.build(source, out_dir)
            except subprocess.CalledProcessError:
                row[case] = "does not build"
                continue
            try:
                proc = subprocess.run(tool.argv([program]), env=tool.env(mode), capture_output=True, timeout=120)
                row[case] = classify(case, proc.returncode, tool)
            except subprocess.TimeoutExpired:
                row[case] = "hung"
        table[tool.name] = row
    return table


def scale(all_tools: list, out_dir: str, blocks: int) -> dict:
    source = os.path.join(PROGRAMS, "live.c")
    program = _compile(source, out_dir)
    plain = subprocess.run([program, "10", "64"], capture_output=True, text=True, timeout=60)
    results: dict[str, Any] = {"plain_vmas_total": int(plain.stdout.split()[-1])}
    for tool in all_tools:
        if tool.library is None:
            results[tool.name] = NOT_INSTALLED
            continue
        proc = subprocess.run(tool.argv([tool.build(source, out_dir), str(blocks), "64"]), env=tool.env("scale"),
                              capture_output=True, text=True, timeout=1800)
        done = re.search(r"done (\d+) vmas_added (-?\d+) vmas_total (\d+)", proc.stdout)
        if done:
            heap = re.search(r"heap_vmas (-?\d+)", proc.stdout)
            results[tool.name] = {"live": int(done.group(1)), "vmas_added": int(done.group(2)),
                                  "vmas_total": int(done.group(3)),
                                  "heap_vmas": int(heap.group(1)) if heap else -1,
                                  "finished": int(done.group(1)) == blocks}
        else:
            counts = re.findall(r"live (\d+)", proc.stdout)
            results[tool.name] = {"live": int(counts[-1]) if counts else 0, "vmas_added": None,
                                  "finished": False, "died": proc.returncode}
    return results


def fork_latency(all_tools: list, out_dir: str, blocks: int, rounds: int) -> dict:
    source = os.path.join(PROGRAMS, "forker.c")
    program = _compile(source, out_dir)
    results: dict[str, Any] = {"plain": None}
    plain = subprocess.run([program, str(blocks), str(rounds)], capture_output=True, text=True, timeout=600)
    results["plain"] = float(plain.stdout.split()[-1]) / 1000
    for tool in all_tools:
        if tool.library is None:
            results[tool.name] = NOT_INSTALLED
            continue
        proc = subprocess.run(tool.argv([tool.build(source, out_dir), str(blocks), str(rounds)]),
                              env=tool.env("fork"), capture_output=True, text=True, timeout=600)
        found = re.search(r"median_us ([\d.]+)", proc.stdout)
        results[tool.name] = float(found.group(1)) / 1000 if found else f"failed ({proc.returncode})"
    return results


def overhead(all_tools: list, rounds: int) -> dict:
    """Seconds of the workload per side (median of interleaved rounds) and
    the ratio to plain."""
    workload = os.path.join(PROGRAMS, "workload.py")
    sides: dict[str, Optional[dict]] = {"plain": None}
    for tool in all_tools:
        if tool.library is None or tool.kind != PRELOAD:
            continue   # valgrind: minutes per run; ASan: would need a rebuilt CPython
        sides[f"{tool.name}, every allocation"] = tool.env("python")
        if "sampled" in tool.modes:
            sides[f"{tool.name}, default sampling"] = tool.env("sampled")
    times: dict = {side: [] for side in sides}
    failed: dict = {}
    plain_env = dict(os.environ)
    plain_env.pop("PYTHONFAULTHANDLER", None)
    for _ in range(rounds):
        for side, env in sides.items():
            if side in failed:
                continue
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, workload], env=env or plain_env,
                                  capture_output=True, text=True, timeout=1800)
            elapsed = time.perf_counter() - started
            if proc.returncode != 0:
                failed[side] = f"failed (exit {proc.returncode}): {proc.stderr.strip()[-120:]}"
            else:
                times[side].append(elapsed)
    plain = statistics.median(times["plain"])
    results = {}
    for side in sides:
        if side in failed:
            results[side] = failed[side]
        else:
            median = statistics.median(times[side])
            results[side] = {"seconds": round(median, 3), "ratio": round(median / plain, 2)}
    for tool in all_tools:
        if tool.library is None:
            results[tool.name] = NOT_INSTALLED
        elif tool.kind != PRELOAD:
            results[tool.name] = "not run (not a preloadable allocator)"
    return results


def _fmt(value) -> str:
    if isinstance(value, dict):
        if "ratio" in value:
            return f"{value['ratio']:.2f}x ({value['seconds']:.2f} s)"
        live = f"{value['live']:,}"
        if value.get("finished"):
            heap = f", {value['heap_vmas']} in the heap" if value.get("heap_vmas", -1) >= 0 else ""
            return (f"{live} (all), {value['vmas_added']} VMAs added after main{heap}, "
                    f"{value['vmas_total']} in all")
        return f"{live} then died (status {value.get('died')})"
    if isinstance(value, float):
        return f"{value:.1f} ms"
    return str(value)


def markdown(results: dict) -> str:
    names = [t for t in results["tools"]]
    lines = [f"Command: `{results['command']}`", ""]
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("| --- |" + " --- |" * len(names))
    for case in next(iter(results["detection"].values())):
        lines.append(f"| {case} | " + " | ".join(results["detection"][n][case] for n in names) + " |")
    caught = {n: sum(v == AT_ACCESS for v in results["detection"][n].values()) for n in names}
    total = len(next(iter(results["detection"].values())))
    lines.append("| **caught at the access** | " + " | ".join(
        f"**{caught[n]}/{total}**" if results["tools"][n] else NOT_INSTALLED for n in names) + " |")
    lines.append(f"| live malloc(64), up to {results['scale_blocks']:,} (plain process: "
                 f"{results['scale']['plain_vmas_total']} VMAs) | "
                 + " | ".join(_fmt(results["scale"][n]) for n in names) + " |")
    lines.append(f"| fork() with {results['fork_blocks']:,} live blocks (plain: "
                 f"{results['fork']['plain']:.1f} ms) | "
                 + " | ".join(_fmt(results["fork"][n]) for n in names) + " |")
    for side, value in results["overhead"].items():
        if side == "plain" or side in names:
            continue
        lines.append(f"| workload: {side} | {_fmt(value)} |")
    plain = results["overhead"]["plain"]
    lines.append(f"| workload: plain interpreter | {_fmt(plain)} |")
    return "\n".join(lines)


def run_peers(quick: bool, out: str) -> int:
    """Measure everything; print the table; write peers.json and peers.md to out."""
    if shutil.which("gcc") is None or not os.path.isdir(CORPUS):
        print("bench --peers needs gcc and a source checkout (tests/native/corpus)", file=sys.stderr)
        return 2
    all_tools = tools()
    scale_blocks = 100_000 if quick else 1_000_000
    fork_blocks, fork_rounds = 30_000, 10 if quick else 30
    results = {"command": "python -m guardalloc bench --peers" + (" --quick" if quick else ""),
               "tools": {t.name: t.library for t in all_tools},
               "scale_blocks": scale_blocks, "fork_blocks": fork_blocks}
    started = time.perf_counter()

    def phase(name: str) -> None:
        print(f"{name} ... (at {time.perf_counter() - started:.0f} s)", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="guardalloc-peers-") as scratch:
        phase("detection")
        results["detection"] = detection(all_tools, scratch)
        phase("corpus and twins, default configurations")
        corpus = peer_corpus.corpus_table(all_tools, CORPUS, scratch, quick)
        results["corpus"] = corpus
        phase("scale")
        results["scale"] = scale(all_tools, scratch, scale_blocks)
        phase("fork")
        results["fork"] = fork_latency(all_tools, scratch, fork_blocks, fork_rounds)
    phase("overhead")
    # Quick (CI): two rounds, the workload under every peer dominates the run.
    results["overhead"] = overhead(all_tools, 2 if quick else 5)
    phase("real programs")
    real = real_programs(native.library_path(), ROOT, quick, 1 if quick else 3)
    results["programs"] = real
    phase("done")
    text = (markdown(results) + "\n\n" + peer_corpus.markdown(corpus, [t.name for t in all_tools])
            + "\n\n" + programs_markdown(real))
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "peers.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "peers.md"), "w") as f:
        f.write(text + "\n")
    return 0

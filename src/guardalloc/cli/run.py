"""``python -m guardalloc run``: run an unchanged program with guarding on.

    python -m guardalloc run [--pymem RATE] [--numpy] [--traceback] script.py [args...]
    python -m guardalloc run [options] -m module [args...]
    python -m guardalloc run --native [RATE] [--uaf ...] script.py [args...]

Turns guarding on in this interpreter, then runs the program the way
``python script.py`` / ``python -m module`` would (``__name__ ==
"__main__"``, ``sys.argv``, ``sys.path[0]``) and exits with its exit status:
the code it passes to ``sys.exit()``, 1 after an uncaught exception (its
traceback printed without the launcher's frames), or death by the signal of
a guard page that fired.

The program runs in a child interpreter (the same command line) whose
fault reports come back through a pipe and are written symbolized: native
frames with functions and lines, each event's Python and native frames
merged into one stack (guardalloc.symbolize). With no symbolizer installed
it runs in this interpreter, as before. Either way the exit status, and
death by a signal, are the program's.

``--native`` re-executes the interpreter, with the same command line, under
the preloadable malloc library (guardalloc.native), which then guards one
in RATE of every ``malloc`` in the process (C extensions and the libraries
under them); in the re-executed process ``LD_PRELOAD`` and
``GUARDALLOC_OPTIONS`` are put back as they were, so the program sees the
environment it was given. It composes with ``--numpy`` and ``--pymem``:
their blocks come from their own pools, never from ``malloc``, so no block
is guarded twice.

The library's options are flags here too (``cli/native_flags.py``). With
``--native`` they are the library's; without it, they apply to the pools of
``--pymem`` and ``--numpy`` that take them (``--log-path`` to the reports of
both), and one that neither takes is refused (exit 2), never ignored.
"""

from __future__ import annotations

import argparse
import importlib
import json
import importlib.util
import os
import runpy
import signal
import sys
import types
import traceback

from guardalloc.cli import native_flags
from guardalloc.cli.main import int_at_least
from guardalloc.hooks.pymem import DEFAULT_SAMPLE_RATE as DEFAULT_PYMEM_RATE
# Set in the re-executed interpreter: the LD_PRELOAD and GUARDALLOC_OPTIONS
# to put back (JSON; null: unset; {} without --native).
_REEXEC_ENV = "_GUARDALLOC_NATIVE_REEXEC"
_NATIVE_DEFAULT = "default"
# The library's options that the in-process front ends take without
# --native (keywords of pymem.install() and guardalloc.numpy.install());
# log_path applies to the reports of both (set_report_path). Not
# alignment for pymem: below 2 the interpreter's own data breaks (a code
# object's bytecode must be 2-aligned), so --alignment needs --numpy.
_PYMEM_TAKES = ("uaf", "max_bytes", "random", "native_stacks")
_NUMPY_TAKES = ("uaf", "alignment", "align", "quarantine", "on_fault", "max_bytes", "native_stacks")
_REPORTS_TAKE = ("log_path",)


_rate = int_at_least(0, "0 (off)")


# The examples of --help (cli.main.examples_epilog).
EXAMPLES = (
    ("guard one in 100 of the interpreter's allocations of a script", "app.py --its-flag"),
    ("every allocation, numpy arrays too, with allocation tracebacks", "--pymem 1 --numpy --traceback app.py"),
    ("every malloc of the process too (C extensions, ctypes)", "--native 1 -m pytest tests/"),
    ("freed blocks stay guarded; JSON reports in a file per process",
     "--native 1 --uaf --log-path reports.%p.json app.py"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pymem", type=_rate, default=DEFAULT_PYMEM_RATE, metavar="RATE",
        help=f"guard one in RATE of the interpreter's allocations (default {DEFAULT_PYMEM_RATE}; "
             "1: all of them; 0: off)")
    parser.add_argument("--numpy", action="store_true",
                        help="allocate every numpy array's data in guarded slots")
    parser.add_argument("--traceback", action="store_true",
                        help="record allocation and free tracebacks for fault reports")
    parser.add_argument("--native", nargs="?", const=_NATIVE_DEFAULT, metavar="RATE",
                        help="re-run under the preloadable malloc library, guarding one in RATE "
                             "of the process's malloc calls (1: all; default: the library's)")
    native_flags.add_arguments(parser.add_argument_group(
        "guard options",
        "The native library's options. With --native they are the library's; without it they "
        "apply to the --pymem and --numpy pools that take them (--log-path: to the reports of "
        "both), and one that neither takes is refused."), skip=("sample_rate",))
    parser.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE ...",
                        help="run a library module as a script, like python -m")
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    parser.usage = ("%(prog)s [--pymem RATE] [--numpy] [--traceback]\n"
                    "       [--native [RATE]] "
                    f"{native_flags.usage(skip=('sample_rate',), start=25, indent=7)}\n"
                    "       (script.py | -m module) [args ...]")
    parser.epilog = "Exits with the program's exit status."


# The program name in messages when run() is called without cli.main's args.prog.
PROG = "python -m guardalloc run"
_prog = PROG


def _fail(message: str) -> int:
    print(f"{_prog}: {message}", file=sys.stderr)
    return 2


def _pool_options(args: argparse.Namespace) -> tuple[dict, dict, str | None] | str:
    """Without --native: the guard flags given as options of the PyMem and
    numpy pools, and the report path; or the message refusing a flag that
    no front end of this run takes."""
    pymem_options: dict = {}
    numpy_options: dict = {}
    log_path = None
    for name, value in native_flags.given(args).items():
        taken = False
        if name in _PYMEM_TAKES and args.pymem:
            pymem_options[name] = value
            taken = True
        if name in _NUMPY_TAKES and args.numpy:
            numpy_options[name] = value
            taken = True
        if name in _REPORTS_TAKE and (args.pymem or args.numpy):
            log_path = value
            taken = True
        if not taken:
            takers = [front for front, takes in (("--pymem RATE", _PYMEM_TAKES), ("--numpy", _NUMPY_TAKES),
                                                 ("--pymem/--numpy", _REPORTS_TAKE)) if name in takes]
            return f"{native_flags.flag_of(name)} needs {' or '.join([*takers, '--native'])}: nothing in this run takes it"
    return pymem_options, numpy_options, log_path


def _enable_guarding(args: argparse.Namespace) -> int | None:
    """Turn on what the options ask for; an exit status on failure."""
    import guardalloc

    pymem_options: dict = {}
    numpy_options: dict = {}
    if args.native is None:
        found = _pool_options(args)
        if isinstance(found, str):
            return _fail(found)
        pymem_options, numpy_options, log_path = found
        if log_path is not None:
            guardalloc.set_report_path(log_path or None)
    guardalloc.enable_reports()
    if args.traceback:
        guardalloc.enable_tracebacks()
    if args.numpy:
        try:
            guarded_numpy = importlib.import_module("guardalloc.numpy")
        except ImportError as exc:
            return _fail(f"--numpy needs numpy and guardalloc.numpy: {exc}")
        try:
            guarded_numpy.install(**numpy_options)
        except (TypeError, ValueError) as exc:
            return _fail(f"--numpy: {exc}")
    if args.pymem:
        from guardalloc.hooks import pymem
        try:
            pymem.install(sample_rate=args.pymem, **pymem_options)
        except (TypeError, ValueError) as exc:
            return _fail(f"--pymem: {exc}")
    return None


def _exit_status(exc: SystemExit) -> int:
    """What the interpreter would exit with for this SystemExit."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code    # sys.exit() hands it to exit(), which keeps the low byte
    print(code, file=sys.stderr)
    return 1


def _print_program_traceback(exc: BaseException) -> None:
    """The traceback of an uncaught exception, starting at the program's
    frames (runpy's and ours are left out, as python itself would show)."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    skipped = {"<frozen runpy>", os.path.abspath(runpy.__file__)}
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in skipped and os.path.dirname(os.path.abspath(filename)) != here:
            break
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _native_rate(args: argparse.Namespace) -> int | None | str:
    """--native's RATE (None: the library's default), or an error message.
    ``--native script.py`` parses the script as RATE: give it back."""
    value = args.native
    if value == _NATIVE_DEFAULT:
        return None
    if value.isdigit():
        return int(value)
    if args.module is not None:
        return f"--native RATE must be a whole number, not {value!r}"
    if args.script is not None:
        args.args = [args.script, *args.args]
    args.script = value
    return None


def _reexec_native(args: argparse.Namespace) -> int:
    """Run this interpreter's command line again, as a child under the
    library whose reports come back symbolized; its exit status (a child
    killed by a signal: this process dies of it too)."""
    from guardalloc.hooks import preload

    rate = _native_rate(args)
    if isinstance(rate, str):
        return _fail(rate)
    if args.module is None and args.script is not None and not os.path.exists(args.script):
        return _fail(f"can't open file {args.script!r}: no such file")
    try:
        env = preload.environment(None, sample_rate=rate, **native_flags.given(args))
    except (TypeError, ValueError, FileNotFoundError) as exc:
        return _fail(f"--native: {exc}")
    refused = preload.python_alignment_error(env.get(preload.OPTIONS_ENV, ""))
    if refused is not None:
        return _fail(f"--native: {refused}")
    env[_REEXEC_ENV] = json.dumps({name: os.environ.get(name)
                                   for name in ("LD_PRELOAD", preload.OPTIONS_ENV)})
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, "-m", "guardalloc", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    from guardalloc.symbolize.child import run_symbolized
    try:
        # A child, not exec(): this process symbolizes the child's reports.
        return run_symbolized([sys.executable, *argv[1:]], env)
    except OSError as exc:
        return _fail(f"--native: cannot re-execute {sys.executable}: {exc.strerror}")


def _reexec_symbolized() -> int | None:
    """Without --native: run this interpreter's command line again as a
    child whose reports come back symbolized; its exit status (a child killed
    by a signal: this process dies of it too; 2 when $GUARDALLOC_SYMBOLIZER
    names a symbolizer that is not installed). None when no symbolizer is
    installed: then the program runs here, its reports raw."""
    from guardalloc.symbolize.backends import SymbolizerError
    from guardalloc.symbolize.child import run_symbolized
    from guardalloc.symbolize.symbolizer import Symbolizer

    try:
        if Symbolizer().backend is None:
            return None
    except SymbolizerError as exc:   # $GUARDALLOC_SYMBOLIZER names none installed
        return _fail(str(exc))
    env = dict(os.environ)
    env[_REEXEC_ENV] = "{}"
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, "-m", "guardalloc", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return run_symbolized([sys.executable, *argv[1:]], env)
    except OSError:
        return None   # the program runs here instead


def _restore_environment() -> None:
    """In the re-executed interpreter: the environment the program was given;
    text reports go to the launcher's pipe (symbolize/child.py) when it
    handed one over."""
    from guardalloc import faults
    from guardalloc.symbolize.child import REPORT_PIPE_ENV, report_pipe_fd

    saved = json.loads(os.environ.pop(_REEXEC_ENV))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    fd = report_pipe_fd(os.environ.get(REPORT_PIPE_ENV))
    if fd is not None:
        faults.set_report_fd(fd)


def _hide_launcher_frames() -> None:
    """Leave this launcher's frames (and the CLI's, and runpy's) out of the
    allocation and free tracebacks that fault reports show: they sit below
    every frame of the program and would only push its own lines down."""
    from guardalloc.pyframes import _stop_at

    codes = [_run_program.__code__, runpy.run_path.__code__, runpy.run_module.__code__,
             *(f.__code__ for f in vars(runpy).values() if callable(f) and hasattr(f, "__code__")
               and f.__name__.startswith("_run"))]
    frame: types.FrameType | None = sys._getframe()
    while frame is not None:   # everything below the program: cli, __main__, runpy
        codes.append(frame.f_code)
        frame = frame.f_back
    _stop_at(codes)


def _run_program(module: str | None, script: str | None) -> None:
    """Run the program as python would: ``-m module`` or the script."""
    if module is not None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        assert script is not None   # run() checked that one of the two was given
        # Absolute, as python sets a script's __file__ (tracebacks name it so).
        runpy.run_path(os.path.abspath(script), run_name="__main__")


def run(args: argparse.Namespace) -> int:
    global _prog
    _prog = getattr(args, "prog", PROG)
    if args.native is not None:
        if _REEXEC_ENV not in os.environ:
            return _reexec_native(args)
    child = _REEXEC_ENV in os.environ
    if child:
        _restore_environment()
    if args.native is not None:
        rate = _native_rate(args)
        if isinstance(rate, str):
            return _fail(rate)
    if args.module is not None:
        if args.script is not None or args.args:
            return _fail("give either a script or -m module, not both")
        if not args.module:
            return _fail("-m needs a module name")
        module, *program_args = args.module
    else:
        if args.script is None:
            return _fail(f"no script given ({_prog} script.py [args], or -m module)")
        if not os.path.exists(args.script):
            return _fail(f"can't open file {args.script!r}: no such file")
        if os.path.isdir(args.script) and not os.path.exists(os.path.join(args.script, "__main__.py")):
            return _fail(f"can't find '__main__' module in {args.script!r} (a directory needs a __main__.py)")
        module, program_args = None, list(args.args)

    if not child and args.native is None and (module is None or importlib.util.find_spec(module) is not None):
        status = _reexec_symbolized()
        if status is not None:
            return status
    failed = _enable_guarding(args)
    if failed is not None:
        return failed
    _hide_launcher_frames()

    if module is not None:
        # Like python -m: sys.path[0] is the current directory; runpy puts
        # the module's file name in sys.argv[0].
        sys.path[0] = os.getcwd()
        try:
            spec = importlib.util.find_spec(module)
        except ImportError:
            spec = None
        if spec is None:
            return _fail(f"no module named {module!r}")
        sys.argv = [module, *program_args]
    else:
        script = args.script
        assert script is not None   # run() returned above when neither was given
        sys.argv = [script, *program_args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        _run_program(module, args.script)
    except SystemExit as exc:
        return _exit_status(exc)
    except BaseException as exc:   # what python does with an uncaught exception
        _print_program_traceback(exc)
        if isinstance(exc, KeyboardInterrupt):
            _die_by_sigint()
        return 1
    return 0


def _die_by_sigint() -> None:
    """End as python does after an uncaught KeyboardInterrupt: killed by
    SIGINT, so that a shell or a parent sees the signal, not an exit code."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)

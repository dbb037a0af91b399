"""Guarded numpy arrays: a NEP 49 memory handler backed by guardalloc.

    import numpy as np
    import guardalloc.numpy

    with guardalloc.numpy.guarded():
        a = np.zeros(1000)          # data ends right before a guard page
    a[999] = 1.0                    # still fine after the block
    np.lib.stride_tricks.as_strided(a, shape=(1100,))[1050]   # SIGSEGV

numpy keeps its memory handler in a context variable. :class:`guarded`
changes it for the current context only: other threads and other asyncio
tasks keep numpy's allocator. :func:`install` makes it the handler of the
current context *and* of every thread the threading module starts afterwards
(a new thread starts with an empty context, so a one-shot ``threading``
profile hook sets the handler in each new thread before its ``run()``).

Every array frees its data through the handler that allocated it; handlers
and their pools therefore live as long as the process, one per distinct set
of options.

Alignment: numpy expects data aligned to 16 bytes, so by default blocks end
at the guard page rounded *down* to 16 bytes, and an overflow of up to 15
bytes lands in slack bytes instead of the guard. Those bytes hold a pattern
that is checked when the array is freed (or resized): damage is reported as
a :class:`guardalloc.CorruptionError` through ``sys.unraisablehook``.
``alignment=1`` is the byte-exact mode: the last data byte touches the
guard, so the first byte past the end faults. Arrays whose size is a multiple
of their item size (all of them) then stay aligned to their item size's
largest power-of-two factor.

This module needs numpy (``pip install 'guardalloc[numpy]'``); ``import
guardalloc`` does not import it.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import sys
import threading
from typing import Any

try:
    import numpy as _np   # absolute import: the real numpy, not this module
except ImportError as exc:  # pragma: no cover - exercised without numpy only
    raise ImportError(
        "guardalloc.numpy needs numpy: pip install 'guardalloc[numpy]'") from exc

from guardalloc.hooks import _numpy_handler
from guardalloc.hooks._numpy_handler import HANDLER_NAME, Handler
from guardalloc.errors import AddressSpaceError
from guardalloc.options import POOL_OPTIONS, check_bool, check_int, check_option_names

__all__ = [
    "HANDLER_NAME",
    "Handler",
    "get_handler_name",
    "guarded",
    "handler",
    "install",
    "installed",
    "is_guarded",
    "max_block",
    "uninstall",
]

if int(_np.__version__.split(".")[0]) >= 2:
    from numpy._core import _multiarray_umath as _umath  # type: ignore[attr-defined]
    from numpy._core.multiarray import get_handler_name
else:  # numpy 1.22 to 1.26
    from numpy.core import _multiarray_umath as _umath
    from numpy.core.multiarray import get_handler_name  # type: ignore[no-redef]

_ABI_VERSION, _FEATURE_VERSION = _numpy_handler.load_numpy_api(_umath._ARRAY_API)

# Options that belong to the handler, not to the Pool.
_HANDLER_OPTIONS = ("fallback", "strict")
_DEFAULT_ALIGNMENT = 16

_handlers_lock = threading.Lock()
_handlers: dict[tuple, Handler] = {}


def handler(**options: Any) -> Handler:
    """The guardalloc handler for these options, made on first use and kept
    for the life of the process.

    Options are those of :class:`guardalloc.Pool` (``alignment``, ``align``,
    ``guard_pages``, ``uaf``, ``max_bytes``, ``max_arenas``, ``quarantine``,
    ``on_fault``, ``backend``, ``grow``, ``tracebacks``, ``native_stacks``)
    plus:

    - ``native_stacks=True``: every array's data block keeps the native
      stack of its allocation and free (numpy's C frames and their
      callers), shown in fault reports; False saves the unwinding, a few
      hundred ns per allocation and free (bench/bench_numpy.py).
    - ``tracebacks``: True records the Python traceback of each allocation
      and free that numpy makes with the GIL held (nearly all of them:
      array creation, copies, ufunc outputs) for fault reports; None (the
      default) follows :func:`guardalloc.enable_tracebacks`.

    - ``strict=False``: arrays larger than the pool's largest block
      (:func:`max_block`, 3.5 GiB with 4 KiB pages) are served, unguarded, by
      numpy's own allocator, so that a program that works with numpy's
      allocator keeps working; at exit one line on stderr says how many
      there were and the largest size (also in :meth:`Handler.stats`).
      ``strict=True`` refuses them (numpy raises ``MemoryError``).
    - ``fallback=False``: when True, a request the pool refuses because a
      limit is reached (``max_bytes``, ``max_arenas``) is served by numpy's
      allocator instead of failing with ``MemoryError``.

    ``alignment`` defaults to 16 (what numpy expects); 1 is the byte-exact
    mode; other values must be powers of two of at least 16. ``hugepages``
    defaults to numpy's own huge page setting for large arrays.

    Raises:
        TypeError: an unknown option (the message names it and lists the
            options), or a value of the wrong type.
        ValueError: an option is out of range (``alignment`` here, the
            rest from :class:`guardalloc.Pool`).
    """
    check_option_names(options, _HANDLER_OPTIONS + POOL_OPTIONS,
                       "guardalloc.numpy (handler(), guarded(), install())")
    accepted = "1 (byte-exact) or a power of two of at least 16 (numpy expects 16-byte aligned data)"
    alignment = options["alignment"] = check_int(
        "alignment", options.get("alignment", _DEFAULT_ALIGNMENT), 1, None, accepted)
    if not (alignment == 1 or (alignment >= 16 and alignment & (alignment - 1) == 0)):
        raise ValueError(f"alignment must be {accepted}, not {alignment!r}")
    options["native_stacks"] = check_bool("native_stacks", options.get("native_stacks", True))
    # numpy's own policy for large arrays: transparent huge pages when
    # numpy asks for them (numpy._core.multiarray._set_madvise_hugepage).
    options.setdefault("hugepages", _numpy_wants_hugepages())
    fallback = check_bool("fallback", options.setdefault("fallback", False))
    strict = check_bool("strict", options.setdefault("strict", False))
    for name, value in options.items():
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"{name} must be a hashable option value, not {type(value).__name__}") from None
    key = tuple(sorted(options.items()))
    with _handlers_lock:
        found = _handlers.get(key)
        if found is not None:
            return found
        from guardalloc.pool import Pool

        pool_options = {k: v for k, v in options.items() if k not in _HANDLER_OPTIONS}
        try:
            pool = Pool(**pool_options)
        except AddressSpaceError as exc:
            raise exc.instead("guardalloc.numpy.install(), guarded() or handler()") from None
        numpy_capsule = _default_handler() if fallback or not strict else None
        made = _numpy_handler.make_handler(pool, numpy_capsule, dict(options), bool(fallback), bool(strict),
                                           pool.options.tracebacks)
        if not _handlers:
            atexit.register(_say_oversize)
        _handlers[key] = made
        return made


def max_block() -> int:
    """Bytes of the largest array data a handler guards; larger arrays go to
    numpy's allocator (``strict=False``, the default) or fail."""
    return _numpy_handler.max_block()


def _say_oversize() -> None:
    """At exit: one line on stderr per handler that sent arrays larger than
    its largest block to numpy's allocator."""
    for made in list(_handlers.values()):
        stats = made.stats()
        if stats["oversize"]:
            sys.stderr.write(
                f"guardalloc.numpy: {stats['oversize']} array request(s) larger than the largest "
                f"guarded block ({max_block():,} bytes; the largest asked for {stats['largest_oversize']:,}) "
                "went to numpy's own allocator, unguarded (strict=True refuses them)\n")
    sys.stderr.flush()


def _numpy_wants_hugepages() -> bool:
    """Whether numpy's allocator asks for huge pages on large arrays."""
    import numpy

    core = getattr(numpy, "_core", None) or numpy.core
    getter = getattr(core.multiarray, "_get_madvise_hugepage", None)
    return bool(getter()) if getter is not None else False


def _default_handler():
    """numpy's own handler capsule (what a fresh context uses)."""
    return contextvars.Context().run(_numpy_handler.get_handler)


class guarded(contextlib.ContextDecorator):
    """Context manager (and decorator): numpy arrays made inside get their
    data from guarded slots.

    Only the current context is affected (this thread, this asyncio task);
    arrays made inside keep working after the block ends. Blocks nest, and
    one ``guarded`` object may be entered by several threads or tasks at
    once. ``__enter__`` returns the :class:`Handler`.

    Raises (at construction): what :func:`handler` raises.
    """

    def __init__(self, **options: Any) -> None:
        self.handler = handler(**options)
        # The handlers to restore, per context: entering from two threads or
        # tasks at once must not mix up their stacks.
        self._saved: contextvars.ContextVar[tuple] = contextvars.ContextVar(
            "guardalloc.numpy.guarded", default=())

    def __enter__(self) -> Handler:
        previous = _numpy_handler.set_handler(self.handler.capsule)
        self._saved.set(self._saved.get() + (previous,))
        return self.handler

    def __exit__(self, *exc_info: object) -> None:
        stack = self._saved.get()
        if not stack:
            raise RuntimeError("guardalloc.numpy.guarded exited in another context than it was entered")
        self._saved.set(stack[:-1])
        _numpy_handler.set_handler(stack[-1])

    def __repr__(self) -> str:
        return f"guardalloc.numpy.guarded({', '.join(f'{k}={v!r}' for k, v in self.handler.options.items())})"


# -- install() / uninstall() ----------------------------------------------

class _Installed:
    def __init__(self, handler: Handler, previous: object) -> None:
        self.handler = handler
        self.previous = previous      # handler of the installing context before


_install_lock = threading.Lock()
_installed: _Installed | None = None
# threading's profile hook before install(); kept after uninstall() for the
# threads that were started meanwhile and run the hook late.
_previous_thread_profile: Any = None


def _get_thread_profile():
    getprofile = getattr(threading, "getprofile", None)   # Python 3.10+
    return getprofile() if getprofile is not None else getattr(threading, "_profile_hook", None)


def _thread_start_hook(frame, event, arg):
    """threading's profile hook: runs once, first thing in each new thread.

    Sets the installed handler in the thread's (new, empty) context, then puts
    back the profile hook that was there before install(), and passes it
    this event."""
    previous = _previous_thread_profile
    sys.setprofile(previous)
    state = _installed
    if state is not None:
        _numpy_handler.set_handler(state.handler.capsule)
    if previous is not None:
        previous(frame, event, arg)


def install(**options: Any) -> Handler:
    """Guard every numpy array the program makes from now on.

    Sets the handler in the current context (call it at the start of the
    program, in the main thread: asyncio tasks copy the context they start
    in) and in every thread started afterwards through :mod:`threading`
    (``threading.Thread``, ``concurrent.futures``, asyncio's default
    executor). Threads that are already running keep their handler; so do
    threads started with ``_thread.start_new_thread`` or from C. A profile
    hook set with ``threading.setprofile`` before ``install()`` keeps
    working; one set afterwards replaces guardalloc's, and new threads are
    then no longer covered.

    Calling it again switches to a handler with the new options. Options:
    see :func:`handler`. Returns the handler.

    Raises: what :func:`handler` raises.
    """
    global _installed, _previous_thread_profile
    made = handler(**options)
    with _install_lock:
        if _installed is None:
            current = _get_thread_profile()
            if current is not _thread_start_hook:
                _previous_thread_profile = current
            previous = _numpy_handler.set_handler(made.capsule)
            _installed = _Installed(made, previous)
            threading.setprofile(_thread_start_hook)
        else:
            _numpy_handler.set_handler(made.capsule)
            _installed = _Installed(made, _installed.previous)
    return made


def uninstall() -> bool:
    """Undo :func:`install`: the current context gets back the handler it had
    before, and threads started from now on use numpy's default. Arrays made
    while installed keep working. Threads started while installed keep the
    guardalloc handler for the arrays they make later.

    Returns False when nothing was installed.
    """
    global _installed
    with _install_lock:
        state = _installed
        if state is None:
            return False
        _installed = None
        if _get_thread_profile() is _thread_start_hook:
            threading.setprofile(_previous_thread_profile)
        _numpy_handler.set_handler(state.previous)
    return True


def installed() -> Handler | None:
    """The handler :func:`install` put in place, or None."""
    state = _installed
    return state.handler if state is not None else None


def is_guarded(array: Any) -> bool:
    """Whether a numpy array's data lives in a guardalloc pool (its handler
    is guardalloc's and the data is not a fallback block)."""
    base = array
    while isinstance(base, _np.ndarray) and base.base is not None and isinstance(base.base, _np.ndarray):
        base = base.base
    if not isinstance(base, _np.ndarray) or get_handler_name(base) != HANDLER_NAME:
        return False
    address = array.__array_interface__["data"][0]
    return any(h.owns(address) for h in list(_handlers.values()))

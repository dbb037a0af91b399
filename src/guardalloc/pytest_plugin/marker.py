"""``@pytest.mark.guardalloc``: per-test guarding options, applied from a
marked test's setup to its teardown."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from guardalloc.cli.run import DEFAULT_PYMEM_RATE

from .options import Settings

MARKER_OPTIONS = ("uaf", "alignment", "align", "guard_pages")
MARKER_HELP = (
    "guardalloc(enabled=True, *, uaf=..., alignment=..., align=..., guard_pages=..., pymem=RATE, "
    "forked=True): guardalloc options for this test's numpy arrays and guard_pool, its PyMem "
    "sample rate (pymem=False: off); guardalloc(False) opts out of numpy and PyMem guarding; "
    "forked=False runs it in the session process under --guardalloc-forked"
)


def import_guardalloc_numpy(what: str):
    """The guardalloc.hooks.numpy module.

    Raises:
        pytest.UsageError: numpy is missing (what names who needs it).
    """
    try:
        import guardalloc.hooks.numpy as guarded_numpy
    except ImportError as exc:
        raise pytest.UsageError(f"{what} needs numpy: {exc}") from None
    return guarded_numpy


def marker_settings(item: pytest.Item, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether guarding is on for this test and the pool options it asks for
    (``@pytest.mark.guardalloc(False)`` / ``(uaf=True, alignment=1)``).

    Raises:
        TypeError: the marker has an unknown option, more than one argument
            or a bad ``pymem`` value.
    """
    marker = item.get_closest_marker("guardalloc")
    options = settings.pool_options()
    if marker is None:
        return True, options
    if len(marker.args) > 1 or any(not isinstance(a, bool) for a in marker.args):
        raise TypeError(f"@pytest.mark.guardalloc takes one True/False argument, not {marker.args!r}")
    known = (*MARKER_OPTIONS, "pymem", "forked")
    unknown = set(marker.kwargs) - set(known)
    if unknown:
        raise TypeError(f"@pytest.mark.guardalloc: unknown option(s) {sorted(unknown)}; "
                        f"known: {', '.join(known)}")
    marker_pymem_rate(marker)    # checked here, where every marked test passes
    options.update({k: v for k, v in marker.kwargs.items() if k in MARKER_OPTIONS})
    return (marker.args[0] if marker.args else True), options


def marker_pymem_rate(marker: pytest.Mark) -> int | None:
    """The PyMem sample rate a marker asks for: ``pymem=RATE`` (0 or False:
    off, True: the default rate), 0 for ``guardalloc(False)``, None to keep
    the session's.

    Raises:
        TypeError: ``pymem`` is neither a bool nor an int >= 0.
    """
    if "pymem" not in marker.kwargs:
        return 0 if marker.args and marker.args[0] is False else None
    value = marker.kwargs["pymem"]
    if value is True:
        return DEFAULT_PYMEM_RATE
    if value is False:
        return 0
    if not isinstance(value, int) or value < 0:
        raise TypeError(f"@pytest.mark.guardalloc: pymem must be a sample rate (an int >= 0, "
                        f"0: off) or True/False, not {value!r}")
    return value


def switch_pymem(rate: int, uaf: bool):
    """Make PyMem sampling guard one allocation in ``rate`` (0: none) and
    return a function that puts back what was there, or None when nothing
    changes. Blocks guarded before stay valid either way: the hooks free
    each pointer by who owns it (``guardalloc.pymem.uninstall()`` keeps them
    installed, forwarding, while guarded blocks are live).

    Raises:
        RuntimeError: another allocator hook sits on guardalloc's (tracemalloc).
    """
    from guardalloc.hooks import pymem
    before = pymem.stats()
    sampling = before["state"] == "sampling"
    domains: Any = tuple(name for name in pymem.DOMAIN_NAMES if before[name]["sampling"]) or pymem.DOMAIN_NAMES
    if rate == (before["sample_rate"] if sampling else 0):
        return None
    if rate == 0:
        pymem.uninstall()
    else:
        pymem.install(sample_rate=rate, domains=domains, uaf=uaf)

    def restore() -> None:
        if sampling:
            pymem.install(sample_rate=before["sample_rate"], domains=domains,
                          random=before["random"], uaf=uaf)
        else:
            pymem.uninstall()
    return restore


class _MarkerScope:
    """What a marked test changes, from setup to teardown: numpy's handler
    (the marker's options, or numpy's own allocator for guardalloc(False))
    and the PyMem sample rate (``pymem=``)."""

    _saved: dict[str, list] = {}

    @classmethod
    def enter(cls, item: pytest.Item, settings: Settings) -> None:
        marker = item.get_closest_marker("guardalloc")
        if marker is None:
            return
        enabled, options = marker_settings(item, settings)
        restores = cls._saved[item.nodeid] = []
        rate = marker_pymem_rate(marker)
        if rate is not None:
            restore = switch_pymem(rate, settings.uaf)
            if restore is not None:
                restores.append(restore)
        if not (settings.numpy or enabled) or "numpy" not in sys.modules:
            return      # nothing to hand arrays out for
        guarded_numpy = import_guardalloc_numpy("@pytest.mark.guardalloc")
        from guardalloc.hooks import _numpy_handler  # type: ignore[attr-defined]
        if enabled:
            context = guarded_numpy.guarded(**options)
            context.__enter__()
            restores.append(lambda: context.__exit__(None, None, None))
        else:
            previous = _numpy_handler.set_handler(guarded_numpy._default_handler())
            restores.append(lambda: _numpy_handler.set_handler(previous))

    @classmethod
    def exit(cls, item: pytest.Item) -> None:
        for restore in reversed(cls._saved.pop(item.nodeid, ())):
            restore()

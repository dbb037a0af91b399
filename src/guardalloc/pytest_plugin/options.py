"""The plugin's settings: the ``guardalloc`` ini option and the
``--guardalloc-*`` command-line options, read into one :class:`Settings`."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

from guardalloc.cli import run as launcher
from guardalloc.cli.run import DEFAULT_PYMEM_RATE


@dataclasses.dataclass
class Settings:
    """What the command line and the ini file ask for."""

    numpy: bool = False
    pymem: int = 0           # sample rate; 0: off
    native: int = 0          # sample rate of the preloaded library; 0: off
    uaf: bool = False
    alignment: int | None = None
    forked: bool = False
    tracebacks: bool = False
    report_dir: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.numpy or self.pymem or self.native or self.forked or self.uaf
                    or self.alignment is not None or self.tracebacks or self.report_dir)

    def pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.uaf:
            options["uaf"] = True
        if self.alignment is not None:
            options["alignment"] = self.alignment
        return options


def _rate(text: str, what: str) -> int:
    try:
        return launcher._rate(text)     # the launcher's rule for --pymem RATE
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{what}: {exc}") from None


def _alignment(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not (value == 1 or (value >= 16 and value & (value - 1) == 0)):
        raise pytest.UsageError(
            f"{what}: alignment must be 1 (byte-exact) or a power of two of at least 16, not {text!r}")
    return value


def _apply_ini_token(settings: Settings, token: str) -> None:
    name, sep, value = token.partition(":")
    what = f"ini option guardalloc: {token!r}"
    flags = {"numpy", "uaf", "forked", "tracebacks", "default"}
    if name in flags and sep:
        raise pytest.UsageError(f"{what}: {name} takes no value")
    if name == "default":
        settings.numpy = True
        settings.pymem = settings.pymem or DEFAULT_PYMEM_RATE
    elif name in ("numpy", "uaf", "forked", "tracebacks"):
        setattr(settings, name, True)
    elif name == "pymem":
        settings.pymem = _rate(value, what) if sep else DEFAULT_PYMEM_RATE
    elif name == "native":
        settings.native = _rate(value, what) if sep else 1
    elif name == "alignment" and sep:
        settings.alignment = _alignment(value, what)
    elif name == "report-dir" and sep and value:
        settings.report_dir = value
    else:
        raise pytest.UsageError(
            f"{what}: unknown; use default, numpy, pymem[:RATE], native[:RATE], uaf, "
            "alignment:N, forked, tracebacks, report-dir:DIR")


def settings_from(config: pytest.Config) -> Settings:
    """The settings of this session: the ini option, then the command line.

    Raises:
        pytest.UsageError: a bad ini token or option value.
    """
    settings = Settings()
    for token in config.getini("guardalloc"):
        _apply_ini_token(settings, token)
    option = config.option
    if option.guardalloc:
        settings.numpy = True
        settings.pymem = settings.pymem or DEFAULT_PYMEM_RATE
    if option.guardalloc_numpy:
        settings.numpy = True
    if option.guardalloc_pymem is not None:
        settings.pymem = _rate(option.guardalloc_pymem, "--guardalloc-pymem")
    if option.guardalloc_native is not None:
        settings.native = _rate(option.guardalloc_native, "--guardalloc-native")
    if option.guardalloc_uaf:
        settings.uaf = True
    if option.guardalloc_alignment is not None:
        settings.alignment = _alignment(option.guardalloc_alignment, "--guardalloc-alignment")
    if option.guardalloc_forked:
        settings.forked = True
    if option.guardalloc_tracebacks:
        settings.tracebacks = True
    if option.guardalloc_report_dir:
        settings.report_dir = option.guardalloc_report_dir
    return settings


def add_options(parser: pytest.Parser) -> None:
    """Declare the command-line options and the ini option."""
    group = parser.getgroup("guardalloc", "guard pages under the test suite (guardalloc)")
    group.addoption("--guardalloc", action="store_true", default=False,
                    help="guard numpy arrays and one in "
                         f"{DEFAULT_PYMEM_RATE} of the interpreter's allocations")
    group.addoption("--guardalloc-numpy", action="store_true", default=False,
                    help="allocate every numpy array's data in guarded slots")
    group.addoption("--guardalloc-pymem", metavar="RATE", default=None,
                    help="guard one in RATE of the interpreter's allocations (1: all; 0: off)")
    group.addoption("--guardalloc-native", metavar="RATE", default=None,
                    help="re-execute pytest with guardalloc's malloc library preloaded, "
                         "guarding one in RATE native allocations")
    group.addoption("--guardalloc-uaf", action="store_true", default=False,
                    help="guard freed blocks too (use-after-free)")
    group.addoption("--guardalloc-alignment", metavar="N", default=None,
                    help="block alignment: 1 (byte-exact) or a power of two >= 16 (default 16)")
    group.addoption("--guardalloc-forked", action="store_true", default=False,
                    help="run the tests in a forked child, a new one after a crash: a fault fails its test only")
    group.addoption("--guardalloc-tracebacks", action="store_true", default=False,
                    help="record allocation/free tracebacks of guardalloc buffers for reports")
    group.addoption("--guardalloc-report-dir", metavar="DIR", default=None,
                    help="write JSON fault reports (docs/report-schema.json) into DIR")
    parser.addini("guardalloc", type="args", default=[],
                  help="guardalloc settings: default numpy pymem[:RATE] native[:RATE] uaf "
                       "alignment:N forked tracebacks report-dir:DIR")


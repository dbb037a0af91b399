"""Guarding the interpreter's own allocations (see pymem.pyx)."""

from collections.abc import Iterable
from typing import Literal

from guardalloc.options import default_max_bytes as default_max_bytes
from guardalloc.pool import Pool
from guardalloc.stats import PymemStats

DOMAIN_NAMES: tuple[str, str, str]
DEFAULT_SAMPLE_RATE: int
PREPARED_MAX_SLOT: int
PREPARED_SHARE: int
PREPARED_SMALL_SLOT: int

def install(
    sample_rate: int = ...,
    *,
    domains: Iterable[Literal["raw", "mem", "obj"]] = ("raw", "mem", "obj"),
    max_bytes: int | None = None,
    random: bool = False,
    seed: int | None = None,
    alignment: int = 16,
    uaf: bool = False,
    guard_pages: int = 1,
    native_stacks: bool | None = None,
) -> None: ...
def uninstall() -> bool: ...
def state() -> Literal["sampling", "draining", "off"]: ...
def pool() -> Pool | None: ...
def stats() -> PymemStats: ...

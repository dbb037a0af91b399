"""guardalloc: guard pages between every slot, without a VMA per guard.

    >>> import guardalloc
    >>> with guardalloc.Arena(4096, 1000) as arena:
    ...     buf = arena.alloc(100)     # ends right before a guard page
    ...     memoryview(buf)[:5] = b"hello"

See the README for the tour.
"""

from guardalloc import pyframes as _pyframes  # noqa: F401  registers the Python frame walker with the core
from guardalloc.arena import Arena, Buffer
from guardalloc.errors import (
    AddressSpaceError,
    BackingFileError,
    CorruptionError,
    DoubleFreeError,
    ForeignBufferError,
    FreeError,
    GuardError,
    GuardInstallError,
    GuardUnsupportedError,
    InvalidFreeError,
)
from guardalloc.faults import (
    disable_reports,
    enable_reports,
    get_report_path,
    reports_enabled,
    set_report_path,
)
from guardalloc.options import GuardOptions
from guardalloc.introspect.maps import vma_count
from guardalloc.shared import SharedArena
from guardalloc.pool import Pool, alloc, configure, default_pool
from guardalloc.introspect.probe import Support, support
from guardalloc.tracebacks import (
    disable_tracebacks,
    enable_tracebacks,
    get_tracebacks,
    set_tracebacks,
    tracebacks_enabled,
)

__version__ = "0.1.0"

__all__ = [
    "AddressSpaceError",
    "Arena",
    "BackingFileError",
    "Buffer",
    "CorruptionError",
    "DoubleFreeError",
    "ForeignBufferError",
    "FreeError",
    "GuardError",
    "GuardInstallError",
    "GuardOptions",
    "GuardUnsupportedError",
    "InvalidFreeError",
    "Pool",
    "SharedArena",
    "Support",
    "alloc",
    "configure",
    "default_pool",
    "disable_reports",
    "disable_tracebacks",
    "enable_reports",
    "enable_tracebacks",
    "get_report_path",
    "reports_enabled",
    "set_report_path",
    "support",
    "tracebacks_enabled",
    "vma_count",
]

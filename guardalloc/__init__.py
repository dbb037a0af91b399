"""guardalloc: guard pages between every slot, without a VMA per guard.

    >>> import guardalloc
    >>> with guardalloc.Arena(4096, 1000) as arena:
    ...     buf = arena.alloc(100)     # ends right before a guard page
    ...     memoryview(buf)[:5] = b"hello"

See the README for the tour.
"""

from guardalloc.arena import Arena, Buffer, batching_refused, get_tracebacks, set_tracebacks
from guardalloc.errors import (
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
from guardalloc.maps import vma_count
from guardalloc.shared import SharedArena
from guardalloc.pool import Pool, alloc, default_pool
from guardalloc.support import Support, support

__version__ = "0.1.0"

__all__ = [
    "Arena",
    "BackingFileError",
    "Buffer",
    "CorruptionError",
    "DoubleFreeError",
    "ForeignBufferError",
    "FreeError",
    "GuardError",
    "GuardInstallError",
    "GuardUnsupportedError",
    "InvalidFreeError",
    "Pool",
    "SharedArena",
    "Support",
    "alloc",
    "batching_refused",
    "default_pool",
    "disable_reports",
    "enable_reports",
    "get_report_path",
    "get_tracebacks",
    "reports_enabled",
    "set_report_path",
    "set_tracebacks",
    "support",
    "vma_count",
]

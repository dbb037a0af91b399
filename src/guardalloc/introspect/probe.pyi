"""What the running kernel offers for guard pages (see support.pyx)."""

from dataclasses import dataclass
from typing import Literal

PAGE_SIZE: int
PAGEMAP_GUARD_BIT: int

def max_map_count() -> int | None: ...

@dataclass(frozen=True)
class Support:
    kernel: str
    anonymous: bool | None
    file_shared: bool | None
    process_madvise: bool | None
    pagemap_guard_bit: bool | None
    auto_backend: Literal["madvise", "mprotect"]
    reason: str
    pagemap_scan: bool | None = False
    unknown: str = ""

def support(refresh: bool = False) -> Support: ...

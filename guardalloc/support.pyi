from dataclasses import dataclass
from typing import Literal

PAGE_SIZE: int
PAGEMAP_GUARD_BIT: int

@dataclass(frozen=True)
class Support:
    kernel: str
    anonymous: bool
    file_shared: bool
    process_madvise: bool
    pagemap_guard_bit: bool
    auto_backend: Literal["madvise", "mprotect"]
    reason: str

def support(refresh: bool = False) -> Support: ...

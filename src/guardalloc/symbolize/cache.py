"""What symbolizing a module's offsets answered, kept on disk by build-id:
a build-id names one exact build, so its answers never go stale, and a
report symbolized again (a CI run's hundred reports of one bug) costs no
backend run. Modules without a build-id are cached in memory only."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Optional

from guardalloc.symbolize.frames import Location


def default_cache_dir() -> Optional[str]:
    """$GUARDALLOC_CACHE_DIR, else $XDG_CACHE_HOME/guardalloc/symbols, else
    ~/.cache/guardalloc/symbols; None when $GUARDALLOC_CACHE_DIR is "" (off)."""
    explicit = os.environ.get("GUARDALLOC_CACHE_DIR")
    if explicit is not None:
        return explicit or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "guardalloc", "symbols")


class SymbolCache:
    """offset -> locations per module key, in memory and (for build-ids) on disk."""

    def __init__(self, directory: Optional[str]):
        self.directory = directory
        self._memory: dict[str, dict[int, tuple[Location, ...]]] = {}
        self._dirty: set[str] = set()

    def _load(self, key: str, build_id: Optional[str]) -> dict[int, tuple[Location, ...]]:
        table = self._memory.get(key)
        if table is not None:
            return table
        table = {}
        if build_id and self.directory:
            try:
                with open(os.path.join(self.directory, build_id + ".json"), encoding="utf-8") as f:
                    stored = json.load(f)
                table = {int(off, 16): tuple(Location(**loc) for loc in locs) for off, locs in stored.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                table = {}   # missing or damaged: symbolize again
        self._memory[key] = table
        return table

    def get(self, key: str, build_id: Optional[str], offset: int) -> Optional[tuple[Location, ...]]:
        """The cached locations of offset in the module, or None when unknown."""
        return self._load(key, build_id).get(offset)

    def put(self, key: str, build_id: Optional[str], offset: int, locations: tuple[Location, ...]) -> None:
        """Remember what offset means in the module."""
        self._load(key, build_id)[offset] = locations
        if build_id and self.directory:
            self._dirty.add(build_id)

    def save(self) -> None:
        """Write the build-ids' tables that changed (atomically; a cache that
        cannot be written is only slower, never wrong)."""
        if not self.directory:
            return
        for build_id in sorted(self._dirty):
            table = self._memory.get(build_id, {})
            data = {f"0x{off:x}": [loc.as_json() for loc in locs] for off, locs in table.items()}
            try:
                os.makedirs(self.directory, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f)
                os.replace(tmp, os.path.join(self.directory, build_id + ".json"))
            except OSError:
                pass
        self._dirty.clear()

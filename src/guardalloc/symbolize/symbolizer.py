"""Symbolizer: raw frames in, symbolized frames out, checked against the
module's build-id and cached."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from guardalloc.symbolize.backends import Backend, SymbolizerError, find_backend
from guardalloc.symbolize.cache import SymbolCache, default_cache_dir
from guardalloc.symbolize.elfid import build_id
from guardalloc.symbolize.frames import RawFrame, Symbolized


class Symbolizer:
    """Symbolizes raw frames with the best installed backend.

    ``backend``: a Backend, or None for find_backend()'s choice (honouring
    $GUARDALLOC_SYMBOLIZER). ``cache_dir``: where answers are kept by
    build-id (default: default_cache_dir(); None: memory only).
    Raises SymbolizerError when $GUARDALLOC_SYMBOLIZER names no program."""

    _DEFAULT = object()

    def __init__(self, backend: Optional[Backend] = None, cache_dir=_DEFAULT):
        self.backend = backend if backend is not None else find_backend(os.environ.get("GUARDALLOC_SYMBOLIZER"))
        self.cache = SymbolCache(default_cache_dir() if cache_dir is Symbolizer._DEFAULT else cache_dir)
        self._ids: dict[str, tuple[tuple[int, int], Optional[str]]] = {}
        self.errors: list[str] = []   # what went wrong with the backend, once each

    def _module(self, path: str) -> tuple[Optional[str], Optional[str]]:
        """(cache key, build-id) of the file at path now; (None, None) when
        it cannot be read."""
        try:
            st = os.stat(path)
        except OSError:
            return None, None
        stamp = (st.st_mtime_ns, st.st_size)
        known = self._ids.get(path)
        if known is None or known[0] != stamp:
            known = (stamp, build_id(path))
            self._ids[path] = known
        bid = known[1]
        return (bid or f"{path}\0{stamp[0]}\0{stamp[1]}"), bid

    def symbolize(self, frames: Sequence[RawFrame]) -> list[Symbolized]:
        """One Symbolized per raw frame, in order. A frame whose module is
        missing, has another build-id than recorded, or that no symbolizer
        could read keeps its raw text and says why in ``problem``. Never
        raises for a frame; backend failures are kept in ``self.errors``."""
        results: list[Optional[Symbolized]] = [None] * len(frames)
        wanted: list[tuple[int, str, Optional[str], str, int]] = []
        for i, frame in enumerate(frames):
            if frame.module is None or frame.offset is None:
                results[i] = Symbolized(frame, (), "in no module")
                continue
            key, bid = self._module(frame.module)
            if key is None:
                results[i] = Symbolized(frame, (), f"cannot read {frame.module}")
                continue
            if frame.build_id and bid and frame.build_id != bid:
                results[i] = Symbolized(frame, (), f"{frame.module} has build-id {bid}, the report "
                                                   f"{frame.build_id}: it changed since the report")
                continue
            cached = self.cache.get(key, bid, frame.offset)
            if cached is not None:
                results[i] = Symbolized(frame, cached)
            else:
                wanted.append((i, key, bid, frame.module, frame.offset))
        if wanted and self.backend is None:
            for i, *_ in wanted:
                results[i] = Symbolized(frames[i], (), "no symbolizer installed (llvm-symbolizer or addr2line)")
        elif wanted and self.backend is not None:
            queries = sorted({(path, off) for _, _, _, path, off in wanted})
            try:
                answers = dict(zip(queries, self.backend.symbolize(queries)))
            except SymbolizerError as exc:
                if str(exc) not in self.errors:
                    self.errors.append(str(exc))
                answers = {}
            for i, key, bid, path, off in wanted:
                locs = answers.get((path, off))
                if locs is None:
                    results[i] = Symbolized(frames[i], (), "the symbolizer failed")
                    continue
                self.cache.put(key, bid, off, locs)
                results[i] = Symbolized(frames[i], locs)
            self.cache.save()
        return [r for r in results if r is not None]

"""A byte-bounded LRU cache of decoded chunks (raw bytes + chain depth)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())


class ChunkCache:
    """Thread-safe LRU keyed by chunk id; holds at most `capacity` bytes of chunk data."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, chunk_id: str) -> tuple[np.ndarray, int] | None:
        with self._lock:
            item = self._items.get(chunk_id)
            if item is not None:
                self._items.move_to_end(chunk_id)
            return item

    def put(self, chunk_id: str, raw: np.ndarray, depth: int) -> None:
        if raw.nbytes > self.capacity:
            return
        raw.flags.writeable = False
        with self._lock:
            old = self._items.pop(chunk_id, None)
            if old is not None:
                self._size -= old[0].nbytes
            self._items[chunk_id] = (raw, depth)
            self._size += raw.nbytes
            while self._size > self.capacity:
                _, (evicted, _) = self._items.popitem(last=False)
                self._size -= evicted.nbytes

    def discard(self, chunk_id: str) -> None:
        with self._lock:
            old = self._items.pop(chunk_id, None)
            if old is not None:
                self._size -= old[0].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

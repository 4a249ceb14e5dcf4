"""`PackFiles`: the open file descriptors of local packs, shared by reader threads.

At most `limit` stay open. A descriptor that leaves the cache (the limit is reached, or its
pack is deleted) is closed as soon as no thread is reading through it, never under a reader:
a deleted pack's data stays readable through an open descriptor until then.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class PackFiles:
    def __init__(self, path_of: Callable[[str], str | os.PathLike[str]], limit: int = 256) -> None:
        self._path_of = path_of
        self._limit = limit
        self._open: dict[str, int] = {}  # pack id -> fd, oldest first
        self._readers: dict[int, int] = {}  # fd -> threads reading through it now
        self._retired: set[int] = set()  # out of the cache, closed when its last reader ends
        self._lock = threading.Lock()

    def pread(self, pack_id: str, length: int, offset: int) -> bytes:
        """`length` bytes at `offset` of the pack (fewer at its end, as os.pread)."""
        with self._lock:
            fd = self._open.get(pack_id)
            if fd is None:
                if len(self._open) >= self._limit:
                    self._retire(self._open.pop(next(iter(self._open))))
                fd = os.open(self._path_of(pack_id), os.O_RDONLY)
                self._open[pack_id] = fd
            self._readers[fd] = self._readers.get(fd, 0) + 1
        try:
            return os.pread(fd, length, offset)
        finally:
            with self._lock:
                self._readers[fd] -= 1
                if not self._readers[fd]:
                    del self._readers[fd]
                    if fd in self._retired:
                        self._retired.discard(fd)
                        os.close(fd)

    def forget(self, pack_id: str) -> None:
        """The pack is being deleted: close its descriptor once no one reads through it."""
        with self._lock:
            fd = self._open.pop(pack_id, None)
            if fd is not None:
                self._retire(fd)

    def close(self) -> None:
        """Close every descriptor (the store is closing: no reader is left)."""
        with self._lock:
            for fd in {*self._open.values(), *self._retired}:
                os.close(fd)
            self._open.clear()
            self._retired.clear()
            self._readers.clear()

    def open_count(self) -> int:
        """Descriptors open now, cached or waiting for their last reader."""
        with self._lock:
            return len(self._open) + len(self._retired)

    def _retire(self, fd: int) -> None:
        if fd in self._readers:
            self._retired.add(fd)
        else:
            os.close(fd)

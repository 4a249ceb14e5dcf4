"""`RepositoryLock`: a cross-process reader/writer lock that keeps `gc` away from writers.

Writers (add, commit, merge, tag, pulls) hold it shared while they store objects and move
refs; `gc` holds it exclusive while it computes what is reachable and deletes the rest, so it
never removes an object that a writer has stored but not yet referenced. Built on `flock`,
so a killed process releases it. Re-entrant per thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]


class RepositoryLock:
    """Shared (writers) / exclusive (gc) lock on `.coral/lock`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        if self._depth() > 0 or fcntl is None:
            self._local.depth = self._depth() + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def shared(self) -> AbstractContextManager[None]:
        """Held while storing objects and moving refs."""
        return self._hold(False)

    def exclusive(self) -> AbstractContextManager[None]:
        """Held by gc."""
        return self._hold(True)

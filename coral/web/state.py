"""What the dashboard keeps between requests: one open repository (reads serialised by a lock:
a `Repository` caches commits and trees in plain dicts), and results worth keeping — the walked
history of a ref, diffs, the storage report — each keyed by what it depends on, so a new commit
makes it stale and the next request recomputes it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from coral.porcelain.dashboard import (
    ALL_REFS,
    CommitDiff,
    HistoryIndex,
    diff_commits,
    history_key,
)
from coral.porcelain.storage_report import StorageReport, storage_report
from coral.utils.comparison import comparison_of_diff
from coral.version_control.repository import Repository

T = TypeVar("T")


class LRU:
    """A small least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            value: T = self._items[key]
            return value
        value = make()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class DashboardState:
    """The repository a dashboard serves, and its caches."""

    def __init__(self, repo: Repository, *, token: str | None = None) -> None:
        self.repo = repo
        self.token = token
        self.lock = threading.RLock()
        self._histories = LRU(8)
        self._diffs = LRU(16)
        self._storage = LRU(2)

    def history(self, ref: str | None) -> HistoryIndex:
        """The walked history of `ref` (None: HEAD), reused while no ref it follows moves."""
        key = (ref, history_key(self.repo, ref))
        return self._histories.get(key, lambda: HistoryIndex(self.repo, ref))

    def diff(self, a: str, b: str, training: bool) -> tuple[CommitDiff, dict[str, Any]]:
        """Two commits' diff and its `compare_models` dictionary (what every diff view draws);
        keyed by the commits' hashes, which never change meaning."""
        ha, hb = self.repo.resolve_ref(a), self.repo.resolve_ref(b)

        def make() -> tuple[CommitDiff, dict[str, Any]]:
            d = diff_commits(self.repo, a, b, include_training_state=training)
            return d, comparison_of_diff(d.result, a, b)

        return self._diffs.get((ha, hb, training, a, b), make)

    def storage(self) -> StorageReport:
        key = history_key(self.repo, ALL_REFS)
        return self._storage.get(key, lambda: storage_report(self.repo))

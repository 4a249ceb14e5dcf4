"""Storage statistics over history: deduplication counts and per-commit storage growth."""

from __future__ import annotations

from typing import Any

from coral.core.dedup_stats import DeduplicationStats
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import ObjectStats
from coral.version_control import pruning
from coral.version_control.objects import Commit, Tree
from coral.version_control.repo_protocol import HistoryRepository


def _tensor_stats(repo: HistoryRepository, tensor_id: str) -> ObjectStats | None:
    try:
        st = repo.store.stats(tensor_id)
    except (ObjectNotFoundError, CorruptObjectError):
        return None
    return st if isinstance(st, ObjectStats) else None


def _tree(repo: HistoryRepository, commit: Commit, pruned: set[str]) -> Tree | None:
    """The commit's tree; None for a pruned commit whose tree gc deleted (it is skipped)."""
    try:
        return repo.read_tree(commit.tree_id)
    except ObjectNotFoundError:
        if commit.commit_hash in pruned:
            return None
        raise


class HistoryDeduplication:
    """`repo.deduplicator`: deduplication statistics over every commit reachable from a ref."""

    def __init__(self, repo: HistoryRepository) -> None:
        self.repo = repo

    def get_stats(self) -> DeduplicationStats:
        """total = (commit, name) entries over history = unique (distinct tensors stored in
        full) + similar (stored as a delta) + duplicate (entries of a tensor counted already);
        bytes: logical, distinct logical, stored on disk."""
        stats = DeduplicationStats()
        sizes: dict[str, int] = {}
        pruned = pruning.pruned(self.repo.database)
        for commit in self.repo.iter_commits():
            tree = _tree(self.repo, commit, pruned)
            if tree is None:
                continue
            for entry in tree.entries.values():
                stats.total_weights += 1
                n = entry.nbytes
                stats.total_bytes += n
                sizes.setdefault(entry.tensor_id, n)
        stats.unique_weights = len(sizes)  # minus the similar ones below
        stats.duplicate_weights = stats.total_weights - len(sizes)
        stats.unique_bytes = sum(sizes.values())
        for tid in sizes:
            st = _tensor_stats(self.repo, tid)
            if st is None:
                continue
            stats.stored_bytes += st.stored_bytes
            if st.encoding not in ("full", "empty"):
                stats.similar_weights += 1
                stats.unique_weights -= 1
        return stats


def storage_history(repo: HistoryRepository) -> list[dict[str, Any]]:
    """One row per commit reachable from any ref, oldest first: logical bytes of its tree and
    stored bytes of the tensors it introduced (not in any earlier commit). Pruned commits whose
    weights gc deleted are left out."""
    commits = list(repo.iter_commits())
    commits.reverse()
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    pruned = pruning.pruned(repo.database)
    for commit in commits:
        tree = _tree(repo, commit, pruned)
        if tree is None:
            continue
        logical = 0
        stored = 0
        new = 0
        for entry in tree.entries.values():
            logical += entry.nbytes
            if entry.tensor_id in seen:
                continue
            seen.add(entry.tensor_id)
            new += 1
            st = _tensor_stats(repo, entry.tensor_id)
            stored += st.stored_bytes if st else 0
        rows.append(
            {
                "commit": commit.short_hash,
                "hash": commit.commit_hash,
                "message": commit.message,
                "timestamp": commit.timestamp,
                "tensors": len(tree.entries),
                "new_tensors": new,
                "logical_bytes": logical,
                "stored_bytes": stored,
                "ratio": logical / stored if stored else None,
            }
        )
    return rows

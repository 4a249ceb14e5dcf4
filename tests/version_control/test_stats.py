"""History statistics: repo.deduplicator.get_stats() and repo.storage_history()."""

from __future__ import annotations

import numpy as np

from coral.version_control.repository import Repository

from .conftest import commit_weights


def test_dedup_stats_and_storage_history(repo: Repository) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b1 = rng.standard_normal((64, 64)).astype(np.float32)
    b2 = b1.copy()
    b2[0, 0] += 1.0
    commit_weights(repo, {"a": a, "b": b1}, "one")
    commit_weights(repo, {"b": b2}, "two")
    commit_weights(repo, {"b": b1}, "three: revert b")
    stats = repo.deduplicator.get_stats()
    size = a.nbytes
    assert stats.total_weights == 6
    assert stats.distinct_weights == 3
    assert stats.duplicate_weights == 3
    assert stats.unique_weights + stats.similar_weights + stats.duplicate_weights == 6
    assert stats.total_bytes == 6 * size and stats.unique_bytes == 3 * size
    assert stats.similar_weights >= 1  # one of b1/b2 is stored as a delta of the other
    assert 0 < stats.stored_bytes < 3 * size
    assert stats.compression_ratio > 2
    assert stats.to_dict()["bytes_saved"] == stats.total_bytes - stats.stored_bytes
    hist = repo.storage_history()
    assert [r["message"] for r in hist] == ["one", "two", "three: revert b"]
    assert all(r["logical_bytes"] == 2 * size for r in hist)
    assert hist[0]["stored_bytes"] > 0 and hist[1]["stored_bytes"] > 0
    assert hist[2]["stored_bytes"] == 0 and hist[2]["new_tensors"] == 0
    assert hist[0]["commit"] == repo.resolve_ref("HEAD~2")[:10]
    assert {"commit", "message", "logical_bytes", "stored_bytes"} <= set(hist[0])


def test_stats_on_empty_repository(repo: Repository) -> None:
    assert repo.deduplicator.get_stats().total_weights == 0
    assert repo.storage_history() == []

"""DeduplicationStats counts partition the total: unique (kept in full) + similar (kept as a
delta) + duplicate = total, for the Deduplicator and for a repository's history alike, and the
documentation says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import coral.core.deduplicator as deduplicator_module
from coral.core.dedup_stats import DeduplicationStats
from coral.core.deduplicator import Deduplicator
from coral.utils.visualization import plot_deduplication_stats
from coral.version_control.repository import Repository


def _partitions(stats: DeduplicationStats) -> bool:
    return (
        stats.unique_weights + stats.similar_weights + stats.duplicate_weights
        == stats.total_weights
    )


@pytest.mark.parametrize("use_lsh", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deduplicator_counts_partition_the_total(use_lsh: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dedup = Deduplicator(similarity_threshold=0.98, use_lsh=use_lsh)
    bases = [rng.standard_normal((32, 32)).astype(np.float32) for _ in range(4)]
    names = 0
    for b in bases:
        for _ in range(int(rng.integers(1, 4))):  # duplicates
            dedup.add_weight(b.copy(), f"w{names}")
            names += 1
        for _ in range(int(rng.integers(0, 3))):  # near-identical: similar
            noisy = b + rng.standard_normal(b.shape).astype(np.float32) * 1e-3
            dedup.add_weight(noisy, f"w{names}")
            names += 1
    stats = dedup.get_stats()
    assert stats.total_weights == names
    assert _partitions(stats), stats
    assert stats.unique_weights == 4  # one per base, kept in full
    assert stats.distinct_weights == stats.unique_weights + stats.similar_weights
    kinds = [dedup.describe(f"w{i}").kind for i in range(names)]
    assert kinds.count("unique") == stats.unique_weights
    assert kinds.count("similar") == stats.similar_weights
    assert kinds.count("duplicate") == stats.duplicate_weights
    counts = plot_deduplication_stats(stats)["weight_counts"]
    assert counts["unique"] + counts["similar"] + counts["duplicate"] == counts["total"]


def test_history_counts_partition_the_total(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    with Repository.init(tmp_path / "repo") as repo:
        for step in range(4):
            repo.add_all_weights(
                {"drift": w + np.float32(1e-4 * step), "frozen": np.ones((8, 8), np.float32)}
            )
            repo.commit(f"step {step}")
        stats = repo.deduplicator.get_stats()
    assert stats.total_weights == 8
    assert stats.duplicate_weights == 3  # "frozen" after its first commit
    assert stats.similar_weights >= 1  # drifting versions stored as deltas
    assert _partitions(stats), stats


def test_the_docs_say_the_counts_partition() -> None:
    doc = deduplicator_module.__doc__ or ""
    assert "subset" not in doc and "count as unique weights too" not in doc
    assert "partition" in doc
    assert "partition" in (DeduplicationStats.__doc__ or "")

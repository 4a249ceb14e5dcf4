"""Deduplicator (spec §8.6 "Integrating LSH with Deduplicator", §8.4 statistics)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from coral.core import dedup_stats
from coral.core.deduplicator import DeduplicationStats, Deduplicator, xor_delta_size
from coral.core.lsh_index import LSHConfig
from coral.core.weight_tensor import WeightTensor


def _model_weights(seed: int = 0) -> dict[str, WeightTensor]:
    """A small "model": shared layers, exact copies, fine-tuned variants, unrelated tensors."""
    rng = np.random.default_rng(seed)
    base = {
        "encoder.w": rng.standard_normal((256, 256)).astype(np.float32),
        "decoder.w": rng.standard_normal((256, 256)).astype(np.float32),
        "head.w": rng.standard_normal((128, 64)).astype(np.float32),
        "head.b": rng.standard_normal(64).astype(np.float32),
    }
    weights = {name: WeightTensor(arr, name=name) for name, arr in base.items()}
    # exact duplicates under other names (tied embeddings, frozen copies)
    weights["encoder_copy.w"] = WeightTensor(base["encoder.w"].copy(), name="encoder_copy.w")
    weights["head_copy.b"] = WeightTensor(base["head.b"].copy(), name="head_copy.b")
    # fine-tuned: 0.5% relative noise (cosine ~0.99999)
    for name in ("encoder.w", "head.w"):
        arr = base[name] + rng.standard_normal(base[name].shape).astype(np.float32) * 0.005
        weights[f"ft.{name}"] = WeightTensor(arr, name=f"ft.{name}")
    # unrelated tensor of the same shape
    weights["other.w"] = WeightTensor(
        rng.standard_normal((256, 256)).astype(np.float32), name="other.w"
    )
    return weights


@pytest.mark.parametrize("use_lsh", [True, False])
def test_spec_deduplicator_with_lsh(use_lsh: bool, capsys: pytest.CaptureFixture[str]) -> None:
    model_weights = _model_weights()
    deduplicator = Deduplicator(
        similarity_threshold=0.98,
        use_lsh=use_lsh,  # Enable LSH acceleration
        lsh_config=LSHConfig(num_hyperplanes=8, num_tables=4),
    )

    for name, weight in model_weights.items():
        deduplicator.add_weight(weight, name)

    stats = deduplicator.deduplicate()
    print("Deduplication with LSH acceleration:")
    print(f"  Unique: {stats.unique_weights}")
    print(f"  Duplicates: {stats.duplicate_weights}")
    print(f"  Similar: {stats.similar_weights}")
    print(f"  Compression: {stats.compression_ratio:.2f}x")
    assert "Unique: 5" in capsys.readouterr().out  # 7 distinct: 5 in full, 2 as deltas

    assert isinstance(stats, DeduplicationStats)
    assert stats.total_weights == 9
    assert stats.unique_weights == 5
    assert stats.duplicate_weights == 2
    assert stats.similar_weights == 2
    assert stats.unique_weights + stats.duplicate_weights + stats.similar_weights == 9
    assert stats.distinct_weights == 7
    total = sum(w.nbytes for w in model_weights.values())
    assert stats.total_bytes == total
    assert (
        stats.unique_bytes
        == total - model_weights["encoder_copy.w"].nbytes - model_weights["head_copy.b"].nbytes
    )
    assert stats.stored_bytes < stats.unique_bytes
    assert stats.compression_ratio > 1.2
    assert stats.bytes_saved == stats.total_bytes - stats.stored_bytes
    assert deduplicator.get_stats() == stats

    assert deduplicator.get_reference("ft.encoder.w") == "encoder.w"
    assert deduplicator.get_reference("ft.head.w") == "head.w"
    assert deduplicator.get_reference("other.w") is None
    assert deduplicator.get_weight_group("encoder_copy.w") == ["encoder.w", "encoder_copy.w"]
    assert deduplicator.describe("encoder_copy.w").kind == "duplicate"
    entry = deduplicator.describe("ft.encoder.w")
    assert entry.kind == "similar" and entry.similarity is not None and entry.similarity > 0.999
    assert 0 < entry.stored_bytes < model_weights["ft.encoder.w"].nbytes
    assert deduplicator.describe("other.w").kind == "unique"


def test_add_weight_returns_content_hash() -> None:
    dedup = Deduplicator()
    w = WeightTensor(np.arange(12, dtype=np.float32).reshape(3, 4), name="w")
    assert dedup.add_weight(w, "w") == w.compute_hash()
    assert dedup.add_weight(WeightTensor(w.data.copy(), name="v"), "v") == w.compute_hash()
    assert dedup.get_weight_group("v") == ["w", "v"]


def test_find_similar_ranks_by_cosine() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((64, 64)).astype(np.float32)
    dedup = Deduplicator(similarity_threshold=0.9, use_lsh=True)
    dedup.add_weight(WeightTensor(base), "base")
    dedup.add_weight(
        WeightTensor(base + 0.2 * rng.standard_normal((64, 64)).astype(np.float32)), "far"
    )
    dedup.add_weight(WeightTensor(rng.standard_normal((64, 64)).astype(np.float32)), "unrelated")
    query = WeightTensor(base + 0.01 * rng.standard_normal((64, 64)).astype(np.float32))
    found = dedup.find_similar(query)
    assert [name for name, _ in found] == ["base", "far"]
    assert found[0][1] > found[1][1] >= 0.9
    assert dedup.find_similar(query, threshold=0.999)[0][0] == "base"


def test_same_values_other_dtype_is_not_similar() -> None:
    rng = np.random.default_rng(4)
    arr = rng.standard_normal((32, 32))
    dedup = Deduplicator()
    dedup.add_weight(WeightTensor(arr.astype(np.float32)), "f32")
    dedup.add_weight(WeightTensor(arr.astype(ml_dtypes.bfloat16)), "bf16")
    dedup.add_weight(WeightTensor(arr.astype(np.float32).reshape(16, 64)), "reshaped")
    stats = dedup.get_stats()
    assert stats.unique_weights == 3 and stats.similar_weights == 0


def test_readding_a_name_replaces_it() -> None:
    rng = np.random.default_rng(5)
    a = WeightTensor(rng.standard_normal(100).astype(np.float32))
    b = WeightTensor(rng.standard_normal(100).astype(np.float32))
    dedup = Deduplicator()
    dedup.add_weight(a, "x")
    dedup.add_weight(a, "x")
    assert dedup.get_stats().total_weights == 1
    dedup.add_weight(b, "x")
    stats = dedup.get_stats()
    assert stats.total_weights == 1 and stats.unique_weights == 1
    assert dedup.get_weight("x").bit_equal(b)


def test_xor_delta_estimate() -> None:
    rng = np.random.default_rng(6)
    ref = WeightTensor(rng.standard_normal(100_000).astype(np.float32))
    same = xor_delta_size(ref, ref)
    close = WeightTensor(
        ref.data + np.float32(1e-6) * rng.standard_normal(100_000).astype(np.float32)
    )
    far = WeightTensor(rng.standard_normal(100_000).astype(np.float32))
    assert same < 1000
    assert same < xor_delta_size(close, ref) < xor_delta_size(far, ref)
    assert xor_delta_size(close, ref) < ref.nbytes * 0.8


def test_numpy_arrays_accepted_and_stats_reexported() -> None:
    assert DeduplicationStats is dedup_stats.DeduplicationStats
    dedup = Deduplicator()
    dedup.add_weight(np.ones(10, dtype=np.float32), "ones")
    assert dedup.get_stats().unique_weights == 1
    assert "ones" in dedup and len(dedup) == 1


def test_stats_feed_plot_deduplication_stats() -> None:
    visualization = pytest.importorskip("coral.utils.visualization")
    dedup = Deduplicator(use_lsh=True)
    for name, weight in _model_weights(1).items():
        dedup.add_weight(weight, name)
    viz_data = visualization.plot_deduplication_stats(dedup.get_stats())
    assert viz_data["weight_counts"]["unique"] == 5
    assert viz_data["weight_counts"]["duplicate"] == 2
    assert viz_data["weight_counts"]["similar"] == 2
    assert viz_data["compression"]["bytes_saved"] > 0
    assert viz_data["compression"]["compression_ratio"] > 1.0

"""Chapter 8.4: compare_models, format_model_diff, plot_weight_distribution,
plot_deduplication_stats — the chapter's code unchanged, on real fine-tuned weights."""

from __future__ import annotations

import math
import weakref
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from coral.core.dedup_stats import DeduplicationStats
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.utils.visualization import (
    compare_models,
    format_model_diff,
    plot_deduplication_stats,
    plot_weight_distribution,
)

from .conftest import FROZEN, HEAD, MIDDLE

# -- the chapter's code, unchanged ---------------------------------------------------------------


def test_spec_comparing_models(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Load two model versions
    base_weights = repo.get_all_weights("base-model")
    finetuned_weights = repo.get_all_weights("finetuned-v1")

    # Compare models
    diff = compare_models(
        base_weights,
        finetuned_weights,
        model_a_name="Base Model",
        model_b_name="Fine-tuned v1"
    )

    # Print summary
    print(f"Overall similarity: {diff['summary']['overall_similarity']:.1%}")
    print(f"Changed parameters: {diff['summary']['changed_params']:,}")
    print(f"Common layers: {diff['summary']['common_layers']}")

    # Analyze categories
    counts = diff['category_counts']
    print(f"\nChange distribution:")  # noqa: F541
    print(f"  Identical (>99.99%): {counts['identical']}")
    print(f"  Minor changes (>99%): {counts['minor_changes']}")
    print(f"  Moderate (>90%): {counts['moderate_changes']}")
    print(f"  Major (<90%): {counts['major_changes']}")

    # View most changed layers
    for layer in diff['most_changed_layers'][:5]:
        print(f"{layer['name']}: {layer['combined_similarity']:.2%} similar")
        print(f"  RMSE: {layer['diff_stats']['rmse']:.6f}")

    report = format_model_diff(diff, verbose=True)
    print(report)

    out = capsys.readouterr().out
    assert "Common layers: 6" in out
    assert "Identical (>99.99%): 2" in out
    assert diff["model_a_name"] == "Base Model" and diff["model_b_name"] == "Fine-tuned v1"
    s = diff["summary"]
    assert 0.0 < s["overall_similarity"] < 1.0
    total = sum(w.size for w in base_weights.values())
    assert s["total_params"] == total
    # Everything but the frozen layer changed.
    frozen = sum(base_weights[n].size for n in FROZEN)
    assert s["changed_params"] <= total - frozen
    assert s["changed_params"] > 0.9 * (total - frozen)
    assert s["added_layers"] == 0 and s["removed_layers"] == 0
    # The most changed layers come first and are the re-initialised head.
    sims = [ly["combined_similarity"] for ly in diff["most_changed_layers"]]
    assert sims == sorted(sims)
    assert {ly["name"] for ly in diff["most_changed_layers"][:2]} == set(HEAD)
    assert "Model comparison: Base Model -> Fine-tuned v1" in report
    for name in base_weights:
        assert name in report


def test_spec_weight_distribution(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from coral.utils.visualization import plot_weight_distribution

    weights = [weight for name, weight in repo.get_all_weights().items()]

    distributions = plot_weight_distribution(weights, bins=50)

    for name, dist in distributions.items():
        print(f"{name}:")
        print(f"  Mean: {dist['mean']:.4f}")
        print(f"  Std: {dist['std']:.4f}")
        print(f"  Range: [{dist['min']:.4f}, {dist['max']:.4f}]")
        print(f"  Sparsity: {dist['sparsity']:.2%}")

    out = capsys.readouterr().out
    head = repo.get_all_weights()
    assert set(distributions) == set(head)
    for name, dist in distributions.items():
        values = head[name].data.astype(np.float64)
        assert dist["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
        assert dist["std"] == pytest.approx(values.std(), rel=1e-9, abs=1e-12)
        assert dist["min"] == values.min() and dist["max"] == values.max()
        assert dist["sparsity"] == pytest.approx(np.mean(values == 0))
        assert len(dist["histogram"]) == 50 and len(dist["bin_edges"]) == 51
        assert sum(dist["histogram"]) == values.size
        assert f"{name}:" in out


def test_spec_deduplication_statistics(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from coral.utils.visualization import plot_deduplication_stats

    stats = repo.deduplicator.get_stats()
    viz_data = plot_deduplication_stats(stats)

    print(f"Weight distribution:")  # noqa: F541
    print(f"  Unique: {viz_data['weight_counts']['unique']}")
    print(f"  Duplicate: {viz_data['weight_counts']['duplicate']}")
    print(f"  Similar: {viz_data['weight_counts']['similar']}")

    print(f"\nCompression:")  # noqa: F541
    print(f"  Bytes saved: {viz_data['compression']['bytes_saved'] / 1024 / 1024:.1f} MB")
    print(f"  Ratio: {viz_data['compression']['compression_ratio']:.2f}x")

    out = capsys.readouterr().out
    assert "Unique:" in out and "Ratio:" in out
    assert viz_data["weight_counts"]["unique"] == stats.unique_weights
    assert viz_data["weight_counts"]["duplicate"] == stats.duplicate_weights
    assert viz_data["weight_counts"]["similar"] == stats.similar_weights
    assert viz_data["compression"]["bytes_saved"] == stats.bytes_saved
    assert viz_data["compression"]["compression_ratio"] == pytest.approx(stats.compression_ratio)
    # The frozen layer and the transferred body are stored once across four commits.
    assert stats.duplicate_weights > 0
    assert viz_data["compression"]["compression_ratio"] > 1.0


def test_use_case_1_debugging_fine_tuning(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Compare base model with fine-tuned version
    base = repo.get_all_weights("pretrained-base")
    finetuned = repo.get_all_weights("finetuned-epoch-5")

    diff = compare_models(base, finetuned)

    # Find layers that changed too much (potential instability)
    for layer in diff['most_changed_layers']:
        if layer['combined_similarity'] < 0.85:
            print(f"WARNING: {layer['name']} changed significantly")
            print(f"  May indicate training instability or learning rate issues")  # noqa: F541

    # Find layers that didn't change at all (frozen layers verification)
    for layer_name in diff['categories']['identical']:
        print(f"Frozen: {layer_name}")

    out = capsys.readouterr().out
    for name in FROZEN:
        assert f"Frozen: {name}" in out
    for name in HEAD:
        assert f"WARNING: {name} changed significantly" in out
    assert sorted(diff["categories"]["identical"]) == sorted(FROZEN)
    assert set(HEAD) <= set(diff["categories"]["major_changes"])
    # The frozen layer is bit-identical: exactly 1.0, and nothing is read to know it.
    by_name = {ly["name"]: ly for ly in diff["layers"]}
    for name in FROZEN:
        assert by_name[name]["combined_similarity"] == 1.0
        assert by_name[name]["bit_identical"] is True
    # The middle layer was trained further: changed, but far less than the new head.
    for name in MIDDLE:
        ly = by_name[name]
        assert not ly["bit_identical"]
        assert ly["combined_similarity"] > max(by_name[h]["combined_similarity"] for h in HEAD)
        assert ly["category"] != "identical"


def test_use_case_2_compression_analysis(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Analyze weight distributions before and after quantization
    original = repo.get_all_weights("float32-model")
    quantized = repo.get_all_weights("int8-quantized")

    original_dist = plot_weight_distribution(list(original.values()))
    quantized_dist = plot_weight_distribution(list(quantized.values()))

    # Compare distributions
    for name in original_dist.keys():  # noqa: SIM118 - the chapter's code, unchanged
        orig = original_dist[name]
        quant = quantized_dist[name]

        print(f"\n{name}:")
        print(f"  Original range: [{orig['min']:.4f}, {orig['max']:.4f}]")
        print(f"  Quantized range: [{quant['min']:.4f}, {quant['max']:.4f}]")
        print(f"  Sparsity change: {orig['sparsity']:.2%} -> {quant['sparsity']:.2%}")

    out = capsys.readouterr().out
    assert "Sparsity change" in out
    for name, quant in quantized_dist.items():
        assert quant["dtype"] == "int8"
        assert max(abs(quant["min"]), abs(quant["max"])) == 127.0
        # Rounding to 255 levels turns small weights into exact zeros.
        assert quant["sparsity"] >= original_dist[name]["sparsity"]
    # Comparing across dtypes works (values compared in float64) and reports the dtype change.
    diff = compare_models(original, quantized)
    assert sorted(diff["dtype_changed"]) == sorted(original)
    assert diff["summary"]["dtype_changed_layers"] == len(original)
    for ly in diff["layers"]:
        assert ly["dtype_a"] == "float32" and ly["dtype_b"] == "int8"
        assert ly["cosine_similarity"] > 0.99  # int8 codes are the weights up to a scale


def test_use_case_3_transfer_learning(repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Verify which layers were transferred vs randomly initialized
    source_model = repo.get_all_weights("imagenet-pretrained")
    target_model = repo.get_all_weights("custom-dataset-init")

    diff = compare_models(source_model, target_model)

    # Transferred layers should be identical
    transferred = diff['categories']['identical']
    print(f"Transferred {len(transferred)} layers from source model")

    # Randomly initialized layers should be completely different
    new_layers = diff['categories']['major_changes']
    print(f"Randomly initialized {len(new_layers)} new layers")

    out = capsys.readouterr().out
    assert "Transferred 4 layers from source model" in out
    assert "Randomly initialized 2 new layers" in out
    assert sorted(transferred) == sorted(FROZEN + MIDDLE)
    assert sorted(new_layers) == sorted(HEAD)


# -- structure of the result -------------------------------------------------------------------


def test_result_keys(trained: dict[str, dict[str, np.ndarray]]) -> None:
    diff = compare_models(trained["base"], trained["finetuned"])
    assert set(diff) >= {"summary", "category_counts", "categories", "most_changed_layers",
                         "layers", "model_a_name", "model_b_name"}
    assert diff["model_a_name"] == "Model A" and diff["model_b_name"] == "Model B"
    assert set(diff["summary"]) >= {"overall_similarity", "changed_params", "total_params",
                                    "common_layers", "added_layers", "removed_layers"}
    cats = {"identical", "minor_changes", "moderate_changes", "major_changes", "shape_changed",
            "added", "removed"}
    assert set(diff["categories"]) == cats and set(diff["category_counts"]) == cats
    assert sum(diff["category_counts"].values()) == len(diff["layers"]) == 6
    for ly in diff["layers"]:
        assert 0.0 <= ly["combined_similarity"] <= 1.0
        assert -1.0 <= ly["cosine_similarity"] <= 1.0
        assert set(ly["diff_stats"]) >= {"rmse", "max_abs_diff", "mean_abs_diff"}
    head = next(ly for ly in diff["layers"] if ly["name"] == "4.weight")
    a = trained["base"]["4.weight"].astype(np.float64)
    b = trained["finetuned"]["4.weight"].astype(np.float64)
    d = b - a
    assert head["diff_stats"]["rmse"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
    assert head["diff_stats"]["max_abs_diff"] == pytest.approx(np.abs(d).max(), rel=1e-12)
    assert head["diff_stats"]["mean_abs_diff"] == pytest.approx(np.abs(d).mean(), rel=1e-12)
    assert head["relative_change"] == pytest.approx(
        np.linalg.norm(d) / np.linalg.norm(a), rel=1e-12)
    cos = float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert head["cosine_similarity"] == pytest.approx(cos, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("relative", "category"),
    [(0.0, "identical"), (2e-5, "minor_changes"), (5e-3, "minor_changes"),
     (5e-2, "moderate_changes"), (0.5, "major_changes")],
)
def test_categories_follow_relative_change(relative: float, category: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(20_000)
    noise = rng.standard_normal(a.shape)
    b = a + noise * (relative * np.linalg.norm(a) / np.linalg.norm(noise))
    ly = compare_models({"w": a}, {"w": b})["layers"][0]
    assert ly["category"] == category
    assert ly["relative_change"] == pytest.approx(relative, rel=1e-9, abs=1e-15)


def test_identical_means_bit_identical() -> None:
    a = np.array([0.0, 1.0, np.nan], dtype=np.float32)
    b = np.array([-0.0, 1.0, np.nan], dtype=np.float32)  # equal values, different bits
    diff = compare_models({"w": a, "same": a}, {"w": b, "same": a.copy()})
    same = next(ly for ly in diff["layers"] if ly["name"] == "same")
    w = next(ly for ly in diff["layers"] if ly["name"] == "w")
    assert same["combined_similarity"] == 1.0 and same["bit_identical"]
    assert not w["bit_identical"] and w["combined_similarity"] < 1.0
    assert w["category"] == "minor_changes"  # equal values, different bits: changed
    assert w["diff_stats"]["changed_params"] == 1
    assert [ly["name"] for ly in diff["most_changed_layers"]] == ["w"]


def test_shape_changes_are_reported_not_fatal(trained: dict[str, dict[str, np.ndarray]]) -> None:
    b = dict(trained["base"])
    b["4.weight"] = np.zeros((10, 64), np.float32)  # a new head with 10 classes
    b["4.bias"] = np.zeros(10, np.float32)
    b["2.bias"] = trained["base"]["2.bias"].astype(np.float16)  # dtype only
    diff = compare_models(trained["base"], b, "4 classes", "10 classes")
    assert sorted(diff["categories"]["shape_changed"]) == ["4.bias", "4.weight"]
    assert diff["summary"]["shape_changed_layers"] == 2
    head = next(ly for ly in diff["layers"] if ly["name"] == "4.weight")
    assert head["shape_a"] == [4, 64] and head["shape_b"] == [10, 64]
    assert head["combined_similarity"] is None
    assert all(ly["name"] not in ("4.weight", "4.bias") for ly in diff["most_changed_layers"])
    assert diff["dtype_changed"] == ["2.bias"]
    bias = next(ly for ly in diff["layers"] if ly["name"] == "2.bias")
    assert bias["combined_similarity"] > 0.999  # float16 rounding is tiny
    report = format_model_diff(diff, verbose=True)
    assert "4.weight: (4, 64) float32 -> (10, 64) float32" in report
    # Shape-changed layers count as changed parameters.
    assert diff["summary"]["changed_params"] >= 10 * 64 + 10


def test_added_and_removed_layers(trained: dict[str, dict[str, np.ndarray]]) -> None:
    a = dict(trained["base"])
    b = dict(trained["base"])
    del b["2.bias"]
    b["adapter.lora_A"] = np.ones((8, 64), np.float32)
    diff = compare_models(a, b)
    assert diff["categories"]["added"] == ["adapter.lora_A"]
    assert diff["categories"]["removed"] == ["2.bias"]
    s = diff["summary"]
    assert s["added_layers"] == 1 and s["removed_layers"] == 1 and s["common_layers"] == 5
    assert s["changed_params"] == 8 * 64 + 64
    assert s["total_params"] == sum(v.size for v in a.values()) + 8 * 64
    assert s["overall_similarity"] == pytest.approx(1 - s["changed_params"] / s["total_params"])
    assert diff["most_changed_layers"] == []
    text = format_model_diff(diff)
    assert "Added layers:" in text and "adapter.lora_A" in text and "Removed layers:" in text
    # Completely disjoint models and empty models do not crash.
    assert compare_models({}, {})["summary"]["overall_similarity"] == 1.0
    disjoint = compare_models({"x": np.ones(2)}, {"y": np.ones(2)})
    assert disjoint["summary"]["overall_similarity"] == 0.0


# -- lazy inputs: one layer at a time ----------------------------------------------------------


def test_lazy_repository_tensors_stay_lazy(repo: Any) -> None:
    base = repo.get_all_weights("base-model", lazy=True)
    tuned = repo.get_all_weights("finetuned-v1", lazy=True)
    diff = compare_models(base, tuned)
    assert sorted(diff["categories"]["identical"]) == sorted(FROZEN)
    assert not any(w.is_loaded for w in base.values())
    assert not any(w.is_loaded for w in tuned.values())
    eager = compare_models(repo.get_all_weights("base-model"), repo.get_all_weights("finetuned-v1"))
    assert diff["layers"] == eager["layers"]


class _Tracker:
    """Lazy tensors whose loads are counted and whose arrays are watched until freed."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}
        self.alive = 0
        self.peak = 0

    def _freed(self) -> None:
        self.alive -= 1

    def lazy(self, name: str, array: np.ndarray, known_hash: bool = False) -> WeightTensor:
        meta = WeightMetadata(name=name, shape=array.shape, dtype=array.dtype)
        if known_hash:
            meta.hash = WeightTensor(array).compute_hash()

        def load() -> np.ndarray:
            self.loads[name] = self.loads.get(name, 0) + 1
            out = array.copy()
            self.alive += 1
            self.peak = max(self.peak, self.alive)
            weakref.finalize(out, self._freed)
            return out

        return WeightTensor(metadata=meta, loader=load)


def test_lazy_tensors_are_read_one_layer_at_a_time() -> None:
    rng = np.random.default_rng(2)
    layers = {f"block.{i}.weight": rng.standard_normal((64, 64)).astype(np.float32)
              for i in range(12)}
    changed = {k: v + np.float32(0.01) * rng.standard_normal(v.shape).astype(np.float32)
               for k, v in layers.items()}
    tracker = _Tracker()
    a = {k: tracker.lazy(f"a:{k}", v) for k, v in layers.items()}
    b = {k: tracker.lazy(f"b:{k}", v) for k, v in changed.items()}
    diff = compare_models(a, b)
    counts = diff["category_counts"]
    assert counts["minor_changes"] + counts["moderate_changes"] == 12
    assert all(n == 1 for n in tracker.loads.values()) and len(tracker.loads) == 24
    assert tracker.peak <= 2, "more than one layer of each model was in memory at once"
    assert tracker.alive == 0
    assert not any(w.is_loaded for w in (*a.values(), *b.values()))

    dist_tracker = _Tracker()
    lazy = [dist_tracker.lazy(k, v) for k, v in layers.items()]
    dists = plot_weight_distribution(lazy)
    assert len(dists) == 12 and dist_tracker.peak == 1 and dist_tracker.alive == 0


def test_known_equal_hashes_skip_reading() -> None:
    tracker = _Tracker()
    w = np.arange(1000, dtype=np.float32)
    a = {"w": tracker.lazy("a", w, known_hash=True)}
    b = {"w": tracker.lazy("b", w.copy(), known_hash=True)}
    diff = compare_models(a, b)
    assert diff["layers"][0]["combined_similarity"] == 1.0
    assert diff["categories"]["identical"] == ["w"]
    assert tracker.loads == {}


# -- dtypes and special values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, np.float64],
)
def test_low_precision_float_dtypes(dtype: Any) -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal(4096)
    a = base.astype(dtype)
    b = (base * 1.01).astype(dtype)
    c = rng.standard_normal(4096).astype(dtype)
    diff = compare_models({"same": a, "near": a, "far": a}, {"same": a.copy(), "near": b, "far": c})
    by = {ly["name"]: ly for ly in diff["layers"]}
    assert by["same"]["combined_similarity"] == 1.0
    assert by["far"]["category"] == "major_changes"
    assert by["near"]["combined_similarity"] > by["far"]["combined_similarity"]
    for ly in diff["layers"]:
        assert all(math.isfinite(v) for v in ly["diff_stats"].values())
    dist = plot_weight_distribution({"a": a})["a"]
    assert dist["dtype"] == np.dtype(dtype).name and sum(dist["histogram"]) == 4096


def test_integer_bool_and_complex_tensors() -> None:
    a = {
        "step": np.array(1000, dtype=np.int64),  # 0-d
        "ids": np.arange(100, dtype=np.int32),
        "mask": np.array([True, False, True, True]),
        "phase": np.exp(1j * np.linspace(0, 3, 50)).astype(np.complex64),
        "empty": np.zeros((0, 8), np.float32),
    }
    b = dict(a)
    b["step"] = np.array(1001, dtype=np.int64)
    b["mask"] = np.array([True, True, True, True])
    b["phase"] = (a["phase"] * np.complex64(1j)).astype(np.complex64)
    diff = compare_models(a, b)
    by = {ly["name"]: ly for ly in diff["layers"]}
    assert by["ids"]["combined_similarity"] == 1.0
    assert by["empty"]["combined_similarity"] == 1.0
    assert by["step"]["diff_stats"]["max_abs_diff"] == 1.0
    assert by["step"]["diff_stats"]["changed_params"] == 1
    assert by["mask"]["diff_stats"]["changed_params"] == 1
    assert by["phase"]["diff_stats"]["changed_params"] == 50
    assert by["phase"]["category"] == "major_changes"  # rotated by 90 degrees
    dists = plot_weight_distribution(a)
    assert dists["mask"]["sparsity"] == 0.25 and dists["empty"]["num_params"] == 0
    assert dists["step"]["mean"] == 1000.0


def test_nan_and_inf_are_reported_not_propagated() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal(1000).astype(np.float32)
    b = a.copy()
    b[:10] = np.nan  # training diverged on a few weights
    b[10] = np.inf
    same_nan = a.copy()
    same_nan[5] = np.nan
    diff = compare_models({"w": a, "n": same_nan, "ok": a}, {"w": b, "n": same_nan.copy(), "ok": a})
    s = diff["summary"]
    assert math.isfinite(s["overall_similarity"])
    assert diff["nonfinite_layers"] == ["n", "w"]
    w = next(ly for ly in diff["layers"] if ly["name"] == "w")
    assert w["nonfinite"] == {"a": 0, "b": 11, "mismatched": 11}
    assert all(math.isfinite(v) for v in w["diff_stats"].values())
    assert w["combined_similarity"] == pytest.approx(1 - 11 / 1000)
    n = next(ly for ly in diff["layers"] if ly["name"] == "n")
    assert n["combined_similarity"] == 1.0  # same NaN bits on both sides
    assert "Layers with NaN/inf: n, w" in format_model_diff(diff)
    dist = plot_weight_distribution({"b": b})["b"]
    assert dist["nonfinite"] == 11 and math.isfinite(dist["mean"]) and math.isfinite(dist["std"])
    assert sum(dist["histogram"]) == 989


def test_float64_extremes_do_not_overflow() -> None:
    a = np.array([1e300, -1e300, 3.0, 1e-310])
    b = np.array([-1e300, 1e300, 3.0, 1e-310])
    a_before = a.copy()
    ly = compare_models({"x": a}, {"x": b})["layers"][0]
    assert ly["cosine_similarity"] == pytest.approx(-1.0)
    assert ly["combined_similarity"] == 0.0
    assert ly["relative_change"] == pytest.approx(2.0)
    assert ly["diff_stats"]["rmse"] == pytest.approx(math.sqrt(2.0) * 1e300)
    np.testing.assert_array_equal(a, a_before)  # inputs are never modified
    tiny = compare_models({"x": np.array([1e-320, 2e-320])}, {"x": np.array([2e-320, 4e-320])})
    assert tiny["layers"][0]["cosine_similarity"] == pytest.approx(1.0)


def test_torch_tensors_as_input(trained: dict[str, dict[str, np.ndarray]]) -> None:
    torch = pytest.importorskip("torch")
    a = {k: torch.from_numpy(v.copy()) for k, v in trained["base"].items()}
    b = {k: torch.from_numpy(v.copy()) for k, v in trained["finetuned"].items()}
    b["0.weight"] = b["0.weight"].to(torch.bfloat16)
    diff = compare_models(a, b)
    assert diff["dtype_changed"] == ["0.weight"]
    assert "0.bias" in diff["categories"]["identical"]
    assert set(HEAD) <= set(diff["categories"]["major_changes"])


# -- deduplication statistics ------------------------------------------------------------------


def test_plot_deduplication_stats_from_dataclass_and_dict() -> None:
    stats = DeduplicationStats(total_weights=10, unique_weights=4, duplicate_weights=4,
                               similar_weights=2, total_bytes=4 << 20, unique_bytes=3 << 20,
                               stored_bytes=1 << 20)
    viz = plot_deduplication_stats(stats)
    assert viz["weight_counts"] == {"unique": 4, "duplicate": 4, "similar": 2, "unique_full": 4,
                                    "total": 10}
    assert viz["compression"]["bytes_saved"] == 3 << 20
    assert viz["compression"]["compression_ratio"] == 4.0
    assert viz["compression"]["space_savings"] == 0.75
    assert sum(viz["percentages"].values()) == pytest.approx(1.0)
    assert plot_deduplication_stats(stats.to_dict()) == viz
    empty = plot_deduplication_stats(DeduplicationStats())
    assert empty["compression"]["compression_ratio"] == 1.0
    assert empty["percentages"] == {"unique_full": 0.0, "similar": 0.0, "duplicate": 0.0}

"""The chapter 8.4 comparison dictionary, built from the diff engine's verdicts.

`compare_models` (mappings of tensors) and `coral diff --visual/--ascii` (two commits) both
call `comparison()` on `coral.version_control.diff` verdicts, so the text table, the PNG, the
HTML report and the ASCII chart agree on every count. A tensor is `identical` only when its
bits are; a changed tensor is graded by its combined similarity (direction times magnitude
agreement): minor (> 99%), moderate (> 90%) or major.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coral.core.lazy_imports import lazy_module
from coral.version_control.diff import (
    ADDED,
    CHANGED,
    IDENTICAL,
    REMOVED,
    SHAPE_CHANGED,
    DiffResult,
    TensorComparison,
    category_counts,
    natural_key,
)

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

MINOR_THRESHOLD = 0.99
MODERATE_THRESHOLD = 0.90

# Every category a layer can land in, most similar first.
CATEGORY_ORDER: tuple[str, ...] = (
    "identical",
    "minor_changes",
    "moderate_changes",
    "major_changes",
    "shape_changed",
    "added",
    "removed",
)
GRADES: tuple[str, ...] = CATEGORY_ORDER[1:4]  # the grades of a changed tensor


def grade(similarity: float | None) -> str:
    """The grade of a changed tensor from its combined similarity."""
    if similarity is None or similarity <= MODERATE_THRESHOLD:
        return "major_changes"
    return "minor_changes" if similarity > MINOR_THRESHOLD else "moderate_changes"


def _zero_stats() -> dict[str, float | int]:
    return {
        "rmse": 0.0,
        "max_abs_diff": 0.0,
        "mean_abs_diff": 0.0,
        "l2_diff": 0.0,
        "changed_params": 0,
        "changed_fraction": 0.0,
    }


def layer_record(t: TensorComparison) -> dict[str, Any]:
    """One entry of `layers`: the engine's verdict with chapter 8.4's metric names."""
    shape_a = list(t.old_shape) if t.old_shape is not None else None
    shape_b = list(t.new_shape) if t.new_shape is not None else None
    out: dict[str, Any] = {
        "name": t.name,
        "status": t.category if t.category in (ADDED, REMOVED) else "common",
        "engine_category": t.category,
        "category": t.category,
        "bit_identical": t.category == IDENTICAL,
        "shape_a": shape_a,
        "shape_b": shape_b,
        "dtype_a": t.old_dtype,
        "dtype_b": t.new_dtype,
        "dtype_changed": t.dtype_changed,
        "num_params": t.elements,
        "cosine_similarity": None,
        "one_minus_cosine": None,
        "relative_change": None,
        "combined_similarity": None,
        "norm_a": None,
        "norm_b": None,
        "diff_stats": None,
        "nonfinite": None,
    }
    if t.category == IDENTICAL:
        out.update(
            cosine_similarity=1.0,
            one_minus_cosine=0.0,
            relative_change=0.0,
            combined_similarity=1.0,
            diff_stats=_zero_stats(),
            nonfinite={"a": t.nonfinite, "b": t.nonfinite, "mismatched": 0},
        )
    elif t.category == SHAPE_CHANGED:
        out["num_params_a"] = int(np.prod(shape_a or [], dtype=np.int64))
        out["num_params_b"] = int(np.prod(shape_b or [], dtype=np.int64))
    elif t.category == CHANGED:
        m = t.metrics
        if m is None:
            out["category"] = "major_changes"
            if t.error:
                out["error"] = t.error
            return out
        combined = combined_similarity(m.cosine, m.l2, m.norm_a, m.norm_b)
        if m.elements and m.nonfinite_mismatched:
            combined *= 1.0 - m.nonfinite_mismatched / m.elements
        combined = max(0.0, min(1.0, combined))
        if combined >= 1.0:
            combined = 1.0 - 1e-12  # 1.0 exactly is reserved for bit-identical tensors
        out.update(
            category=grade(combined),
            cosine_similarity=m.cosine,
            one_minus_cosine=m.one_minus_cosine,
            relative_change=m.relative,
            combined_similarity=combined,
            norm_a=m.norm_a,
            norm_b=m.norm_b,
            diff_stats={
                "rmse": m.rmse,
                "max_abs_diff": m.max_abs,
                "mean_abs_diff": m.mean_abs,
                "l2_diff": m.l2,
                "changed_params": m.changed_elements,
                "changed_fraction": m.changed_elements / m.elements if m.elements else 0.0,
            },
            nonfinite={
                "a": m.nonfinite_a,
                "b": m.nonfinite_b,
                "mismatched": m.nonfinite_mismatched,
            },
        )
    return out


def combined_similarity(cosine: float, l2: float, norm_a: float, norm_b: float) -> float:
    """Direction agreement times magnitude agreement, in [0, 1].

    1 − ‖b − a‖ / (‖a‖ + ‖b‖) lies in [0, 1] by the triangle inequality, is symmetric, and is
    1 only when a == b."""
    denom = norm_a + norm_b
    magnitude = 1.0 - (l2 / denom if denom > 0.0 else 0.0)
    return max(0.0, cosine) * max(0.0, min(1.0, magnitude))


def comparison(
    tensors: Sequence[TensorComparison], model_a_name: str, model_b_name: str
) -> dict[str, Any]:
    """The `compare_models` dictionary of a list of engine verdicts."""
    layers = [layer_record(t) for t in tensors]
    categories: dict[str, list[str]] = {c: [] for c in CATEGORY_ORDER}
    for layer in layers:
        categories[layer["category"]].append(layer["name"])
    counts = {c: len(v) for c, v in categories.items()}

    comparable = [ly for ly in layers if ly["combined_similarity"] is not None]
    most_changed = sorted(
        (ly for ly in comparable if not ly["bit_identical"]),
        key=lambda ly: (ly["combined_similarity"], natural_key(ly["name"])),
    )
    # Parameter-weighted similarity over the union of layers; layers present on one side only,
    # whose shape changed or that could not be compared count as entirely changed.
    total_params = changed_params = 0
    weighted = 0.0
    for ly in layers:
        total_params += ly["num_params"]
        if ly["combined_similarity"] is None:
            changed_params += ly["num_params"]
        else:
            weighted += ly["combined_similarity"] * ly["num_params"]
            changed_params += ly["diff_stats"]["changed_params"]
    if total_params:
        overall = weighted / total_params
    else:
        overall = 1.0 if all(ly["combined_similarity"] == 1.0 for ly in layers) else 0.0
    sims = [ly["combined_similarity"] for ly in comparable]
    nonfinite = [
        ly["name"]
        for ly in comparable
        if ly["nonfinite"] and (ly["nonfinite"]["a"] or ly["nonfinite"]["b"])
    ]
    engine = category_counts(list(tensors))
    in_a = [t for t in tensors if t.category != ADDED]
    in_b = [t for t in tensors if t.category != REMOVED]
    summary = {
        "overall_similarity": overall,
        "mean_layer_similarity": float(np.mean(sims)) if sims else None,
        "min_layer_similarity": float(min(sims)) if sims else None,
        "changed_params": int(changed_params),
        "total_params": int(total_params),
        "total_params_a": sum(_size(t.old_shape) for t in in_a),
        "total_params_b": sum(_size(t.new_shape) for t in in_b),
        "total_layers_a": len(in_a),
        "total_layers_b": len(in_b),
        "common_layers": len(tensors) - engine[ADDED] - engine[REMOVED],
        "added_layers": engine[ADDED],
        "removed_layers": engine[REMOVED],
        "shape_changed_layers": engine[SHAPE_CHANGED],
        "dtype_changed_layers": sum(1 for ly in layers if ly["dtype_changed"]),
        "identical_layers": engine[IDENTICAL],
        "changed_layers": engine[CHANGED] + engine[SHAPE_CHANGED],
        "nonfinite_layers": len(nonfinite),
    }
    return {
        "model_a_name": model_a_name,
        "model_b_name": model_b_name,
        "summary": summary,
        "counts": engine,
        "category_counts": counts,
        "categories": categories,
        "most_changed_layers": most_changed,
        "layers": layers,
        "dtype_changed": [ly["name"] for ly in layers if ly["dtype_changed"]],
        "nonfinite_layers": nonfinite,
    }


def comparison_of_diff(
    result: DiffResult, model_a_name: str | None = None, model_b_name: str | None = None
) -> dict[str, Any]:
    """The `compare_models` dictionary of a `Repository.diff` result (nothing is re-read)."""
    return comparison(
        result.tensors, model_a_name or result.from_ref, model_b_name or result.to_ref
    )


def _size(shape: tuple[int, ...] | None) -> int:
    if shape is None:
        return 0
    return int(math.prod(shape))

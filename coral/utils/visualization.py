"""Compare model versions and summarise weight distributions and deduplication (chapter 8.4).

Everything here is plain numpy and returns dictionaries; drawing lives in `coral.utils.heatmap`,
`coral.utils.html_report` and `coral.utils.ascii_report`. Inputs are mappings name ->
`WeightTensor` / numpy array / torch tensor, such as `Repository.get_all_weights(ref)`. Tensors
are read one layer at a time and dropped again (a lazy `WeightTensor` stays lazy), and large
layers are reduced in chunks, so comparing two big models never holds both in memory. All
arithmetic is float64. Comparisons go through the one diff engine,
`coral.version_control.diff.compare_tensors`, the same one `coral diff` uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from coral.core.dedup_stats import DeduplicationStats
from coral.core.training_names import is_training_state
from coral.utils.comparison import CATEGORY_ORDER, comparison
from coral.utils.tensor_values import (
    model_tensors,
    named_items,
    read,
    safe_dtype_name,
    tensor_side,
)
from coral.version_control.diff import block_slices, compare_tensors, pow2_scale, real_view

__all__ = [
    "CATEGORY_ORDER",
    "compare_models",
    "format_model_diff",
    "plot_deduplication_stats",
    "plot_weight_distribution",
]


# -- compare_models ----------------------------------------------------------------------------


def compare_models(
    weights_a: Mapping[str, Any],
    weights_b: Mapping[str, Any],
    model_a_name: str = "Model A",
    model_b_name: str = "Model B",
    *,
    include_training_state: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Compare two models layer by layer.

    `weights_a`/`weights_b` map names to `WeightTensor`, numpy arrays or torch tensors (lazy
    tensors are read one at a time and left lazy). A layer is `identical` when its bits are
    (combined_similarity 1.0 exactly); a changed layer gets cosine similarity (and
    `one_minus_cosine`, precise for tiny changes), relative change |b-a|/|a|, RMSE, max/mean
    absolute difference and a `combined_similarity` in [0, 1), and a grade: minor_changes
    (>99%), moderate_changes (>90%) or major_changes; shape_changed, and `added` / `removed`
    for layers in one model only. Training state (`__optim__/...` and the other reserved
    prefixes) is left out unless `include_training_state`. Returns a dict with `summary`,
    `counts` (the engine's five categories), `category_counts`, `categories` (names per
    category), `most_changed_layers`, `layers`, `dtype_changed`, `nonfinite_layers`,
    `model_a_name` and `model_b_name`.
    """
    a = model_tensors(weights_a, include_training_state)
    b = model_tensors(weights_b, include_training_state)
    tensors = compare_tensors(
        {n: tensor_side(v) for n, v in a.items()},
        {n: tensor_side(v) for n, v in b.items()},
        progress=progress,
    )
    return comparison(tensors, model_a_name, model_b_name)


# -- text report -------------------------------------------------------------------------------

_CATEGORY_LABELS = {
    "identical": "Identical (bit-equal)",
    "minor_changes": "Minor changes (>99%)",
    "moderate_changes": "Moderate (>90%)",
    "major_changes": "Major (<90%)",
    "shape_changed": "Shape changed",
    "added": "Added",
    "removed": "Removed",
}
_NAME_WIDTH = 40


def _fmt_num(x: float | None, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, spec)


def _shape_str(shape: list[int] | None) -> str:
    return "-" if shape is None else str(tuple(shape))


def _similarity(ly: Mapping[str, Any]) -> str:
    """A similarity that never reads 100% for a changed layer."""
    sim = ly["combined_similarity"]
    if sim is None:
        return "-"
    if ly["bit_identical"]:
        return "100%"
    text = f"{sim:.2%}"
    return text if text != "100.00%" else f"{sim:.6%}" if sim < 0.99999999 else ">99.999999%"


def format_model_diff(diff: dict[str, Any], verbose: bool = False) -> str:
    """A human-readable report of a `compare_models` result (every layer when `verbose`).

    Names are printed whole; a name longer than the name column gets a line of its own."""
    s = diff["summary"]
    counts = diff["category_counts"]
    lines = [
        f"Model comparison: {diff['model_a_name']} -> {diff['model_b_name']}",
        "=" * 60,
        f"Overall similarity: {s['overall_similarity']:.2%}",
        f"Changed parameters: {s['changed_params']:,} of {s['total_params']:,}",
        f"Layers: {s['common_layers']} common, {s['added_layers']} added, "
        f"{s['removed_layers']} removed, {s['shape_changed_layers']} shape changed",
    ]
    if s.get("dtype_changed_layers"):
        lines.append(f"Dtype changed: {', '.join(diff['dtype_changed'])}")
    if diff.get("nonfinite_layers"):
        lines.append(f"Layers with NaN/inf: {', '.join(diff['nonfinite_layers'])}")
    lines += ["", "Change distribution:"]
    for cat in CATEGORY_ORDER:
        if counts.get(cat) or cat in CATEGORY_ORDER[:4]:
            lines.append(f"  {_CATEGORY_LABELS[cat] + ':':<22} {counts.get(cat, 0)}")

    most = diff["most_changed_layers"]
    if most:
        lines += ["", "Most changed layers:"]
        for ly in most if verbose else most[:10]:
            d = ly["diff_stats"]
            lines.append(
                f"  {ly['name']}: {_similarity(ly)} similar "
                f"(1-cos {_fmt_num(ly['one_minus_cosine'])}, rel. change "
                f"{_fmt_num(ly['relative_change'])}, RMSE {_fmt_num(d['rmse'], '.3g')})"
            )
        if not verbose and len(most) > 10:
            lines.append(f"  ... {len(most) - 10} more")

    sections = (("shape_changed", "Shape changed"), ("added", "Added"), ("removed", "Removed"))
    by_name = {ly["name"]: ly for ly in diff["layers"]}
    for cat, title in sections:
        names = diff["categories"].get(cat) or []
        if not names:
            continue
        lines += ["", f"{title} layers:"]
        for name in names if verbose else names[:10]:
            ly = by_name[name]
            if cat == "shape_changed":
                lines.append(
                    f"  {name}: {_shape_str(ly['shape_a'])} {ly['dtype_a']} -> "
                    f"{_shape_str(ly['shape_b'])} {ly['dtype_b']}"
                )
            else:
                shape = ly["shape_b"] if cat == "added" else ly["shape_a"]
                dt = ly["dtype_b"] if cat == "added" else ly["dtype_a"]
                lines.append(f"  {name}: {_shape_str(shape)} {dt}")
        if not verbose and len(names) > 10:
            lines.append(f"  ... {len(names) - 10} more")
    if verbose:
        lines += ["", "All layers:", _layer_line("layer", "category", *_LAYER_HEADS)]
        for ly in diff["layers"]:
            lines += _layer_lines(ly)
    return "\n".join(lines)


_LAYER_HEADS = ("similarity", "1-cos", "rel.chg", "rmse", "max|d|", "changed")


def _layer_line(name: str, category: str, *cells: str) -> str:
    return f"  {name:<{_NAME_WIDTH}} {category:<17} " + " ".join(f"{c:>10}" for c in cells)


def _layer_lines(ly: Mapping[str, Any]) -> list[str]:
    d = ly["diff_stats"] or {}
    cells = (
        _similarity(ly),
        _fmt_num(ly["one_minus_cosine"]),
        _fmt_num(ly["relative_change"]),
        _fmt_num(d.get("rmse")),
        _fmt_num(d.get("max_abs_diff")),
        format(d["changed_fraction"], ".1%") if d else "-",
    )
    name = ly["name"]
    if len(name) > _NAME_WIDTH:  # never cut a name: it gets a line of its own
        out = [f"  {name}", _layer_line("", ly["category"], *cells)]
    else:
        out = [_layer_line(name, ly["category"], *cells)]
    nf = ly.get("nonfinite")
    if nf and (nf["a"] or nf["b"]):
        out.append(
            f"  {'':<{_NAME_WIDTH}} non-finite values: {nf['a']} before, {nf['b']} after, "
            f"{nf['mismatched']} mismatched"
        )
    return out


# -- weight distributions ----------------------------------------------------------------------


def plot_weight_distribution(
    weights: Any, bins: int = 50, *, include_training_state: bool = False
) -> dict[str, dict[str, Any]]:
    """Per-tensor value statistics and histogram.

    `weights` is a list of `WeightTensor` (named by their metadata), a mapping name -> tensor,
    or numpy arrays; training state (`__optim__/...`) is left out unless
    `include_training_state`. Returns name -> {mean, std, min, max, sparsity (fraction of
    exact zeros), histogram (counts), bin_edges, num_params, shape, dtype, abs_mean, l2_norm,
    nonfinite}.
    Statistics are over finite values in float64; NaN/inf are counted in `nonfinite`.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    out: dict[str, dict[str, Any]] = {}
    for name, value in named_items(weights):
        if not include_training_state and is_training_state(name):
            continue
        key = name
        i = 1
        while key in out:
            i += 1
            key = f"{name}#{i}"
        arr = read(value)
        try:
            out[key] = _distribution(arr, bins)
        finally:
            del arr
    return out


def _f64(arr: np.ndarray, sl: slice) -> np.ndarray:
    return np.asarray(arr[sl], dtype=np.float64)


def _distribution(arr: np.ndarray, bins: int) -> dict[str, Any]:
    flat = real_view(arr)
    n = int(flat.size)
    count = zeros = nonfinite = 0
    total = abs_total = 0.0
    lo, hi = math.inf, -math.inf
    max_abs = 0.0
    for sl in block_slices(n):
        x = _f64(flat, sl)
        zeros += int(np.count_nonzero(x == 0.0))
        fin = np.isfinite(x)
        if not fin.all():
            nonfinite += int(x.size - np.count_nonzero(fin))
            x = x[fin]
        if x.size == 0:
            continue
        count += int(x.size)
        lo = min(lo, float(x.min()))
        hi = max(hi, float(x.max()))
        max_abs = max(max_abs, abs(lo), abs(hi))
    scale = pow2_scale(max_abs)
    for sl in block_slices(n):
        x = _f64(flat, sl)
        x = x[np.isfinite(x)]
        total += float(np.sum(x / scale))
        abs_total += float(np.sum(np.abs(x)))
    mean = total / count * scale if count else 0.0
    hist_range = (lo, hi) if count else (0.0, 0.0)
    if count and lo == hi:
        hist_range = (lo - 0.5, hi + 0.5)
    counts = np.zeros(bins, dtype=np.int64)
    edges = np.histogram_bin_edges(np.zeros(0), bins=bins, range=hist_range if count else (0, 1))
    sq = 0.0
    for sl in block_slices(n):
        x = _f64(flat, sl)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        dev = (x - mean) / scale
        sq += float(np.dot(dev, dev))
        counts += np.histogram(x, bins=edges)[0]
    std = math.sqrt(sq / count) * scale if count else 0.0
    return {
        "mean": mean,
        "std": std,
        "min": lo if count else 0.0,
        "max": hi if count else 0.0,
        "sparsity": zeros / n if n else 0.0,
        "abs_mean": abs_total / count if count else 0.0,
        "l2_norm": math.sqrt(sq + (mean / scale) ** 2 * count) * scale if count else 0.0,
        "num_params": int(arr.size),
        "shape": list(arr.shape),
        "dtype": safe_dtype_name(arr.dtype),
        "nonfinite": nonfinite,
        "histogram": counts.tolist(),
        "bin_edges": edges.tolist(),
    }


# -- deduplication statistics ------------------------------------------------------------------


def plot_deduplication_stats(stats: DeduplicationStats | Mapping[str, Any]) -> dict[str, Any]:
    """Chart-ready numbers from a `DeduplicationStats` (or its `to_dict()`).

    Returns {weight_counts: {unique, duplicate, similar, unique_full, total},
    percentages: {unique_full, similar, duplicate} (fractions of all weights, summing to 1),
    compression: {total_bytes, unique_bytes, stored_bytes, bytes_saved, compression_ratio,
    space_savings}}. unique + similar + duplicate = total: `unique` weights are distinct
    contents stored in full (`unique_full` is the same number), `similar` ones distinct
    contents stored as a delta.
    """
    d = stats.to_dict() if isinstance(stats, DeduplicationStats) else dict(stats)
    unique = int(d.get("unique_weights", 0))
    duplicate = int(d.get("duplicate_weights", 0))
    similar = int(d.get("similar_weights", 0))
    total = (
        int(d.get("total_weights", unique + similar + duplicate)) or unique + similar + duplicate
    )
    total_bytes = int(d.get("total_bytes", 0))
    stored = int(d.get("stored_bytes", 0))
    saved = int(d.get("bytes_saved", max(0, total_bytes - stored)))
    ratio = float(d.get("compression_ratio", total_bytes / stored if stored else 1.0))
    unique_full = unique
    return {
        "weight_counts": {
            "unique": unique,
            "duplicate": duplicate,
            "similar": similar,
            "unique_full": unique_full,
            "total": total,
        },
        "percentages": {
            "unique_full": unique_full / total if total else 0.0,
            "similar": similar / total if total else 0.0,
            "duplicate": duplicate / total if total else 0.0,
        },
        "compression": {
            "total_bytes": total_bytes,
            "unique_bytes": int(d.get("unique_bytes", 0)),
            "stored_bytes": stored,
            "bytes_saved": saved,
            "compression_ratio": ratio,
            "space_savings": saved / total_bytes if total_bytes else 0.0,
        },
    }

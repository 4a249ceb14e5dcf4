"""Compare model versions and summarise weight distributions and deduplication (chapter 8.4).

Everything here is plain numpy and returns dictionaries; drawing lives in
`coral.utils.diff_report`. Inputs are mappings name -> `WeightTensor` / numpy array / torch
tensor, such as `Repository.get_all_weights(ref)`. Tensors are read one layer at a time and
dropped again (a lazy `WeightTensor` stays lazy), and large layers are reduced in chunks, so
comparing two big models never holds both in memory. All arithmetic is float64.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from coral.core.dedup_stats import DeduplicationStats
from coral.core.dtypes import dtype_name
from coral.core.weight_tensor import WeightTensor

__all__ = [
    "CATEGORY_ORDER",
    "compare_models",
    "format_model_diff",
    "plot_deduplication_stats",
    "plot_weight_distribution",
]

# Similarity thresholds of the chapter 8.4 categories (combined_similarity, strictly above).
IDENTICAL_THRESHOLD = 0.9999
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

_CHUNK_ELEMENTS = 1 << 22  # elements converted to float64 at a time (32 MiB per operand)


# -- reading tensors one at a time -------------------------------------------------------------


def _shape_dtype(value: Any) -> tuple[tuple[int, ...], str]:
    """Shape and canonical dtype name without loading a lazy tensor."""
    if isinstance(value, WeightTensor):
        return value.shape, value.metadata.dtype_name
    if isinstance(value, np.ndarray) or np.isscalar(value):
        arr = np.asarray(value)
        return tuple(arr.shape), _safe_dtype_name(arr.dtype)
    if type(value).__module__.startswith("torch"):
        return tuple(int(d) for d in value.shape), str(value.dtype).removeprefix("torch.")
    arr = np.asarray(value)
    return tuple(arr.shape), _safe_dtype_name(arr.dtype)


def _safe_dtype_name(dtype: np.dtype) -> str:
    try:
        return dtype_name(dtype)
    except Exception:
        return str(dtype)


def _known_hash(value: Any) -> str | None:
    """A tensor's content hash when it is already known (never computed here)."""
    if isinstance(value, WeightTensor):
        return value.metadata.hash
    return None


def _read(value: Any) -> np.ndarray:
    """The values of one tensor, without leaving a lazy `WeightTensor` loaded afterwards."""
    if isinstance(value, WeightTensor):
        if value.is_loaded:
            return value.data
        # Read through a shallow copy: the copy caches the values and is dropped by the caller,
        # the caller's tensor stays lazy.
        return copy.copy(value).data
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        from coral.integrations.torch_convert import torch_to_numpy

        return torch_to_numpy(value)
    return np.asarray(value)


def _real_view(arr: np.ndarray) -> np.ndarray:
    """A flat array of real numbers: complex values become (real, imag) pairs."""
    flat = arr.reshape(-1)
    if np.iscomplexobj(flat):
        flat = np.ascontiguousarray(flat).view(flat.real.dtype)
    return flat


def _chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, _CHUNK_ELEMENTS):
        yield slice(start, min(n, start + _CHUNK_ELEMENTS))


def _f64(arr: np.ndarray, sl: slice) -> np.ndarray:
    return np.asarray(arr[sl], dtype=np.float64)


def _bit_view(arr: np.ndarray) -> np.ndarray:
    """The array's raw bit patterns as unsigned integers (for exact comparison)."""
    size = arr.dtype.itemsize
    flat = np.ascontiguousarray(arr).reshape(-1)
    if size in (1, 2, 4, 8):
        return flat.view(f"u{size}")
    return flat.view(np.uint8).reshape(flat.size, size)


def _natural_key(name: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


# -- per-layer comparison ----------------------------------------------------------------------


def _pow2_scale(max_abs: float) -> float:
    """A power of two near max_abs: dividing by it keeps sums of squares finite and exact-ish."""
    if not math.isfinite(max_abs) or max_abs <= 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(max_abs)[1])


def _categorize(similarity: float) -> str:
    if similarity > IDENTICAL_THRESHOLD:
        return "identical"
    if similarity > MINOR_THRESHOLD:
        return "minor_changes"
    if similarity > MODERATE_THRESHOLD:
        return "moderate_changes"
    return "major_changes"


def _identical_layer(name: str, shape: tuple[int, ...], dtype: str, size: int) -> dict[str, Any]:
    return {
        "name": name,
        "status": "common",
        "category": "identical",
        "bit_identical": True,
        "shape_a": list(shape),
        "shape_b": list(shape),
        "dtype_a": dtype,
        "dtype_b": dtype,
        "dtype_changed": False,
        "num_params": size,
        "cosine_similarity": 1.0,
        "relative_change": 0.0,
        "combined_similarity": 1.0,
        "norm_a": None,
        "norm_b": None,
        "diff_stats": {
            "rmse": 0.0,
            "max_abs_diff": 0.0,
            "mean_abs_diff": 0.0,
            "l2_diff": 0.0,
            "changed_params": 0,
            "changed_fraction": 0.0,
        },
        "nonfinite": {"a": 0, "b": 0, "mismatched": 0},
    }


def _compare_arrays(name: str, a_raw: np.ndarray, b_raw: np.ndarray) -> dict[str, Any]:
    """All per-layer metrics for two same-shape tensors, in float64, chunk by chunk."""
    dtype_a, dtype_b = _safe_dtype_name(a_raw.dtype), _safe_dtype_name(b_raw.dtype)
    size = int(a_raw.size)
    same_dtype = dtype_a == dtype_b

    # Exact comparison of bit patterns (NaN payloads and -0.0 count).
    if same_dtype:
        bits_a, bits_b = _bit_view(a_raw), _bit_view(b_raw)
        changed = 0
        for sl in _chunks(size):
            neq = bits_a[sl] != bits_b[sl]
            changed += int(np.count_nonzero(neq.any(axis=1) if neq.ndim == 2 else neq))
        del bits_a, bits_b
        if changed == 0:
            out = _identical_layer(name, tuple(a_raw.shape), dtype_a, size)
            nonfinite = _nonfinite_count(a_raw)
            out["nonfinite"] = {"a": nonfinite, "b": nonfinite, "mismatched": 0}
            return out
    else:
        changed = -1  # counted below on values

    if np.iscomplexobj(a_raw) != np.iscomplexobj(b_raw):
        a_raw, b_raw = a_raw.astype(np.complex128), b_raw.astype(np.complex128)
    a_flat, b_flat = _real_view(a_raw), _real_view(b_raw)
    n = int(a_flat.size)

    # Sums of squares of float32-or-narrower values cannot overflow float64; wider types are
    # first scanned for their largest finite magnitude and divided by a power of two near it.
    scale = 1.0
    if max(a_flat.dtype.itemsize, b_flat.dtype.itemsize) > 4:
        max_abs = 0.0
        for sl in _chunks(n):
            for x in (_f64(a_flat, sl), _f64(b_flat, sl)):
                x = x[np.isfinite(x)]
                if x.size:
                    max_abs = max(max_abs, float(np.max(np.abs(x))))
        scale = _pow2_scale(max_abs)

    nonfinite_a = nonfinite_b = mismatched = finite_both = 0
    value_changed = 0
    dot = sa = sb = sd = 0.0
    abs_sum = 0.0
    max_abs_diff = 0.0
    for sl in _chunks(n):
        a, b = _f64(a_flat, sl), _f64(b_flat, sl)
        if changed < 0:
            both_nan = np.count_nonzero(np.isnan(a) & np.isnan(b))
            value_changed += int(np.count_nonzero(a != b) - both_nan)
        fa, fb = np.isfinite(a), np.isfinite(b)
        all_a, all_b = bool(fa.all()), bool(fb.all())
        if not (all_a and all_b):
            nonfinite_a += int(a.size - np.count_nonzero(fa))
            nonfinite_b += int(b.size - np.count_nonzero(fb))
            both = fa & fb
            # Non-finite in either: consistent when both are NaN or both the same infinity.
            ao, bo = a[~both], b[~both]
            same = (np.isnan(ao) & np.isnan(bo)) | (ao == bo)
            mismatched += int(np.count_nonzero(~same))
            a, b = a[both], b[both]
        finite_both += int(a.size)
        if a.size == 0:
            continue
        if scale != 1.0:
            a, b = a / scale, b / scale  # never in place: `a` may be the caller's array
        d = b - a
        absd = np.abs(d)
        max_abs_diff = max(max_abs_diff, float(absd.max()) * scale)
        abs_sum += float(absd.sum()) * scale
        dot += float(np.dot(a, b))
        sa += float(np.dot(a, a))
        sb += float(np.dot(b, b))
        sd += float(np.dot(d, d))
    if changed < 0:
        changed = value_changed if a_flat.size == size else _complex_changed(a_raw, b_raw)

    norm_a, norm_b, norm_d = math.sqrt(sa) * scale, math.sqrt(sb) * scale, math.sqrt(sd) * scale
    if sa == 0.0 and sb == 0.0:
        cosine = 1.0
    elif sa == 0.0 or sb == 0.0:
        cosine = 0.0
    else:
        cosine = max(-1.0, min(1.0, dot / math.sqrt(sa * sb)))
    relative = norm_d / norm_a if norm_a > 0.0 else (0.0 if norm_d == 0.0 else math.inf)
    # Direction agreement times magnitude agreement: 1 - |b-a| / (|a|+|b|) lies in [0, 1] by the
    # triangle inequality, is symmetric, and is 1 only when a == b.
    denom = math.sqrt(sa) + math.sqrt(sb)
    magnitude = 1.0 - (math.sqrt(sd) / denom if denom > 0.0 else 0.0)
    combined = max(0.0, cosine) * max(0.0, min(1.0, magnitude))
    if n and mismatched:
        combined *= 1.0 - mismatched / n
    combined = max(0.0, min(1.0, combined))
    if combined >= 1.0:
        combined = 1.0 - 1e-12 if changed else 1.0  # 1.0 exactly is reserved for equal values

    count = finite_both
    rmse = math.sqrt(sd / count) * scale if count else 0.0
    mean_abs = abs_sum / count if count else 0.0
    return {
        "name": name,
        "status": "common",
        "category": _categorize(combined),
        "bit_identical": False,
        "shape_a": list(a_raw.shape),
        "shape_b": list(b_raw.shape),
        "dtype_a": dtype_a,
        "dtype_b": dtype_b,
        "dtype_changed": not same_dtype,
        "num_params": size,
        "cosine_similarity": cosine,
        "relative_change": relative,
        "combined_similarity": combined,
        "norm_a": norm_a,
        "norm_b": norm_b,
        "diff_stats": {
            "rmse": rmse,
            "max_abs_diff": max_abs_diff,
            "mean_abs_diff": mean_abs,
            "l2_diff": norm_d,
            "changed_params": changed,
            "changed_fraction": changed / size if size else 0.0,
        },
        "nonfinite": {"a": nonfinite_a, "b": nonfinite_b, "mismatched": mismatched},
    }


def _complex_changed(a_raw: np.ndarray, b_raw: np.ndarray) -> int:
    a = a_raw.reshape(-1).astype(np.complex128)
    b = b_raw.reshape(-1).astype(np.complex128)
    return int(np.count_nonzero(a != b))


def _nonfinite_count(arr: np.ndarray) -> int:
    kind = arr.dtype.kind
    if kind in "biu":
        return 0
    flat = _real_view(arr)
    total = 0
    for sl in _chunks(int(flat.size)):
        total += int(sl.stop - sl.start - np.count_nonzero(np.isfinite(_f64(flat, sl))))
    return total


def _one_sided_layer(name: str, status: str, shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return {
        "name": name,
        "status": status,
        "category": status,
        "bit_identical": False,
        "shape_a": list(shape) if status == "removed" else None,
        "shape_b": list(shape) if status == "added" else None,
        "dtype_a": dtype if status == "removed" else None,
        "dtype_b": dtype if status == "added" else None,
        "dtype_changed": False,
        "num_params": size,
        "cosine_similarity": None,
        "relative_change": None,
        "combined_similarity": None,
        "norm_a": None,
        "norm_b": None,
        "diff_stats": None,
        "nonfinite": None,
    }


def _shape_changed_layer(
    name: str, sa: tuple[int, ...], da: str, sb: tuple[int, ...], db: str
) -> dict[str, Any]:
    size_a = int(np.prod(sa, dtype=np.int64))
    size_b = int(np.prod(sb, dtype=np.int64))
    return {
        "name": name,
        "status": "common",
        "category": "shape_changed",
        "bit_identical": False,
        "shape_a": list(sa),
        "shape_b": list(sb),
        "dtype_a": da,
        "dtype_b": db,
        "dtype_changed": da != db,
        "num_params": max(size_a, size_b),
        "num_params_a": size_a,
        "num_params_b": size_b,
        "cosine_similarity": None,
        "relative_change": None,
        "combined_similarity": None,
        "norm_a": None,
        "norm_b": None,
        "diff_stats": None,
        "nonfinite": None,
    }


def _compare_layer(name: str, va: Any, vb: Any) -> dict[str, Any]:
    shape_a, dtype_a = _shape_dtype(va)
    shape_b, dtype_b = _shape_dtype(vb)
    if shape_a != shape_b:
        return _shape_changed_layer(name, shape_a, dtype_a, shape_b, dtype_b)
    size = int(np.prod(shape_a, dtype=np.int64))
    ha, hb = _known_hash(va), _known_hash(vb)
    if dtype_a == dtype_b and ha is not None and ha == hb:
        return _identical_layer(name, shape_a, dtype_a, size)  # same content hash, nothing to read
    a = _read(va)
    b = _read(vb)
    try:
        return _compare_arrays(name, a, b)
    except (TypeError, ValueError) as exc:  # a dtype numpy cannot turn into numbers
        out = _shape_changed_layer(name, shape_a, dtype_a, shape_b, dtype_b)
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    finally:
        del a, b


# -- compare_models ----------------------------------------------------------------------------


def compare_models(
    weights_a: Mapping[str, Any],
    weights_b: Mapping[str, Any],
    model_a_name: str = "Model A",
    model_b_name: str = "Model B",
) -> dict[str, Any]:
    """Compare two models layer by layer.

    `weights_a`/`weights_b` map names to `WeightTensor`, numpy arrays or torch tensors (lazy
    tensors are read one at a time and left lazy). Each common layer gets cosine similarity,
    relative change |b-a|/|a|, RMSE, max/mean absolute difference and a `combined_similarity`
    in [0, 1] (1.0 exactly for bit-identical tensors), and a category: identical (>99.99%),
    minor_changes (>99%), moderate_changes (>90%), major_changes, shape_changed; layers only in
    one model are `added` / `removed`. Returns a dict with `summary`, `category_counts`,
    `categories` (names per category), `most_changed_layers`, `layers`, `dtype_changed`,
    `nonfinite_layers`, `model_a_name` and `model_b_name`.
    """
    names_a, names_b = list(weights_a.keys()), list(weights_b.keys())
    set_a, set_b = set(names_a), set(names_b)
    all_names = sorted(set_a | set_b, key=_natural_key)

    layers: list[dict[str, Any]] = []
    for name in all_names:
        if name in set_a and name in set_b:
            layers.append(_compare_layer(name, weights_a[name], weights_b[name]))
        elif name in set_b:
            shape, dt = _shape_dtype(weights_b[name])
            layers.append(_one_sided_layer(name, "added", shape, dt))
        else:
            shape, dt = _shape_dtype(weights_a[name])
            layers.append(_one_sided_layer(name, "removed", shape, dt))

    categories: dict[str, list[str]] = {c: [] for c in CATEGORY_ORDER}
    for layer in layers:
        categories[layer["category"]].append(layer["name"])
    category_counts = {c: len(v) for c, v in categories.items()}

    comparable = [ly for ly in layers if ly["combined_similarity"] is not None]
    most_changed = sorted(
        (ly for ly in comparable if not ly["bit_identical"]),
        key=lambda ly: (ly["combined_similarity"], _natural_key(ly["name"])),
    )

    # Parameter-weighted similarity over the union of layers; layers present on one side only
    # or whose shape changed count as entirely changed.
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

    summary = {
        "overall_similarity": overall,
        "mean_layer_similarity": float(np.mean(sims)) if sims else None,
        "min_layer_similarity": float(min(sims)) if sims else None,
        "changed_params": int(changed_params),
        "total_params": int(total_params),
        "total_params_a": int(sum(_size(weights_a[n]) for n in names_a)),
        "total_params_b": int(sum(_size(weights_b[n]) for n in names_b)),
        "total_layers_a": len(names_a),
        "total_layers_b": len(names_b),
        "common_layers": len(set_a & set_b),
        "added_layers": category_counts["added"],
        "removed_layers": category_counts["removed"],
        "shape_changed_layers": category_counts["shape_changed"],
        "dtype_changed_layers": sum(1 for ly in layers if ly["dtype_changed"]),
        "identical_layers": category_counts["identical"],
        "changed_layers": sum(
            1 for ly in layers if ly["status"] == "common" and not ly["bit_identical"]
        ),
        "nonfinite_layers": len(nonfinite),
    }
    return {
        "model_a_name": model_a_name,
        "model_b_name": model_b_name,
        "summary": summary,
        "category_counts": category_counts,
        "categories": categories,
        "most_changed_layers": most_changed,
        "layers": layers,
        "dtype_changed": [ly["name"] for ly in layers if ly["dtype_changed"]],
        "nonfinite_layers": nonfinite,
    }


def _size(value: Any) -> int:
    shape, _ = _shape_dtype(value)
    return int(np.prod(shape, dtype=np.int64))


# -- text report -------------------------------------------------------------------------------

_CATEGORY_LABELS = {
    "identical": "Identical (>99.99%)",
    "minor_changes": "Minor changes (>99%)",
    "moderate_changes": "Moderate (>90%)",
    "major_changes": "Major (<90%)",
    "shape_changed": "Shape changed",
    "added": "Added",
    "removed": "Removed",
}


def _fmt_num(x: float | None, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, spec)


def _shape_str(shape: list[int] | None) -> str:
    return "-" if shape is None else str(tuple(shape))


def format_model_diff(diff: dict[str, Any], verbose: bool = False) -> str:
    """A human-readable report of a `compare_models` result (every layer when `verbose`)."""
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
                f"  {ly['name']}: {ly['combined_similarity']:.2%} similar "
                f"(cosine {ly['cosine_similarity']:.4f}, rel. change "
                f"{_fmt_num(ly['relative_change'])}, RMSE {d['rmse']:.6f})"
            )
        if not verbose and len(most) > 10:
            lines.append(f"  ... {len(most) - 10} more")

    sections = (("shape_changed", "Shape changed"), ("added", "Added"), ("removed", "Removed"))
    for cat, title in sections:
        names = diff["categories"].get(cat) or []
        if not names:
            continue
        lines += ["", f"{title} layers:"]
        by_name = {ly["name"]: ly for ly in diff["layers"]}
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
        lines += ["", "All layers:"]
        header = (
            f"  {'layer':<40} {'category':<17} {'similarity':>10} {'cosine':>9} "
            f"{'rel.chg':>9} {'rmse':>10} {'max|d|':>10} {'changed':>8}"
        )
        lines.append(header)
        for ly in diff["layers"]:
            d = ly["diff_stats"] or {}
            sim = ly["combined_similarity"]
            lines.append(
                f"  {_clip(ly['name'], 40):<40} {ly['category']:<17} "
                f"{(f'{sim:.4%}' if sim is not None else '-'):>10} "
                f"{_fmt_num(ly['cosine_similarity'], '.6f'):>9} "
                f"{_fmt_num(ly['relative_change']):>9} {_fmt_num(d.get('rmse')):>10} "
                f"{_fmt_num(d.get('max_abs_diff')):>10} "
                f"{(format(d['changed_fraction'], '.1%') if d else '-'):>8}"
            )
            nf = ly.get("nonfinite")
            if nf and (nf["a"] or nf["b"]):
                lines.append(
                    f"  {'':<40} non-finite values: {nf['a']} before, {nf['b']} after, "
                    f"{nf['mismatched']} mismatched"
                )
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 3
    head = keep // 2
    return text[:head] + "..." + text[len(text) - (keep - head) :]


# -- weight distributions ----------------------------------------------------------------------


def _named_items(weights: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(weights, Mapping):
        yield from weights.items()
        return
    if isinstance(weights, (WeightTensor, np.ndarray)):
        weights = [weights]
    for i, w in enumerate(weights):
        name = w.name if isinstance(w, WeightTensor) and w.name else f"weight_{i}"
        yield name, w


def plot_weight_distribution(weights: Any, bins: int = 50) -> dict[str, dict[str, Any]]:
    """Per-tensor value statistics and histogram.

    `weights` is a list of `WeightTensor` (named by their metadata), a mapping name -> tensor,
    or numpy arrays. Returns name -> {mean, std, min, max, sparsity (fraction of exact zeros),
    histogram (counts), bin_edges, num_params, shape, dtype, abs_mean, l2_norm, nonfinite}.
    Statistics are over finite values in float64; NaN/inf are counted in `nonfinite`.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    out: dict[str, dict[str, Any]] = {}
    for name, value in _named_items(weights):
        key = name
        i = 1
        while key in out:
            i += 1
            key = f"{name}#{i}"
        arr = _read(value)
        try:
            out[key] = _distribution(arr, bins)
        finally:
            del arr
    return out


def _distribution(arr: np.ndarray, bins: int) -> dict[str, Any]:
    flat = _real_view(arr)
    n = int(flat.size)
    count = zeros = nonfinite = 0
    total = abs_total = 0.0
    lo, hi = math.inf, -math.inf
    max_abs = 0.0
    for sl in _chunks(n):
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
    scale = _pow2_scale(max_abs)
    for sl in _chunks(n):
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
    for sl in _chunks(n):
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
        "dtype": _safe_dtype_name(arr.dtype),
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

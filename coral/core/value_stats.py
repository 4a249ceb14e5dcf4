"""Statistics of one tensor's values: what `coral show REF:TENSOR`, the terminal browser and
the dashboard print and draw."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from coral.core.lazy_imports import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())


def value_stats(data: np.ndarray) -> dict[str, Any]:
    """What `coral show REF:TENSOR` prints: element, zero and NaN/inf counts, L2 norm and, for
    real numbers, min / max / mean / std of the finite values (float64)."""
    if data.size == 0 or (
        data.dtype.kind not in "biufc" and not data.dtype.name.startswith(("bfloat", "float8"))
    ):
        return {"elements": int(data.size)}
    values = data.astype(np.complex128 if data.dtype.kind == "c" else np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {
        "elements": int(values.size),
        "zeros": int(np.count_nonzero(values == 0)),
        "nonfinite": int(values.size - finite.size),
        "l2_norm": float(np.linalg.norm(finite)) if finite.size else math.nan,
    }
    if data.dtype.kind != "c" and finite.size:
        stats.update(
            min=float(finite.min()),
            max=float(finite.max()),
            mean=float(finite.mean()),
            std=float(finite.std()),
        )
    return stats


def histogram(data: np.ndarray, bins: int = 40) -> tuple[list[int], list[float]]:
    """Counts and bin edges of the finite values (as float64; empty when there are none)."""
    flat = np.asarray(data).reshape(-1)
    if flat.dtype.kind not in "fiub":
        flat = flat.astype(np.float64)
    values = flat.astype(np.float64, copy=False)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [], []
    counts, edges = np.histogram(values, bins=bins)
    return [int(c) for c in counts], [float(x) for x in edges]

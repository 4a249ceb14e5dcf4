"""Per-tensor merge math: average, weighted average, uniform soup, TIES and DARE-TIES.

All math is done in float64 (complex128 for complex tensors) on the base and the sides'
values; callers cast the result back to the tensor's dtype. `ours`, `theirs` and `fail`
need no math and are handled by the merge driver; `greedy_soup` is a whole-model strategy
built on `mean` (see merge.py).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from coral.errors import CoralError

STRATEGIES = (
    "fail",
    "ours",
    "theirs",
    "average",
    "weighted",
    "uniform_soup",
    "greedy_soup",
    "ties",
    "dare_ties",
)
_ALIASES = {
    "fail_on_conflict": "fail",
    "fail-on-conflict": "fail",
    "weighted_average": "weighted",
    "soup": "uniform_soup",
    "mean": "average",
    "dare": "dare_ties",
}


class InvalidMergeStrategyError(CoralError):
    default_hint = f"strategies: {', '.join(STRATEGIES)}"


def normalize_strategy(name: str) -> str:
    """Canonical strategy name ('dare-ties' -> 'dare_ties', 'fail-on-conflict' -> 'fail')."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key).replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise InvalidMergeStrategyError(f"unknown merge strategy {name!r}")
    return key


def work_dtype(a: np.ndarray) -> np.dtype:
    return np.dtype(np.complex128) if np.iscomplexobj(a) else np.dtype(np.float64)


def mean(sides: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise mean of the sides (uniform soup / average)."""
    out = np.zeros(sides[0].shape, dtype=work_dtype(sides[0]))
    for s in sides:
        out += s
    out /= len(sides)
    return out


def weighted(sides: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ wᵢ·sideᵢ / Σ wᵢ (weights are normalised so (1, 1) is the plain average)."""
    if len(weights) != len(sides):
        raise InvalidMergeStrategyError(
            f"weighted merge needs {len(sides)} weights (ours first), got {len(weights)}",
            hint="pass weights=(w_ours, w_theirs)",
        )
    total = float(sum(weights))
    if total == 0 or not math.isfinite(total):
        raise InvalidMergeStrategyError(
            f"merge weights {tuple(weights)} must have a finite, non-zero sum"
        )
    out = np.zeros(sides[0].shape, dtype=work_dtype(sides[0]))
    for w, s in zip(weights, sides, strict=True):
        out += (float(w) / total) * s
    return out


def trim_top_k(tv: np.ndarray, density: float) -> np.ndarray:
    """Keep the `density` fraction of entries of largest magnitude, zero the rest."""
    if density >= 1.0 or tv.size == 0:
        return tv
    flat = tv.reshape(-1)
    k = max(1, math.ceil(density * flat.size)) if density > 0 else 0
    out = np.zeros_like(flat)
    if k:
        idx = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]
        out[idx] = flat[idx]
    return out.reshape(tv.shape)


def ties_merge(
    base: np.ndarray, task_vectors: Sequence[np.ndarray], density: float = 0.2, scale: float = 1.0
) -> np.ndarray:
    """TIES-merging: trim each task vector to its top-`density` magnitudes, elect a sign per
    entry by total mass, average only the entries that agree with it, add to `base`."""
    trimmed = [trim_top_k(tv, density) for tv in task_vectors]
    stacked = np.stack(trimmed)
    if np.iscomplexobj(stacked):  # no sign for complex values: plain mean of trimmed vectors
        return base + scale * stacked.mean(axis=0)
    elected = np.sign(stacked.sum(axis=0))
    agree = (np.sign(stacked) == elected) & (stacked != 0)
    count = agree.sum(axis=0)
    total = np.where(agree, stacked, 0.0).sum(axis=0)
    merged_tv = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return base + scale * merged_tv


def dare(tv: np.ndarray, drop_rate: float, rng: np.random.Generator) -> np.ndarray:
    """DARE: drop each entry with probability `drop_rate`, rescale survivors by 1/(1-p)."""
    if not 0.0 <= drop_rate < 1.0:
        raise InvalidMergeStrategyError(f"drop rate must be in [0, 1), got {drop_rate}")
    if drop_rate == 0.0:
        return tv
    keep = rng.random(tv.shape) >= drop_rate
    return np.where(keep, tv / (1.0 - drop_rate), 0.0).astype(tv.dtype, copy=False)


def tensor_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, tensor name, side) — not on merge order."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode()), index])


def _density(params: dict[str, Any], default: float) -> float:
    if params.get("density") is not None:
        d = float(params["density"])
    elif params.get("k") is not None:  # k given in percent (TIES paper's "top-k%")
        k = float(params["k"])
        d = k / 100.0 if k > 1 else k
    else:
        d = default
    if not 0.0 <= d <= 1.0:
        raise InvalidMergeStrategyError(f"density must be in [0, 1], got {d}")
    return d


def combine(
    strategy: str,
    name: str,
    base: np.ndarray | None,
    sides: Sequence[np.ndarray],
    params: dict[str, Any],
) -> np.ndarray:
    """Merge one tensor's conflicting values (`sides`, ours first) with a math strategy.

    Arrays are already float64/complex128. Without a merge base (tensor added on both sides)
    TIES and DARE-TIES fall back to the plain mean: task vectors need a base.
    """
    if strategy in ("average", "uniform_soup", "greedy_soup"):
        return mean(sides)
    if strategy == "weighted":
        w = params.get("weights")
        if w is None:
            raise InvalidMergeStrategyError("weighted merge needs weights=(w_ours, w_theirs)")
        return weighted(sides, [float(x) for x in w])
    if strategy in ("ties", "dare_ties"):
        if base is None or base.shape != sides[0].shape:
            return mean(sides)
        tvs = [s - base for s in sides]
        scale = float(params.get("scale", params.get("lambda_", 1.0)))
        if strategy == "dare_ties":
            p = float(params.get("drop_rate", params.get("p", 0.5)))
            seed = int(params.get("seed", 0))
            tvs = [dare(tv, p, tensor_rng(seed, name, i)) for i, tv in enumerate(tvs)]
            return ties_merge(base, tvs, _density(params, 1.0), scale)
        return ties_merge(base, tvs, _density(params, 0.2), scale)
    raise InvalidMergeStrategyError(f"strategy {strategy!r} does no tensor math")


Evaluate = Callable[[dict[str, Any]], float]

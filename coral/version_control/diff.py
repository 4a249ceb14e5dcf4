"""Comparing two snapshots tensor by tensor: `DiffResult` and `TensorChange`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coral.version_control.objects import Tree, TreeEntry

_BLOCK = 1 << 22  # elements per block when computing norms (bounds float64 temporaries)


@dataclass
class TensorChange:
    """How one tensor changed. Norms are None when shape or dtype changed (no element-wise diff).

    l2 = ‖b − a‖₂, relative = ‖b − a‖₂ / ‖a‖₂ (inf when a is all zeros and b is not),
    max_abs = max |b − a|.
    """

    name: str
    old_tensor: str
    new_tensor: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    old_dtype: str
    new_dtype: str
    l2: float | None = None
    relative: float | None = None
    max_abs: float | None = None
    changed_elements: int | None = None

    @property
    def shape_changed(self) -> bool:
        return self.old_shape != self.new_shape

    @property
    def dtype_changed(self) -> bool:
        return self.old_dtype != self.new_dtype

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old_tensor": self.old_tensor,
            "new_tensor": self.new_tensor,
            "old_shape": list(self.old_shape),
            "new_shape": list(self.new_shape),
            "old_dtype": self.old_dtype,
            "new_dtype": self.new_dtype,
            "shape_changed": self.shape_changed,
            "dtype_changed": self.dtype_changed,
            "l2": self.l2,
            "relative": self.relative,
            "max_abs": self.max_abs,
            "changed_elements": self.changed_elements,
        }


@dataclass
class DiffResult:
    """Per-tensor differences between two snapshots (`from_ref` -> `to_ref`)."""

    from_ref: str
    to_ref: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)
    changed: dict[str, TensorChange] = field(default_factory=dict)
    metadata_changed: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.metadata_changed)

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "identical": len(self.identical),
            "changed": len(self.changed),
            "metadata_changed": len(self.metadata_changed),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_ref,
            "to": self.to_ref,
            "added": list(self.added),
            "removed": list(self.removed),
            "identical": list(self.identical),
            "changed": {n: c.to_dict() for n, c in self.changed.items()},
            "metadata_changed": list(self.metadata_changed),
            "summary": self.summary(),
        }


def change_norms(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, int]:
    """(‖b−a‖₂, relative, max|b−a|, changed element count) in float64, block by block."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    sq_diff = 0.0
    sq_a = 0.0
    max_abs = 0.0
    changed = 0
    for start in range(0, fa.size, _BLOCK):
        xa = _as_float(fa[start : start + _BLOCK])
        xb = _as_float(fb[start : start + _BLOCK])
        d = np.abs(xb - xa)
        sq_diff += float(np.dot(d, d))
        ma = np.abs(xa)
        sq_a += float(np.dot(ma, ma))
        if d.size:
            m = float(np.max(d))
            max_abs = m if (math.isnan(m) or m > max_abs) and not math.isnan(max_abs) else max_abs
        changed += _bitwise_changed(fa[start : start + _BLOCK], fb[start : start + _BLOCK])
    l2 = math.sqrt(sq_diff)
    norm_a = math.sqrt(sq_a)
    rel = l2 / norm_a if norm_a > 0 else 0.0 if l2 == 0 else math.inf
    return l2, rel, max_abs, changed


def _as_float(x: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(x):
        return x.astype(np.complex128)
    return x.astype(np.float64)


def _bitwise_changed(a: np.ndarray, b: np.ndarray) -> int:
    """How many elements differ in their bits (so NaN -> NaN with equal payload is unchanged)."""
    width = a.dtype.itemsize
    ua = np.ascontiguousarray(a).view(np.uint8).reshape(-1, width)
    ub = np.ascontiguousarray(b).view(np.uint8).reshape(-1, width)
    return int(np.count_nonzero((ua != ub).any(axis=1)))


def diff_trees(
    old: Tree,
    new: Tree,
    load: Callable[[TreeEntry], np.ndarray],
    from_ref: str,
    to_ref: str,
    *,
    norms: bool = True,
) -> DiffResult:
    """Compare two trees; `load(entry)` reads a tensor's values (for the norms of changes)."""
    result = DiffResult(from_ref, to_ref)
    for name in sorted(set(old.entries) | set(new.entries)):
        a, b = old.entries.get(name), new.entries.get(name)
        if a is None:
            result.added.append(name)
        elif b is None:
            result.removed.append(name)
        elif a.tensor_id == b.tensor_id:
            result.identical.append(name)
            if not a.same_content(b):
                result.metadata_changed.append(name)
        else:
            change = TensorChange(
                name, a.tensor_id, b.tensor_id, a.shape, b.shape, a.dtype, b.dtype
            )
            if norms and a.shape == b.shape and a.dtype == b.dtype:
                change.l2, change.relative, change.max_abs, change.changed_elements = change_norms(
                    load(a), load(b)
                )
            result.changed[name] = change
    return result

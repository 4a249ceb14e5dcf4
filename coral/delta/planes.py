"""Byte-plane split: plane k holds byte k of every element (exponents end up together)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())


def split_planes(raw: np.ndarray, itemsize: int) -> list[np.ndarray]:
    """Split a flat uint8 buffer of `itemsize`-byte elements into `itemsize` contiguous planes."""
    if itemsize == 1:
        return [raw]
    rows = raw.reshape(-1, itemsize)
    return [np.ascontiguousarray(rows[:, k]) for k in range(itemsize)]


def join_planes(planes: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of `split_planes`, optionally writing into a preallocated flat uint8 `out`."""
    itemsize = len(planes)
    count = planes[0].shape[0]
    if out is None:
        out = np.empty(count * itemsize, dtype=np.uint8)
    if itemsize == 1:
        out[:] = planes[0]
        return out
    rows = out.reshape(count, itemsize)
    for k, plane in enumerate(planes):
        rows[:, k] = plane
    return out

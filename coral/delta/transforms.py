"""Lossless transforms of a chunk against reference chunks (all on raw bit patterns).

Each transform has an exact inverse, so delta encoding never changes a single bit:
- XOR:       d = x ^ r
- INT_DIFF:  d = x - r  (modular, on unsigned integers of the element width)
- PREDICT:   d = x ^ bits(p), p = r1 + (r1 - r2) evaluated in float32/float64
             (linear extrapolation from the two previous versions; deterministic IEEE arithmetic)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.dtypes import is_float, numpy_dtype
from coral.core.lazy_imports import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

_UINT = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}  # bit patterns, little-endian as stored


def xor(raw: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Byte-wise XOR of two equally long uint8 buffers (its own inverse)."""
    width = _widest_view(raw.size)
    return np.bitwise_xor(raw.view(width), ref.view(width)).view(np.uint8)


def int_diff(raw: np.ndarray, ref: np.ndarray, itemsize: int) -> np.ndarray:
    """Element-wise modular difference of bit patterns."""
    u = _UINT[itemsize]
    return np.subtract(raw.view(u), ref.view(u)).view(np.uint8)


def int_undiff(delta: np.ndarray, ref: np.ndarray, itemsize: int) -> np.ndarray:
    u = _UINT[itemsize]
    return np.add(delta.view(u), ref.view(u)).view(np.uint8)


def supports_int_diff(itemsize: int) -> bool:
    return itemsize in _UINT


def supports_predict(dtype: str) -> bool:
    return is_float(dtype) and not dtype.startswith("float8")


def prediction(ref1: np.ndarray, ref2: np.ndarray, dtype: str) -> np.ndarray:
    """Bits of r1 + (r1 - r2), the linear extrapolation of two previous versions."""
    np_dtype = numpy_dtype(dtype)
    work = np.float64 if np_dtype.itemsize == 8 else np.float32
    a: np.ndarray = ref1.view(np_dtype).astype(work)
    b: np.ndarray = ref2.view(np_dtype).astype(work)
    with np.errstate(all="ignore"):
        pred = (a + (a - b)).astype(np_dtype)
    return pred.view(np.uint8)


def _widest_view(size: int) -> str:
    for width in (8, 4, 2):
        if size % width == 0:
            return _UINT[width]
    return _UINT[1]

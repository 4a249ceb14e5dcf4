"""Reading the tensors users hand to the chapter 8.4 functions: `WeightTensor` (lazy or not),
numpy arrays, torch tensors. Shape and dtype come without reading; values are read one tensor
at a time and a lazy `WeightTensor` stays lazy."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from coral.core.dtypes import dtype_name
from coral.core.training_names import is_training_state
from coral.core.weight_tensor import WeightTensor
from coral.version_control.diff import TensorSide


def safe_dtype_name(dtype: np.dtype) -> str:
    try:
        return dtype_name(dtype)
    except Exception:
        return str(dtype)


def shape_dtype(value: Any) -> tuple[tuple[int, ...], str]:
    """Shape and canonical dtype name without loading a lazy tensor."""
    if isinstance(value, WeightTensor):
        return value.shape, value.metadata.dtype_name
    if isinstance(value, np.ndarray) or np.isscalar(value):
        arr = np.asarray(value)
        return tuple(arr.shape), safe_dtype_name(arr.dtype)
    if type(value).__module__.startswith("torch"):
        return tuple(int(d) for d in value.shape), str(value.dtype).removeprefix("torch.")
    arr = np.asarray(value)
    return tuple(arr.shape), safe_dtype_name(arr.dtype)


def known_hash(value: Any) -> str | None:
    """A tensor's content hash when it is already known (never computed here)."""
    if isinstance(value, WeightTensor):
        return value.metadata.hash
    return None


def read(value: Any) -> np.ndarray:
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


def size_of(value: Any) -> int:
    shape, _ = shape_dtype(value)
    return int(np.prod(shape, dtype=np.int64))


def tensor_side(value: Any) -> TensorSide:
    """What the diff engine needs to know about `value`."""
    shape, dtype = shape_dtype(value)
    return TensorSide(shape, dtype, lambda: read(value), known_hash(value))


def model_tensors(weights: Mapping[str, Any], include_training_state: bool) -> dict[str, Any]:
    """The mapping without training state (optimizer, scheduler, RNG) unless asked for."""
    if include_training_state:
        return dict(weights)
    return {n: v for n, v in weights.items() if not is_training_state(n)}


def named_items(weights: Any) -> Iterable[tuple[str, Any]]:
    """(name, tensor) pairs of a mapping, a list of tensors or one tensor."""
    if isinstance(weights, Mapping):
        yield from weights.items()
        return
    if isinstance(weights, (WeightTensor, np.ndarray)):
        weights = [weights]
    for i, w in enumerate(weights):
        name = w.name if isinstance(w, WeightTensor) and w.name else f"weight_{i}"
        yield name, w

"""`WeightTensor`: a named numpy array plus the metadata Coral versions with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coral.core.dtypes import canonical_array, dtype_name, numpy_dtype
from coral.core.hashing import hash_tensor_bytes
from coral.core.lazy_imports import lazy_module
from coral.core.tensor_checks import (
    InvalidMetadataError,
    InvalidShapeError,
    TensorTooLargeError,
    UnsupportedTensorError,
    check_fits_memory,
    checked_shape,
    element_count,
)
from coral.core.tensor_convert import torch_to_numpy

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())


@dataclass
class WeightMetadata:
    """What Coral knows about a tensor besides its values."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    layer_type: str | None = None
    model_name: str | None = None
    compression_info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    hash: str | None = None

    def __post_init__(self) -> None:
        self.shape = checked_shape(self.shape, f"tensor {self.name!r}")
        self.dtype = numpy_dtype(dtype_name(self.dtype))

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (used in trees)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype_name,
            "layer_type": self.layer_type,
            "model_name": self.model_name,
            "compression_info": self.compression_info,
            "extra": self.extra,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WeightMetadata:
        return cls(
            name=d["name"],
            shape=tuple(d["shape"]),
            dtype=numpy_dtype(d["dtype"]),
            layer_type=d.get("layer_type"),
            model_name=d.get("model_name"),
            compression_info=dict(d.get("compression_info") or {}),
            extra=dict(d.get("extra") or {}),
            hash=d.get("hash"),
        )


class WeightTensor:
    """A tensor's values (`data`, a numpy array) and its `metadata`.

    Data is kept little-endian and C-contiguous so that its hash is canonical. A tensor can
    also be lazy: built with `loader` instead of `data`, it reads its values on first touch.
    """

    def __init__(
        self,
        data: np.ndarray | None = None,
        metadata: WeightMetadata | None = None,
        *,
        name: str | None = None,
        layer_type: str | None = None,
        model_name: str | None = None,
        loader: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if data is None and loader is None:
            raise ValueError("WeightTensor needs data or a loader")
        if data is not None:
            data = canonical_array(np.asarray(data))
        if metadata is None:
            if data is None:
                raise ValueError("a lazy WeightTensor needs metadata")
            metadata = WeightMetadata(
                name=name or "",
                shape=data.shape,
                dtype=data.dtype,
                layer_type=layer_type,
                model_name=model_name,
            )
        elif data is not None and (
            tuple(data.shape) != metadata.shape or dtype_name(data.dtype) != metadata.dtype_name
        ):
            metadata = replace(metadata, shape=tuple(data.shape), dtype=data.dtype, hash=None)
        self._data = data
        self._loader = loader
        self.metadata = metadata

    # -- values -------------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            assert self._loader is not None
            data = canonical_array(np.asarray(self._loader()))
            if (
                tuple(data.shape) != self.shape
                or dtype_name(data.dtype) != self.metadata.dtype_name
            ):
                raise InvalidShapeError(
                    f"tensor {self.name!r}: its data is {dtype_name(data.dtype)}"
                    f"{list(data.shape)} but its metadata says "
                    f"{self.metadata.dtype_name}{list(self.shape)}",
                    hint="build a lazy WeightTensor with the metadata of what its loader returns",
                )
            self._data = data
            self._loader = None
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = canonical_array(np.asarray(value))
        self._loader = None
        self.metadata = replace(
            self.metadata, shape=tuple(self._data.shape), dtype=self._data.dtype, hash=None
        )

    @property
    def is_loaded(self) -> bool:
        """False while a lazy tensor has not read its values yet."""
        return self._data is not None

    # -- shape facts (never force a lazy load) --------------------------------------------------
    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.metadata.shape

    @property
    def dtype(self) -> np.dtype:
        return self.metadata.dtype

    @property
    def size(self) -> int:
        return element_count(self.metadata.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.metadata.dtype.itemsize

    # -- identity -----------------------------------------------------------------------------
    def compute_hash(self, force: bool = False) -> str:
        """BLAKE3-256 of (dtype, shape, raw little-endian C-order bytes); cached in metadata."""
        if self.metadata.hash is None or force:
            raw = self.data.reshape(-1).view(np.uint8).data
            self.metadata.hash = hash_tensor_bytes(self.metadata.dtype_name, self.shape, [raw])
        return self.metadata.hash

    def bit_equal(self, other: WeightTensor) -> bool:
        """True when dtype, shape and every byte are the same (NaN payloads and -0.0 included)."""
        return (
            self.shape == other.shape
            and self.metadata.dtype_name == other.metadata.dtype_name
            and self.data.tobytes() == other.data.tobytes()
        )

    def __repr__(self) -> str:
        state = "" if self.is_loaded else ", lazy"
        dtype = self.metadata.dtype_name
        return f"WeightTensor(name={self.name!r}, shape={self.shape}, dtype={dtype}{state})"


MAX_METADATA_BYTES = 64 << 10
"""Bound on one tensor's metadata (layer type, model name, extra) as JSON: it is in every tree."""


def check_metadata(meta: WeightMetadata, what: str = "tensor") -> None:
    """Refuse metadata a tree cannot hold: not JSON, not UTF-8 (a lone surrogate), too large."""
    fields = [meta.layer_type, meta.model_name, meta.compression_info, meta.extra]
    try:
        size = len(json.dumps(fields, ensure_ascii=False, default=str).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        reason = (
            "text that is not valid Unicode (a lone surrogate)"
            if isinstance(exc, UnicodeEncodeError)
            else f"values that are not JSON ({exc})"
        )
        raise InvalidMetadataError(f"{what}: its metadata holds {reason}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"{what}: its metadata is {size} bytes as JSON (at most {MAX_METADATA_BYTES})"
        )


def as_weight_tensor(value: Any, name: str, *, copy: bool = True) -> WeightTensor:
    """Turn a WeightTensor, numpy array or torch tensor into a named WeightTensor
    (`copy=False`: a CPU torch tensor's memory is shared, not copied).

    What cannot be a tensor is refused before anything is allocated: UnsupportedTensorError
    (not an array; sparse, quantized or meta torch tensors), InvalidShapeError,
    TensorTooLargeError (more than this machine's memory)."""
    what = f"weight {name!r}"
    if isinstance(value, WeightTensor):
        check_metadata(value.metadata, what)
        if not value.is_loaded:
            check_fits_memory(value.shape, value.dtype.itemsize, what)
        if value.name != name:
            meta = replace(value.metadata, name=name)
            return (
                WeightTensor(value.data, meta)
                if value.is_loaded
                else WeightTensor(metadata=meta, loader=lambda: value.data)
            )
        return value
    if isinstance(value, np.ndarray) or np.isscalar(value):
        arr = np.asarray(value)
        if not arr.flags.c_contiguous:  # a copy is made: a 0-stride view may claim terabytes
            check_fits_memory(arr.shape, arr.dtype.itemsize, what)
        try:
            return WeightTensor(arr, name=name)
        except MemoryError as exc:
            raise TensorTooLargeError(
                f"{what}: not enough memory for {arr.dtype}{list(arr.shape)}"
            ) from exc
    module = type(value).__module__
    if module.startswith("torch"):
        return WeightTensor(torch_to_numpy(value, copy=copy, what=what), name=name)
    raise UnsupportedTensorError(f"cannot store {type(value).__name__} as {what}")

"""`DeltaEncoder`: encode a tensor as a delta against a reference tensor, and back.

Lossless types reproduce every bit. Lossy types exist only by explicit choice, carry
`LOSSY` in their names, and mark every `Delta` they produce with `is_lossless = False`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from coral.core.dtypes import is_float, numpy_dtype
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.delta import transforms
from coral.delta.plane_codec import PlaneCodecConfig, decode_planes, encode_planes
from coral.delta.planes import join_planes, split_planes
from coral.errors import ShapeMismatchError


class DeltaType(Enum):
    """How a delta is computed; `.is_lossless` says whether decoding is bit-exact."""

    XOR = "xor"
    INT_DIFF = "int_diff"
    PREDICTIVE = "predictive"  # residual against r1 + (r1 - r2); needs two references
    INT8_QUANTIZED_LOSSY = "int8_quantized_lossy"
    INT16_QUANTIZED_LOSSY = "int16_quantized_lossy"

    @property
    def is_lossless(self) -> bool:
        return not self.value.endswith("_lossy")


@dataclass(frozen=True)
class DeltaConfig:
    """Which delta to compute and how hard to compress it."""

    delta_type: DeltaType = DeltaType.XOR
    compression_level: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.delta_type, DeltaType):
            raise TypeError("delta_type must be a DeltaType")


@dataclass
class Delta:
    """An encoded difference between a tensor and its reference(s)."""

    delta_type: DeltaType
    data: bytes
    shape: tuple[int, ...]
    dtype: str
    reference_hashes: tuple[str, ...]
    original_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_lossless(self) -> bool:
        return self.delta_type.is_lossless

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def compression_ratio(self) -> float:
        raw = int(np.prod(self.shape, dtype=np.int64)) * numpy_dtype(self.dtype).itemsize
        return raw / self.nbytes if self.nbytes else float("inf")


_SCALE = struct.Struct("<d")


class DeltaEncoder:
    """Computes and applies deltas between same-shape, same-dtype tensors."""

    def __init__(self, config: DeltaConfig | None = None) -> None:
        self.config = config or DeltaConfig()
        self._codec = PlaneCodecConfig(level=self.config.compression_level)

    def encode_delta(
        self,
        weight: WeightTensor,
        reference: WeightTensor,
        second_reference: WeightTensor | None = None,
    ) -> Delta:
        """Encode `weight` against `reference` (and `second_reference` for PREDICTIVE)."""
        _check_compatible(weight, reference)
        kind = self.config.delta_type
        dtype = weight.metadata.dtype_name
        itemsize = weight.dtype.itemsize
        raw = _raw(weight)
        ref = _raw(reference)
        refs: tuple[str, ...] = (reference.compute_hash(),)
        meta: dict[str, Any] = {}
        if kind is DeltaType.XOR:
            body = transforms.xor(raw, ref)
        elif kind is DeltaType.INT_DIFF:
            if not transforms.supports_int_diff(itemsize):
                raise ShapeMismatchError(f"INT_DIFF does not support {itemsize}-byte elements")
            body = transforms.int_diff(raw, ref, itemsize)
        elif kind is DeltaType.PREDICTIVE:
            if second_reference is None:
                raise ValueError("PREDICTIVE needs second_reference (the version before reference)")
            _check_compatible(weight, second_reference)
            if not transforms.supports_predict(dtype):
                raise ShapeMismatchError(f"PREDICTIVE needs a float dtype, not {dtype}")
            body = transforms.xor(raw, transforms.prediction(ref, _raw(second_reference), dtype))
            refs = (*refs, second_reference.compute_hash())
        else:
            return self._encode_quantized(weight, reference, kind)
        return Delta(
            kind,
            encode_planes(split_planes(body, itemsize), self._codec),
            weight.shape,
            dtype,
            refs,
            weight.compute_hash(),
            meta,
        )

    def decode_delta(
        self,
        delta: Delta,
        reference: WeightTensor,
        second_reference: WeightTensor | None = None,
        name: str | None = None,
    ) -> WeightTensor:
        """Rebuild the tensor; bit-exact for lossless types."""
        if reference.shape != delta.shape or reference.metadata.dtype_name != delta.dtype:
            raise ShapeMismatchError(
                f"reference is {reference.metadata.dtype_name}{list(reference.shape)}, "
                f"the delta needs {delta.dtype}{list(delta.shape)}"
            )
        np_dtype = numpy_dtype(delta.dtype)
        kind = delta.delta_type
        if not kind.is_lossless:
            values = self._decode_quantized(delta, reference)
        else:
            count = int(np.prod(delta.shape, dtype=np.int64))
            body = join_planes(decode_planes(memoryview(delta.data), count))
            ref = _raw(reference)
            if kind is DeltaType.XOR:
                out = transforms.xor(body, ref)
            elif kind is DeltaType.INT_DIFF:
                out = transforms.int_undiff(body, ref, np_dtype.itemsize)
            else:
                if second_reference is None:
                    raise ValueError("PREDICTIVE needs second_reference to decode")
                out = transforms.xor(
                    body, transforms.prediction(ref, _raw(second_reference), delta.dtype)
                )
            values = out.view(np_dtype).reshape(delta.shape)
        meta = WeightMetadata(
            name=name or reference.name,
            shape=delta.shape,
            dtype=np_dtype,
            compression_info={"delta_type": kind.value, "lossless": kind.is_lossless},
        )
        return WeightTensor(values, meta)

    # -- lossy --------------------------------------------------------------------------------
    def _encode_quantized(
        self, weight: WeightTensor, reference: WeightTensor, kind: DeltaType
    ) -> Delta:
        dtype = weight.metadata.dtype_name
        if not is_float(dtype):
            raise ShapeMismatchError(f"{kind.name} needs a float dtype, not {dtype}")
        diff = weight.data.astype(np.float64) - reference.data.astype(np.float64)
        finite = np.isfinite(diff)
        levels = 127 if kind is DeltaType.INT8_QUANTIZED_LOSSY else 32767
        peak = float(np.abs(diff[finite]).max()) if finite.any() else 0.0
        scale = peak / levels if peak > 0 else 1.0
        q = np.clip(np.rint(np.where(finite, diff, 0.0) / scale), -levels, levels)
        q = q.astype(np.int8 if levels == 127 else np.int16)
        body = encode_planes(
            split_planes(q.reshape(-1).view(np.uint8), q.dtype.itemsize), self._codec
        )
        return Delta(
            kind,
            _SCALE.pack(scale) + body,
            weight.shape,
            dtype,
            (reference.compute_hash(),),
            weight.compute_hash(),
            {"scale": scale, "max_abs_error": scale / 2},
        )

    def _decode_quantized(self, delta: Delta, reference: WeightTensor) -> np.ndarray:
        (scale,) = _SCALE.unpack_from(delta.data, 0)
        qtype = np.int8 if delta.delta_type is DeltaType.INT8_QUANTIZED_LOSSY else np.int16
        count = int(np.prod(delta.shape, dtype=np.int64))
        planes = decode_planes(memoryview(delta.data)[_SCALE.size :], count)
        q = join_planes(planes).view(qtype).reshape(delta.shape)
        recon = reference.data.astype(np.float64) + q.astype(np.float64) * scale
        return recon.astype(numpy_dtype(delta.dtype))


def _raw(weight: WeightTensor) -> np.ndarray:
    return weight.data.reshape(-1).view(np.uint8)


def _check_compatible(a: WeightTensor, b: WeightTensor) -> None:
    if a.shape != b.shape or a.metadata.dtype_name != b.metadata.dtype_name:
        raise ShapeMismatchError(
            f"cannot delta {a.name or 'tensor'} {a.metadata.dtype_name}{list(a.shape)} against "
            f"{b.name or 'reference'} {b.metadata.dtype_name}{list(b.shape)}"
        )

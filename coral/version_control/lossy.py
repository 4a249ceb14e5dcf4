"""Opt-in lossy storage: replace a tensor by its reconstruction from a quantized delta.

Only by explicit request (`add_all_weights(..., lossy_delta="int8_quantized_lossy")`). The
reconstruction is then stored losslessly like any tensor, its tree entry's `extra["lossy"]`
says how it was made, and the commit that records it lists it under `metadata["lossy"]`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from coral.core.dtypes import is_float
from coral.core.weight_tensor import WeightTensor
from coral.delta.delta_encoder import DeltaConfig, DeltaEncoder, DeltaType
from coral.errors import CoralError


class LossyOptionError(CoralError):
    default_hint = "lossy_delta takes int8_quantized_lossy or int16_quantized_lossy"


def lossy_delta_type(value: str | DeltaType) -> DeltaType:
    """The lossy DeltaType a user asked for (refuses lossless or unknown names)."""
    try:
        kind = value if isinstance(value, DeltaType) else DeltaType(str(value).lower())
    except ValueError:
        raise LossyOptionError(f"unknown lossy delta type {value!r}") from None
    if kind.is_lossless:
        raise LossyOptionError(f"{kind.value} is lossless; lossy_delta needs a *_lossy type")
    return kind


def quantize_against(
    weight: WeightTensor, reference: WeightTensor, kind: DeltaType
) -> WeightTensor:
    """`weight` as rebuilt from a `kind` delta against `reference`, marked lossy in `extra`.

    Returns `weight` unchanged when it cannot be quantized (not float, shape or dtype differ)
    or when the reconstruction is bit-identical anyway.
    """
    if (
        not is_float(weight.metadata.dtype_name)
        or weight.shape != reference.shape
        or weight.metadata.dtype_name != reference.metadata.dtype_name
    ):
        return weight
    encoder = DeltaEncoder(DeltaConfig(delta_type=kind))
    delta = encoder.encode_delta(weight, reference)
    rebuilt = encoder.decode_delta(delta, reference, name=weight.name)
    if rebuilt.compute_hash() == weight.compute_hash():
        return weight
    info: dict[str, Any] = {
        "delta_type": kind.value,
        "reference": reference.compute_hash(),
        "max_abs_error": float(delta.metadata.get("max_abs_error", 0.0)),
    }
    meta = replace(weight.metadata, extra={**dict(weight.metadata.extra), "lossy": info}, hash=None)
    return WeightTensor(rebuilt.data, meta)

"""DeltaEncoder: lossless types are bit-exact for every dtype; lossy ones say so, stay bounded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coral.core.dtypes import supported_dtype_names
from coral.core.weight_tensor import WeightTensor
from coral.delta import DeltaConfig, DeltaEncoder, DeltaType
from coral.errors import ShapeMismatchError

from ..storage.strategies import tensors


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(supported_dtype_names()))
def test_lossless_types_round_trip_bit_exact(data: st.DataObject, dtype: str) -> None:
    shape = data.draw(st.tuples(st.integers(0, 50), st.integers(1, 7)))
    a, b, c = (data.draw(tensors(dtype, shape)) for _ in range(3))
    target, ref, ref2 = WeightTensor(a), WeightTensor(b), WeightTensor(c)
    for kind in (DeltaType.XOR, DeltaType.INT_DIFF, DeltaType.PREDICTIVE):
        enc = DeltaEncoder(DeltaConfig(delta_type=kind))
        try:
            delta = enc.encode_delta(target, ref, second_reference=ref2)
        except ShapeMismatchError:
            assert kind is not DeltaType.XOR  # XOR works for every dtype
            continue
        assert delta.is_lossless
        back = enc.decode_delta(delta, ref, second_reference=ref2)
        assert back.data.tobytes() == a.tobytes() and back.shape == a.shape


def test_small_updates_compress_well() -> None:
    rng = np.random.default_rng(0)
    base = (rng.standard_normal(100_000) * 0.02).astype(np.float32)
    new = base.copy()
    new[::100] += 1e-3
    delta = DeltaEncoder().encode_delta(WeightTensor(new), WeightTensor(base))
    assert delta.compression_ratio > 20


def test_lossy_types_are_named_and_bounded() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal(10_000).astype(np.float32)
    new = base + rng.standard_normal(10_000).astype(np.float32) * 0.01
    for kind in (DeltaType.INT8_QUANTIZED_LOSSY, DeltaType.INT16_QUANTIZED_LOSSY):
        assert not kind.is_lossless and "LOSSY" in kind.name
        enc = DeltaEncoder(DeltaConfig(delta_type=kind))
        delta = enc.encode_delta(WeightTensor(new), WeightTensor(base))
        assert not delta.is_lossless
        back = enc.decode_delta(delta, WeightTensor(base))
        err = np.abs(back.data.astype(np.float64) - new.astype(np.float64)).max()
        assert err <= delta.metadata["max_abs_error"] * 1.01 + 1e-6
        assert back.metadata.compression_info["lossless"] is False


def test_mismatched_reference_is_a_clear_error() -> None:
    with pytest.raises(ShapeMismatchError, match="cannot delta"):
        DeltaEncoder().encode_delta(
            WeightTensor(np.zeros(3, np.float32)), WeightTensor(np.zeros(4, np.float32))
        )

"""Plane coding: every mode round-trips; mostly-zero planes use SPARSE and beat plain zstd."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coral.delta.plane_codec import (
    LITERAL,
    PlaneCodecConfig,
    PlaneMode,
    _compressor,
    decode_planes,
    encode_plane,
    encode_planes,
)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 5000), density=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_planes_round_trip_at_any_density(size: int, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    plane = np.where(rng.random(size) < density, rng.integers(0, 256, size), 0).astype(np.uint8)
    for config in (PlaneCodecConfig(), PlaneCodecConfig(level=19, exhaustive=True)):
        buf = encode_planes([plane, plane[::-1].copy()], config)
        back = decode_planes(memoryview(buf), size)
        assert back[0].tobytes() == plane.tobytes()
        assert back[1].tobytes() == plane[::-1].tobytes()


def test_sparse_mode_wins_on_mostly_zero_planes() -> None:
    rng = np.random.default_rng(0)
    size = 1 << 20
    plane = np.where(rng.random(size) < 0.1, rng.integers(1, 256, size), 0).astype(np.uint8)
    mode, payload = encode_plane(plane, PlaneCodecConfig())
    assert mode is PlaneMode.SPARSE
    assert len(payload) < 0.85 * len(_compressor(LITERAL).compress(plane.data))

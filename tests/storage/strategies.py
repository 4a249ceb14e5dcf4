"""Hypothesis strategies: tensors of every supported dtype with arbitrary bit patterns."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from coral.core.dtypes import numpy_dtype, supported_dtype_names

shapes = st.one_of(
    st.just(()),  # 0-d
    st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple),  # includes empty
    st.tuples(st.integers(1, 300), st.integers(1, 40)),
)


@st.composite
def tensors(
    draw: st.DrawFn, dtype: str | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """An array whose bytes are arbitrary (NaN payloads, -0.0, inf, subnormals all occur)."""
    name = dtype or draw(st.sampled_from(supported_dtype_names()))
    dt = numpy_dtype(name)
    shp = shape if shape is not None else draw(shapes)
    count = int(np.prod(shp, dtype=np.int64))
    raw = draw(st.binary(min_size=count * dt.itemsize, max_size=count * dt.itemsize))
    return np.frombuffer(raw, dtype=np.uint8).view(dt).reshape(shp).copy()

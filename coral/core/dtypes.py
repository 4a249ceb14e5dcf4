"""The dtypes Coral stores, their canonical names and their safetensors codes."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_module
from coral.errors import UnsupportedDtypeError

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

# canonical name -> bytes per element (the order is append-only: chunk records store indexes)
ITEMSIZES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint64": 8,
    "uint32": 4,
    "uint16": 2,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
}


@functools.cache
def _numpy_dtypes() -> dict[str, np.dtype]:
    """canonical name -> numpy dtype (little-endian); built on first use (imports numpy)."""
    import ml_dtypes

    return {
        "float64": np.dtype("<f8"),
        "float32": np.dtype("<f4"),
        "float16": np.dtype("<f2"),
        "bfloat16": np.dtype(ml_dtypes.bfloat16),
        "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
        "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
        "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
        "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
        "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
        "int64": np.dtype("<i8"),
        "int32": np.dtype("<i4"),
        "int16": np.dtype("<i2"),
        "int8": np.dtype("i1"),
        "uint64": np.dtype("<u8"),
        "uint32": np.dtype("<u4"),
        "uint16": np.dtype("<u2"),
        "uint8": np.dtype("u1"),
        "bool": np.dtype("?"),
        "complex64": np.dtype("<c8"),
        "complex128": np.dtype("<c16"),
    }


# canonical name -> safetensors dtype code.
SAFETENSORS_CODES: dict[str, str] = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e8m0fnu": "F8_E8M0",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
    "complex64": "C64",
}
FROM_SAFETENSORS: dict[str, str] = {code: name for name, code in SAFETENSORS_CODES.items()}

FLOAT_DTYPES = frozenset(
    {
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    }
)


def supported_dtype_names() -> list[str]:
    """Every canonical dtype name Coral stores bit-exact."""
    return list(ITEMSIZES)


def dtype_name(dtype: np.dtype | type | str) -> str:
    """Canonical name of a numpy/ml_dtypes dtype (byte order ignored)."""
    if isinstance(dtype, str) and dtype in ITEMSIZES:
        return dtype
    _numpy_dtypes()  # ml_dtypes registered: np.dtype("bfloat16") resolves
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"unknown dtype {dtype!r}") from exc
    name = dt.newbyteorder("=").name if dt.byteorder not in ("=", "|") else dt.name
    if name in ITEMSIZES:
        return name
    raise UnsupportedDtypeError(
        f"dtype {dt} is not supported",
        hint=f"supported dtypes: {', '.join(ITEMSIZES)}",
    )


def numpy_dtype(name: str) -> np.dtype:
    """The little-endian numpy dtype for a canonical dtype name."""
    try:
        return _numpy_dtypes()[name]
    except KeyError as exc:
        raise UnsupportedDtypeError(
            f"unknown dtype name {name!r}", hint=f"supported dtypes: {', '.join(ITEMSIZES)}"
        ) from exc


def is_float(name: str) -> bool:
    """Whether the canonical dtype name is a floating-point type."""
    return name in FLOAT_DTYPES


def canonical_array(data: np.ndarray) -> np.ndarray:
    """The same values as a little-endian, C-contiguous array (no copy when already so)."""
    name = dtype_name(data.dtype)
    target = _numpy_dtypes()[name]
    if data.dtype.byteorder == ">" or (data.dtype.byteorder == "=" and not _little_endian()):
        data = data.astype(target)
    elif data.dtype != target:
        data = data.view(target) if data.dtype.itemsize == target.itemsize else data.astype(target)
    # np.ascontiguousarray would turn a 0-d array into shape (1,): keep the shape.
    return data if data.flags.c_contiguous else np.ascontiguousarray(data).reshape(data.shape)


def _little_endian() -> bool:
    import sys

    return sys.byteorder == "little"

"""Checks on what a tensor claims to be (name, kind, shape, size), made before anything is
allocated or stored.

A shape read from a file or given through the API is only a claim: `[2**32, 2**32]` overflows
numpy's int64 product to 0, `[10**30]` does not fit a C long, and a 0-stride view of 10**12
elements looks harmless until it is copied. `checked_shape` refuses what cannot be a shape;
`check_fits_memory` refuses a tensor larger than this machine's memory before it is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from functools import lru_cache

from coral.core.units import human_bytes
from coral.errors import CoralError, InvalidNameError

MAX_NDIM = 64  # numpy's own limit
MAX_NAME_BYTES = 4096  # a tensor name or file path (PATH_MAX); each is stored in every tree
MAX_ELEMENTS = 2**59  # bytes of the widest dtype (16 per element) still fit numpy's int64


class InvalidShapeError(CoralError, ValueError):
    """A shape that no tensor can have (negative, non-integer, overflowing)."""

    default_hint = "a shape is a list of at most 64 non-negative integers, e.g. [768, 3072]"


class InvalidMetadataError(CoralError, ValueError):
    """Tensor metadata that cannot be stored (not JSON, not UTF-8, too large)."""

    default_hint = (
        "keep a tensor's metadata small and plain (strings, numbers, lists, dicts); "
        "store large data as tensors or model files"
    )


class UnsupportedTensorError(CoralError, TypeError):
    """A value Coral cannot store as a tensor (not an array; sparse, quantized, meta)."""

    default_hint = "pass a numpy array, a dense torch tensor or a WeightTensor"


class TensorTooLargeError(CoralError):
    """A tensor that would not fit in this machine's memory."""

    default_hint = (
        "check the shape; a tensor is held in memory while it is stored, so split a larger "
        "one or use a machine with more memory"
    )


def check_utf8_name(name: str, what: str) -> None:
    """Refuse a name that is not UTF-8 encodable (a lone surrogate) or longer than the bound."""
    shown = repr(name[:60]) + ("..." if len(name) > 60 else "")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidNameError(
            f"{what} {shown} is not valid Unicode (a lone surrogate at position {exc.start})",
            hint="names are stored as UTF-8; decode file names with errors='strict'",
        ) from None
    if size > MAX_NAME_BYTES:
        raise InvalidNameError(f"{what} {shown} is {size} bytes long (at most {MAX_NAME_BYTES})")


def checked_shape(shape: Iterable[object], what: str = "tensor") -> tuple[int, ...]:
    """`shape` as a tuple of ints, or InvalidShapeError naming `what`."""
    try:
        dims = list(shape)
    except TypeError:
        raise InvalidShapeError(f"{what}: shape {shape!r} is not a sequence of integers") from None
    if len(dims) > MAX_NDIM:
        raise InvalidShapeError(f"{what}: {len(dims)} dimensions (at most {MAX_NDIM})")
    out: list[int] = []
    for d in dims:
        if isinstance(d, bool) or not hasattr(d, "__index__"):
            raise InvalidShapeError(f"{what}: shape {_show(dims)} has a non-integer dimension")
        n = int(d.__index__())
        if n < 0:
            raise InvalidShapeError(f"{what}: shape {_show(dims)} has a negative dimension")
        out.append(n)
    span = math.prod(d for d in out if d)  # numpy refuses this too large even beside a 0
    if span > MAX_ELEMENTS:
        count = "elements" if 0 not in out else "elements in its non-zero dimensions"
        raise InvalidShapeError(
            f"{what}: shape {_show(dims)} has {_dim(span)} {count} (at most 2**59)"
        )
    return tuple(out)


def element_count(shape: Iterable[int]) -> int:
    """Number of elements of a shape, exact (Python ints: no int64 overflow)."""
    return math.prod(int(d) for d in shape)


def check_fits_memory(shape: Iterable[object], itemsize: int, what: str = "tensor") -> int:
    """The tensor's size in bytes; TensorTooLargeError when it exceeds this machine's memory
    (InvalidShapeError when `shape` is no shape)."""
    dims = checked_shape(shape, what)
    nbytes = element_count(dims) * int(itemsize)
    limit = memory_limit()
    if nbytes > limit:
        raise TensorTooLargeError(
            f"{what}: shape {_show(dims)} needs {human_bytes(nbytes)}, more than this "
            f"machine's memory ({human_bytes(limit)})"
        )
    return nbytes


@lru_cache(maxsize=1)
def memory_limit() -> int:
    """Bytes of memory this process could have: physical memory, or a lower cgroup limit."""
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        limit = 1 << 46  # 64 TiB when the system does not say
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < limit:
            limit = int(text)
    return limit


def _dim(d: object) -> str:
    """A dimension for a message: huge integers as a power of two (str() of one is slow)."""
    if isinstance(d, int) and not isinstance(d, bool) and abs(d) >= 1 << 128:
        return f"~2**{abs(d).bit_length() - 1}" if d > 0 else f"-~2**{abs(d).bit_length() - 1}"
    text = repr(d)
    return text if len(text) <= 40 else text[:37] + "..."


def _show(shape: Iterable[object]) -> str:
    dims = list(shape)
    return "[" + ", ".join(_dim(d) for d in dims[:8]) + (", ..." if len(dims) > 8 else "") + "]"

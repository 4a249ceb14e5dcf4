"""Choosing a chunk's encoding: FULL, or a delta against a reference chunk when that is smaller.

Pure functions of raw bytes and settings; the store feeds them verified reference bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coral.core.dtypes import is_float
from coral.core.lazy_imports import lazy_module
from coral.delta import transforms
from coral.storage.chunk_format import ChunkEncoding, encode_chunk
from coral.storage.config import StoreConfig

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

_DELTA_GOOD_ENOUGH = 0.5  # a delta this small (vs raw) is not worth comparing with FULL


@dataclass(frozen=True)
class Reference:
    """A verified reference chunk: its id, raw bytes and chain depth."""

    chunk_id: str
    raw: np.ndarray
    depth: int


@dataclass(frozen=True)
class EncodedChunk:
    """A chunk record ready for a pack."""

    chunk_id: str
    data: bytes
    encoding: ChunkEncoding
    refs: tuple[str, ...]
    depth: int


def encode_full(chunk_id: str, raw: np.ndarray, itemsize: int, dtype: str, config: StoreConfig):
    data = encode_chunk(raw, itemsize, ChunkEncoding.FULL, config.codec, dtype=dtype)
    return EncodedChunk(chunk_id, data, ChunkEncoding.FULL, (), 0)


def encode_delta(
    chunk_id: str,
    raw: np.ndarray,
    itemsize: int,
    dtype: str,
    ref: Reference,
    encoding: ChunkEncoding,
    config: StoreConfig,
) -> EncodedChunk:
    data = encode_chunk(
        raw,
        itemsize,
        encoding,
        config.codec,
        dtype=dtype,
        refs=(ref.chunk_id,),
        ref_data=(ref.raw,),
    )
    return EncodedChunk(chunk_id, data, encoding, (ref.chunk_id,), ref.depth + 1)


def encode_best(
    chunk_id: str,
    raw: np.ndarray,
    itemsize: int,
    dtype: str,
    ref: Reference | None,
    config: StoreConfig,
    grand: Reference | None = None,
) -> EncodedChunk:
    """The smallest of the encodings the mode tries (FULL only when no reference fits)."""
    if ref is None:
        return encode_full(chunk_id, raw, itemsize, dtype, config)
    best = encode_delta(chunk_id, raw, itemsize, dtype, ref, ChunkEncoding.XOR, config)
    candidates = [best]
    mode = config.mode
    if mode == "max":
        candidates.append(
            encode_delta(chunk_id, raw, itemsize, dtype, ref, ChunkEncoding.XOR_CONTEXT, config)
        )
        if transforms.supports_int_diff(itemsize):
            candidates.append(
                encode_delta(chunk_id, raw, itemsize, dtype, ref, ChunkEncoding.INT_DIFF, config)
            )
        if grand is not None and transforms.supports_predict(dtype):
            data = encode_chunk(
                raw,
                itemsize,
                ChunkEncoding.PREDICT,
                config.codec,
                dtype=dtype,
                refs=(ref.chunk_id, grand.chunk_id),
                ref_data=(ref.raw, grand.raw),
            )
            candidates.append(
                EncodedChunk(
                    chunk_id,
                    data,
                    ChunkEncoding.PREDICT,
                    (ref.chunk_id, grand.chunk_id),
                    max(ref.depth, grand.depth) + 1,
                )
            )
    poor = len(best.data) > _DELTA_GOOD_ENOUGH * raw.nbytes or not is_float(dtype)
    if mode == "max" or (mode == "default" and poor):
        candidates.append(encode_full(chunk_id, raw, itemsize, dtype, config))
    return min(candidates, key=lambda c: len(c.data))


def encode_reverse(
    chunk_id: str,
    raw: np.ndarray,
    itemsize: int,
    dtype: str,
    newer: Reference,
    config: StoreConfig,
) -> EncodedChunk:
    """An older chunk as a delta against its newer version (XOR; max mode also tries context
    groups)."""
    best = encode_delta(chunk_id, raw, itemsize, dtype, newer, ChunkEncoding.XOR, config)
    if config.mode == "max":
        ctx = encode_delta(chunk_id, raw, itemsize, dtype, newer, ChunkEncoding.XOR_CONTEXT, config)
        best = min(best, ctx, key=lambda c: len(c.data))
    return best

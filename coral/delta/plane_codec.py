"""Entropy coding of byte planes with zstd; zero, constant and incompressible planes are special.

Layout of an encoded plane set: u8 plane count, then per plane a mode byte and a u64 length,
then the plane payloads in order. Modes: RAW (bytes as is), ZSTD (one zstd frame), ZERO (no
payload), CONST (one byte repeated), SPARSE (u64 length of the first frame, a zstd frame of the
bitmap of nonzero bytes (np.packbits order), a zstd frame of the nonzero bytes in order). SPARSE
is how the mostly-zero planes of XOR deltas get below the one bit per byte that zstd's literal
coder cannot go under.
"""

from __future__ import annotations

import struct
import threading
from enum import IntEnum
from typing import TYPE_CHECKING

import zstandard

from coral.core.lazy_imports import lazy_module
from coral.delta.plane_config import LITERAL, PlaneCodecConfig

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

_PLANE_ENTRY = struct.Struct("<BQ")
_SAMPLE = 1 << 16  # bytes compressed to judge whether a plane is worth compressing
_INCOMPRESSIBLE = 0.97


class PlaneMode(IntEnum):
    RAW = 0
    ZSTD = 1
    ZERO = 2
    CONST = 3
    SPARSE = 4


_SPARSE_MIN_ZEROS = 0.6  # try SPARSE on planes with at least this share of zero bytes
_LEN = struct.Struct("<Q")


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        if level == LITERAL:
            params = zstandard.ZstdCompressionParameters(
                window_log=17,
                hash_log=6,
                chain_log=6,
                search_log=1,
                min_match=7,
                target_length=0,
                strategy=zstandard.STRATEGY_FAST,
                write_content_size=True,
            )
        else:
            params = zstandard.ZstdCompressionParameters.from_level(
                level, write_content_size=True, enable_ldm=level >= 19
            )
        comp = cache[level] = zstandard.ZstdCompressor(compression_params=params)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


def encode_plane(plane: np.ndarray, config: PlaneCodecConfig) -> tuple[PlaneMode, bytes]:
    """Best of ZERO/CONST/ZSTD/RAW for one plane."""
    if plane.size == 0:
        return PlaneMode.RAW, b""
    first = plane[0]
    if not plane.any():
        return PlaneMode.ZERO, b""
    if plane.size > 1 and (plane == first).all():
        return PlaneMode.CONST, bytes([int(first)])
    comp = _compressor(config.level)
    if not config.exhaustive and plane.size > 4 * _SAMPLE:
        sample = comp.compress(plane[:_SAMPLE].data)
        if len(sample) >= _INCOMPRESSIBLE * _SAMPLE:
            return PlaneMode.RAW, plane.tobytes()
    packed = comp.compress(plane.data)
    if config.exhaustive and config.level != LITERAL:
        literal = _compressor(LITERAL).compress(plane.data)
        packed = min(packed, literal, key=len)
    best = (PlaneMode.ZSTD, packed)
    nonzero = np.count_nonzero(plane)
    if nonzero <= (1 - _SPARSE_MIN_ZEROS) * plane.size:
        sparse = _encode_sparse(plane, comp)
        if len(sparse) < len(packed):
            best = (PlaneMode.SPARSE, sparse)
    if len(best[1]) >= _INCOMPRESSIBLE * plane.size:
        return PlaneMode.RAW, plane.tobytes()
    return best


def _encode_sparse(plane: np.ndarray, comp: zstandard.ZstdCompressor) -> bytes:
    mask = plane != 0
    bitmap = comp.compress(np.packbits(mask).data)
    values = comp.compress(np.ascontiguousarray(plane[mask]).data)
    return _LEN.pack(len(bitmap)) + bitmap + values


def _decode_sparse(payload: memoryview, size: int) -> np.ndarray:
    if len(payload) < _LEN.size:
        raise ValueError("truncated sparse plane")
    (mask_len,) = _LEN.unpack_from(payload, 0)
    dec = _decompressor()
    try:
        bitmap = dec.decompress(
            payload[_LEN.size : _LEN.size + mask_len], max_output_size=(size + 7) // 8
        )
        mask = np.unpackbits(np.frombuffer(bitmap, np.uint8), count=size).view(bool)
        count = int(np.count_nonzero(mask))
        values = (
            dec.decompress(payload[_LEN.size + mask_len :], max_output_size=count) if count else b""
        )
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd: {exc}") from exc
    if len(bitmap) != (size + 7) // 8 or len(values) != count:
        raise ValueError("sparse plane does not match its size")
    out = np.zeros(size, dtype=np.uint8)
    if count:
        # scatter through indices: 3-5x faster than np.place or out[mask] = ... (measured)
        out[np.flatnonzero(mask)] = np.frombuffer(values, np.uint8)
    return out


def encode_planes(planes: list[np.ndarray], config: PlaneCodecConfig) -> bytes:
    """Encode planes into one buffer (see module docstring for the layout)."""
    encoded = [encode_plane(p, config) for p in planes]
    head = bytearray([len(planes)])
    for mode, payload in encoded:
        head += _PLANE_ENTRY.pack(int(mode), len(payload))
    return b"".join([bytes(head), *(payload for _, payload in encoded)])


_SEGMENT_TABLE = struct.Struct("<H")


def encode_segments(segments: list[np.ndarray], config: PlaneCodecConfig) -> bytes:
    """Encode byte segments of any sizes, each in its own best mode (u16 count, then as planes)."""
    encoded = [encode_plane(s, config) for s in segments]
    head = bytearray(_SEGMENT_TABLE.pack(len(segments)))
    for mode, payload in encoded:
        head += _PLANE_ENTRY.pack(int(mode), len(payload))
    return b"".join([bytes(head), *(payload for _, payload in encoded)])


def decode_segments(buf: memoryview, sizes: list[int]) -> np.ndarray:
    """Inverse of `encode_segments`, given every segment's size; returns them concatenated."""
    if len(buf) < _SEGMENT_TABLE.size or _SEGMENT_TABLE.unpack_from(buf, 0)[0] != len(sizes):
        raise ValueError("segment table does not match the context groups")
    pos = _SEGMENT_TABLE.size + _PLANE_ENTRY.size * len(sizes)
    if pos > len(buf):
        raise ValueError("truncated segment table")
    out = np.empty(sum(sizes), dtype=np.uint8)
    start = 0
    for i, size in enumerate(sizes):
        mode, length = _PLANE_ENTRY.unpack_from(buf, _SEGMENT_TABLE.size + _PLANE_ENTRY.size * i)
        payload = buf[pos : pos + length]
        if len(payload) != length:
            raise ValueError("truncated segment payload")
        pos += length
        out[start : start + size] = _decode_plane(PlaneMode(mode), payload, size)
        start += size
    if pos != len(buf):
        raise ValueError("trailing bytes after segments")
    return out


def decode_planes(buf: memoryview, plane_size: int) -> list[np.ndarray]:
    """Decode planes of `plane_size` bytes each; raises ValueError on malformed input."""
    return [
        np.zeros(plane_size, dtype=np.uint8) if p is None else p
        for p in decode_planes_sparse(buf, plane_size)
    ]


def decode_planes_sparse(buf: memoryview, plane_size: int) -> list[np.ndarray | None]:
    """Like `decode_planes`, but all-zero planes come back as None (nothing to allocate or XOR)."""
    if len(buf) < 1:
        raise ValueError("empty plane table")
    count = buf[0]
    pos = 1
    entries = []
    for _ in range(count):
        if pos + _PLANE_ENTRY.size > len(buf):
            raise ValueError("truncated plane table")
        mode, length = _PLANE_ENTRY.unpack_from(buf, pos)
        entries.append((PlaneMode(mode), length))
        pos += _PLANE_ENTRY.size
    planes: list[np.ndarray | None] = []
    for mode, length in entries:
        payload = buf[pos : pos + length]
        if len(payload) != length:
            raise ValueError("truncated plane payload")
        pos += length
        planes.append(None if mode is PlaneMode.ZERO else _decode_plane(mode, payload, plane_size))
    if pos != len(buf):
        raise ValueError("trailing bytes after planes")
    return planes


def _decode_plane(mode: PlaneMode, payload: memoryview, size: int) -> np.ndarray:
    if mode is PlaneMode.ZERO:
        if len(payload):
            raise ValueError("zero plane with a payload")
        return np.zeros(size, dtype=np.uint8)
    if mode is PlaneMode.SPARSE:
        return _decode_sparse(payload, size)
    if mode is PlaneMode.CONST:
        if len(payload) != 1:
            raise ValueError("bad constant plane")
        return np.full(size, payload[0], dtype=np.uint8)
    data: bytes | memoryview
    if mode is PlaneMode.RAW:
        data = payload
    else:
        try:
            data = _decompressor().decompress(payload, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise ValueError(f"zstd: {exc}") from exc
    if len(data) != size:
        raise ValueError(f"plane has {len(data)} bytes, expected {size}")
    return np.frombuffer(data, dtype=np.uint8)

"""Encoding and decoding of one stored chunk (the on-disk chunk object; see docs/FORMAT.md).

    magic "CRLK" | u8 version | u8 encoding | u8 dtype code | u8 itemsize | u8 depth | u64 raw_len
    | u8 ref_count | ref_count x 32-byte reference chunk ids | 16-byte checksum | plane buffer

`depth` is the delta-chain depth for delta chunks (1 + the reference's, when written) and, for
FULL chunks, the length of the reverse-delta run that ends at this chunk.

The checksum is the BLAKE3 (first 16 bytes) of every other byte of the file, so any flipped
byte is caught even where it would not change the decoded content (depth, plane modes).

A chunk's name is the BLAKE3 of its raw bytes, whatever its encoding, so the reader always
checks the decoded bytes against the name.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import blake3
import numpy as np

from coral.core.dtypes import supported_dtype_names
from coral.delta import transforms
from coral.delta.plane_codec import (
    PlaneCodecConfig,
    decode_planes,
    decode_planes_sparse,
    decode_segments,
    encode_planes,
    encode_segments,
)
from coral.delta.planes import join_planes, split_planes

MAGIC = b"CRLK"
VERSION = 1
_HEAD = struct.Struct("<4sBBBBBQB")
_SUM = 16
_REFS_NEEDED = {0: 0, 1: 1, 2: 1, 3: 2, 4: 1}
_DTYPES = supported_dtype_names()  # append-only: a dtype's code is its index here


class ChunkEncoding(IntEnum):
    FULL = 0
    XOR = 1
    INT_DIFF = 2
    PREDICT = 3
    XOR_CONTEXT = 4  # XOR, planes reordered by the reference's top byte (context modelling)

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ChunkHeader:
    encoding: ChunkEncoding
    dtype: str
    itemsize: int
    depth: int
    raw_len: int
    refs: tuple[str, ...]
    header_len: int


def parse_header(buf: bytes | memoryview) -> ChunkHeader:
    """Read a chunk header; ValueError when it is not a valid chunk."""
    if len(buf) < _HEAD.size:
        raise ValueError("truncated chunk header")
    magic, version, enc, dcode, itemsize, depth, raw_len, nrefs = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError("not a chunk (bad magic)")
    if version != VERSION:
        raise ValueError(f"unknown chunk format version {version}")
    if enc not in _REFS_NEEDED or _REFS_NEEDED[enc] != nrefs:
        raise ValueError("reference count does not fit the encoding")
    end = _HEAD.size + 32 * nrefs + _SUM
    if len(buf) < end:
        raise ValueError("truncated chunk references")
    refs = tuple(
        bytes(buf[_HEAD.size + 32 * i : _HEAD.size + 32 * (i + 1)]).hex() for i in range(nrefs)
    )
    if itemsize == 0 or raw_len % itemsize:
        raise ValueError("chunk length is not a whole number of elements")
    if dcode >= len(_DTYPES):
        raise ValueError("unknown dtype code")
    return ChunkHeader(ChunkEncoding(enc), _DTYPES[dcode], itemsize, depth, raw_len, refs, end)


def encode_chunk(
    raw: np.ndarray,
    itemsize: int,
    encoding: ChunkEncoding,
    codec: PlaneCodecConfig,
    *,
    dtype: str,
    refs: tuple[str, ...] = (),
    ref_data: tuple[np.ndarray, ...] = (),
    depth: int = 0,
) -> bytes:
    """Encode a flat uint8 chunk with the given encoding (references' raw bytes in `ref_data`)."""
    if encoding is ChunkEncoding.FULL:
        body = raw
    elif encoding is ChunkEncoding.XOR:
        body = transforms.xor(raw, ref_data[0])
    elif encoding is ChunkEncoding.INT_DIFF:
        body = transforms.int_diff(raw, ref_data[0], itemsize)
    elif encoding is ChunkEncoding.PREDICT:
        body = transforms.xor(raw, transforms.prediction(ref_data[0], ref_data[1], dtype))
    else:
        body = transforms.xor(raw, ref_data[0])
    head = _HEAD.pack(
        MAGIC, VERSION, int(encoding), _DTYPES.index(dtype), itemsize, depth, raw.size, len(refs)
    )
    prefix = head + b"".join(bytes.fromhex(r) for r in refs)
    split = split_planes(body, itemsize)
    if encoding is ChunkEncoding.XOR_CONTEXT:
        order, bounds = context_groups(ref_data[0], itemsize)
        planes = _pack_planes(
            [encode_segments([p[order][a:b] for a, b in bounds], codec) for p in split]
        )
    else:
        planes = encode_planes(split, codec)
    return prefix + _checksum(prefix, planes) + planes


_MIN_GROUP = 1 << 14  # context groups smaller than this are merged with their neighbours


def context_groups(ref: np.ndarray, itemsize: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Element order grouping elements by the reference's top byte (sign and exponent), and the
    [start, end) bounds of the groups in that order (small neighbouring groups merged).

    Within a group the XOR delta's bytes share their statistics, and each group is coded on its
    own: conditional coding, beyond the order-0 entropy of the planes.
    """
    top = ref.reshape(-1, itemsize)[:, itemsize - 1]
    order = np.argsort(top, kind="stable")
    bounds: list[tuple[int, int]] = []
    start = end = 0
    for count in np.bincount(top, minlength=256):
        end += int(count)
        if end - start >= _MIN_GROUP:
            bounds.append((start, end))
            start = end
    if end > start or not bounds:
        if bounds and end - start < _MIN_GROUP:
            bounds[-1] = (bounds[-1][0], end)
        else:
            bounds.append((start, end))
    return order, bounds


def _pack_planes(parts: list[bytes]) -> bytes:
    """u8 count, u64 length per part, then the parts."""
    head = bytes([len(parts)]) + b"".join(struct.pack("<Q", len(p)) for p in parts)
    return head + b"".join(parts)


def _unpack_planes(buf: memoryview) -> list[memoryview]:
    count = buf[0] if len(buf) else 0
    pos = 1 + 8 * count
    if not len(buf) or pos > len(buf):
        raise ValueError("truncated plane table")
    parts = []
    for i in range(count):
        (length,) = struct.unpack_from("<Q", buf, 1 + 8 * i)
        parts.append(buf[pos : pos + length])
        pos += length
    if pos != len(buf) or any(len(p) == 0 for p in parts):
        raise ValueError("bad plane table")
    return parts


def _checksum(prefix: bytes | memoryview, planes: bytes | memoryview) -> bytes:
    return blake3.blake3(prefix).update(planes).digest(length=_SUM)


def verify_checksum(buf: bytes | memoryview, head: ChunkHeader) -> None:
    """ValueError unless the chunk file's checksum matches its other bytes."""
    view = memoryview(buf)
    start = head.header_len - _SUM
    if bytes(view[start : head.header_len]) != _checksum(view[:start], view[head.header_len :]):
        raise ValueError("chunk checksum mismatch")


def chunk_planes(
    buf: bytes | memoryview, *, check: bool = True
) -> tuple[ChunkHeader, list[np.ndarray | None]]:
    """Header and (sparse) planes of a chunk's stored body, before undoing its transform."""
    view = memoryview(buf)
    head = parse_header(view)
    if check:
        verify_checksum(view, head)
    if head.encoding is ChunkEncoding.XOR_CONTEXT:
        return head, []  # segment layout: only decode_chunk reads it
    return head, decode_planes_sparse(view[head.header_len :], head.raw_len // head.itemsize)


def decode_chunk(
    buf: bytes | memoryview,
    load_ref: Callable[[str], np.ndarray],
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a chunk to its raw bytes; `load_ref(id)` returns a reference chunk's raw bytes."""
    view = memoryview(buf)
    head = parse_header(view)
    verify_checksum(view, head)
    enc = head.encoding
    if enc is ChunkEncoding.XOR_CONTEXT:
        ref = load_ref(head.refs[0])
        if ref.size != head.raw_len:
            raise ValueError("reference chunk has a different length")
        order, bounds = context_groups(ref, head.itemsize)
        sizes = [b - a for a, b in bounds]
        parts = _unpack_planes(view[head.header_len :])
        if len(parts) != head.itemsize:
            raise ValueError("plane count does not match the element size")
        planes = []
        for part in parts:
            restored = np.empty(head.raw_len // head.itemsize, dtype=np.uint8)
            restored[order] = decode_segments(part, sizes)
            planes.append(restored)
        result = transforms.xor(join_planes(planes), ref)
        if out is not None:
            out[:] = result
            return out
        return result
    planes = decode_planes(view[head.header_len :], head.raw_len // head.itemsize)
    if enc is ChunkEncoding.FULL:
        return join_planes(planes, out)
    ref = load_ref(head.refs[0])
    if ref.size != head.raw_len:
        raise ValueError("reference chunk has a different length")
    body = join_planes(planes)
    if enc is ChunkEncoding.XOR:
        result = transforms.xor(body, ref)
    elif enc is ChunkEncoding.INT_DIFF:
        result = transforms.int_undiff(body, ref, head.itemsize)
    else:
        pred = transforms.prediction(ref, load_ref(head.refs[1]), head.dtype)
        result = transforms.xor(body, pred)
    if out is not None:
        out[:] = result
        return out
    return result

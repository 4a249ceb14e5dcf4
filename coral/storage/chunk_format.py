"""Encoding and decoding of one stored chunk record (see docs/FORMAT.md, "Chunk records").

Version 2 (written now; a record inside a pack):

    magic "CRLK" | u8 version=2 | u8 encoding | u8 dtype code | u8 itemsize | u64 raw_len
    | u8 ref_count | ref_count x 32-byte reference chunk ids | 16-byte XXH3-128 of the decoded
    bytes | plane buffer

Every read checks the decoded bytes against the XXH3-128 (a fast checksum: it catches
corruption at memory speed); fsck and transfers check them against the chunk's BLAKE3 name.
Every header byte either shapes the decoding or is checked against the manifest, so a flipped
byte anywhere is caught by that one checksum.

Version 1 (loose chunk files of the first release; still read):

    magic "CRLK" | u8 version=1 | u8 encoding | u8 dtype code | u8 itemsize | u8 depth
    | u64 raw_len | u8 ref_count | refs | 16-byte BLAKE3 of every other byte | plane buffer
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import blake3
import xxhash

from coral.core.dtypes import ITEMSIZES, supported_dtype_names
from coral.core.lazy_imports import lazy_module
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

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

MAGIC = b"CRLK"
VERSION = 2
_HEAD_V1 = struct.Struct("<4sBBBBBQB")
_HEAD = struct.Struct("<4sBBBBQB")
_SUM = 16
_REFS_NEEDED = {0: 0, 1: 1, 2: 1, 3: 2, 4: 1}
_DTYPES = supported_dtype_names()  # append-only: a dtype's code is its index here
_ITEMSIZES = tuple(ITEMSIZES[name] for name in _DTYPES)


class ChunkEncoding(IntEnum):
    FULL = 0
    XOR = 1
    INT_DIFF = 2
    PREDICT = 3
    XOR_CONTEXT = 4  # XOR, planes reordered by the reference's top byte (context modelling)

    @property
    def label(self) -> str:
        return self.name.lower()


MAX_RAW_LEN = 1 << 30  # no chunk is larger (StoreConfig caps chunk_bytes): a bigger one is damage


@dataclass(frozen=True)
class ChunkHeader:
    encoding: ChunkEncoding
    dtype: str
    itemsize: int
    depth: int  # version 1 only (0 in version 2: depth comes from the reference graph)
    raw_len: int
    refs: tuple[str, ...]
    header_len: int
    version: int = VERSION
    checksum: bytes = b""  # version 2: XXH3-128 of the decoded bytes


def parse_header(buf: bytes | memoryview) -> ChunkHeader:
    """Read a chunk header; ValueError when it is not a valid chunk."""
    if len(buf) < 5:
        raise ValueError("truncated chunk header")
    version = buf[4]
    if bytes(buf[:4]) != MAGIC:
        raise ValueError("not a chunk (bad magic)")
    depth = 0
    if version == 1:
        if len(buf) < _HEAD_V1.size:
            raise ValueError("truncated chunk header")
        _, _, enc, dcode, itemsize, depth, raw_len, nrefs = _HEAD_V1.unpack_from(buf, 0)
        start = _HEAD_V1.size
    elif version == 2:
        if len(buf) < _HEAD.size:
            raise ValueError("truncated chunk header")
        _, _, enc, dcode, itemsize, raw_len, nrefs = _HEAD.unpack_from(buf, 0)
        start = _HEAD.size
    else:
        raise ValueError(f"unknown chunk format version {version}")
    if enc not in _REFS_NEEDED or _REFS_NEEDED[enc] != nrefs:
        raise ValueError("reference count does not fit the encoding")
    end = start + 32 * nrefs + _SUM
    if len(buf) < end:
        raise ValueError("truncated chunk references")
    refs = tuple(bytes(buf[start + 32 * i : start + 32 * (i + 1)]).hex() for i in range(nrefs))
    if dcode >= len(_DTYPES):
        raise ValueError("unknown dtype code")
    if itemsize != _ITEMSIZES[dcode]:
        raise ValueError(f"element size {itemsize} does not fit dtype {_DTYPES[dcode]}")
    if raw_len > MAX_RAW_LEN:
        raise ValueError(
            f"chunk header claims {raw_len} bytes, more than any chunk holds ({MAX_RAW_LEN})"
        )
    if raw_len % itemsize:
        raise ValueError("chunk length is not a whole number of elements")
    checksum = bytes(buf[end - _SUM : end]) if version == 2 else b""
    return ChunkHeader(
        ChunkEncoding(enc), _DTYPES[dcode], itemsize, depth, raw_len, refs, end, version, checksum
    )


def raw_checksum(raw: np.ndarray | bytes | memoryview) -> bytes:
    """XXH3-128 of a chunk's decoded bytes (what version 2 records carry)."""
    return xxhash.xxh3_128_digest(raw)  # type: ignore[arg-type]


def verify_raw(raw: np.ndarray, head: ChunkHeader) -> None:
    """ValueError unless decoded bytes match a version-2 record's checksum."""
    if head.version == 2 and raw_checksum(raw) != head.checksum:
        raise ValueError("decoded bytes do not match the chunk checksum")


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
    version: int = VERSION,
) -> bytes:
    """Encode a flat uint8 chunk with the given encoding (references' raw bytes in `ref_data`).

    `version=1` writes the first release's loose-file layout (tests of old repositories)."""
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
    code = _DTYPES.index(dtype)
    if version == 1:
        head = _HEAD_V1.pack(MAGIC, 1, int(encoding), code, itemsize, depth, raw.size, len(refs))
    else:
        head = _HEAD.pack(MAGIC, 2, int(encoding), code, itemsize, raw.size, len(refs))
    prefix = head + b"".join(bytes.fromhex(r) for r in refs)
    split = split_planes(body, itemsize)
    if encoding is ChunkEncoding.XOR_CONTEXT:
        order, bounds = context_groups(ref_data[0], itemsize)
        planes = _pack_planes(
            [encode_segments([p[order][a:b] for a, b in bounds], codec) for p in split]
        )
    else:
        planes = encode_planes(split, codec)
    if version == 1:
        return prefix + _checksum(prefix, planes) + planes
    return b"".join((prefix, raw_checksum(raw), planes))


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
    """ValueError unless a version-1 chunk file's checksum matches its other bytes."""
    if head.version != 1:
        return
    view = memoryview(buf)
    start = head.header_len - _SUM
    if bytes(view[start : head.header_len]) != _checksum(view[:start], view[head.header_len :]):
        raise ValueError("chunk checksum mismatch")


def check_length(head: ChunkHeader, expected: int | None) -> None:
    """ValueError unless the header's length is the one the reader knows it must be (checked
    before anything of that size is allocated)."""
    if expected is not None and head.raw_len != expected:
        raise ValueError(f"chunk claims {head.raw_len} bytes where {expected} are expected")


def plane_buffer(view: memoryview, head: ChunkHeader) -> memoryview:
    """The record's plane buffer, its plane count checked against the element size first (a
    damaged count would otherwise size what is allocated)."""
    body = view[head.header_len :]
    if head.encoding is not ChunkEncoding.XOR_CONTEXT and (
        not len(body) or body[0] != head.itemsize
    ):
        raise ValueError("plane count does not match the element size")
    return body


def chunk_planes(
    buf: bytes | memoryview, *, check: bool = True, expected_len: int | None = None
) -> tuple[ChunkHeader, list[np.ndarray | None]]:
    """Header and (sparse) planes of a chunk's stored body, before undoing its transform."""
    view = memoryview(buf)
    head = parse_header(view)
    check_length(head, expected_len)
    if check:
        verify_checksum(view, head)
    if head.encoding is ChunkEncoding.XOR_CONTEXT:
        return head, []  # segment layout: only decode_chunk reads it
    return head, decode_planes_sparse(plane_buffer(view, head), head.raw_len // head.itemsize)


def decode_chunk(
    buf: bytes | memoryview,
    load_ref: Callable[[str], np.ndarray],
    *,
    out: np.ndarray | None = None,
    expected_len: int | None = None,
) -> np.ndarray:
    """Decode a chunk to its raw bytes; `load_ref(id)` returns a reference chunk's verified raw
    bytes, and is called before any of this chunk's planes are decoded.

    `expected_len` (or `out`'s size) is checked against the header before decoding."""
    view = memoryview(buf)
    head = parse_header(view)
    check_length(head, out.nbytes if out is not None else expected_len)
    verify_checksum(view, head)
    enc = head.encoding
    if enc is ChunkEncoding.XOR_CONTEXT:
        parts = _unpack_planes(view[head.header_len :])
        if len(parts) != head.itemsize:
            raise ValueError("plane count does not match the element size")
        ref = load_ref(head.refs[0])
        if ref.size != head.raw_len:
            raise ValueError("reference chunk has a different length")
        order, bounds = context_groups(ref, head.itemsize)
        sizes = [b - a for a, b in bounds]
        planes = []
        for part in parts:
            restored = np.empty(head.raw_len // head.itemsize, dtype=np.uint8)
            restored[order] = decode_segments(part, sizes)
            planes.append(restored)
        result = transforms.xor(join_planes(planes), ref)
        if out is not None:
            out[:] = result
            result = out
        verify_raw(result, head)
        return result
    refs = [load_ref(r) for r in head.refs]  # each verified before anything depends on it
    if any(ref.size != head.raw_len for ref in refs):
        raise ValueError("reference chunk has a different length")
    planes = decode_planes(plane_buffer(view, head), head.raw_len // head.itemsize)
    if enc is ChunkEncoding.FULL:
        result = join_planes(planes, out)
        verify_raw(result, head)
        return result
    body = join_planes(planes)
    if enc is ChunkEncoding.XOR:
        result = transforms.xor(body, refs[0])
    elif enc is ChunkEncoding.INT_DIFF:
        result = transforms.int_undiff(body, refs[0], head.itemsize)
    else:
        result = transforms.xor(body, transforms.prediction(refs[0], refs[1], head.dtype))
    if out is not None:
        out[:] = result
        result = out
    verify_raw(result, head)
    return result

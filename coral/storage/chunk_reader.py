"""Reading chunk records back: XOR chains decoded in plane space, anything else level by level.

Each packed record is checked against the pack index's record checksum (XXH3-64) before its
header is parsed, so no length or count of a damaged record is ever used, and every chunk of a
delta chain is verified before anything that depends on it is decoded (a version-1 loose chunk
against the BLAKE3 checksum of its file). Every result is checked against the record's
checksum of its decoded bytes (XXH3-128; BLAKE3 name for version-1 chunks); a length the reader
knows is checked before anything is allocated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.hashing import hash_chunk
from coral.core.lazy_imports import lazy_module
from coral.delta.planes import join_planes, split_planes
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.backend import BackendError
from coral.storage.base import CHUNK
from coral.storage.chunk_format import (
    ChunkEncoding,
    ChunkHeader,
    check_length,
    chunk_planes,
    decode_chunk,
    parse_header,
    raw_checksum,
    verify_checksum,
)
from coral.storage.store_stats import MAX_DEPTH

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals


def decode(
    store: StoreInternals, chunk_id: str, out: np.ndarray | None = None, *, strict: bool = False
) -> np.ndarray:
    """Decode and verify a chunk: XOR chains in plane space, anything else level by level."""
    if not strict:
        try:
            fast = _decode_xor_chain(store, chunk_id, out)
        except (OSError, ValueError, ObjectNotFoundError, CorruptObjectError, BackendError):
            fast = None
        if fast is not None:
            return fast
    return _decode_strict(store, chunk_id, out, 0)


def _decode_xor_chain(
    store: StoreInternals, chunk_id: str, out: np.ndarray | None
) -> np.ndarray | None:
    """XOR the planes of every chunk along the chain down to a FULL (or cached) chunk, then
    check the result against the chunk's checksum (None: take the strict path). Every record
    of the chain is read and checked before any plane is decoded."""
    chain = _xor_chain(store, chunk_id, out)
    if chain is None:
        return None
    records, base = chain
    top = parse_header(records[0])
    acc: list[np.ndarray | None] | None = None
    for data in records:
        expected = top.raw_len if acc is not None else (out.nbytes if out is not None else None)
        _, planes = chunk_planes(data, check=False, expected_len=expected)
        acc = (
            planes if acc is None else [xor_planes(a, b) for a, b in zip(acc, planes, strict=True)]
        )
    assert acc is not None
    if base is not None:
        if base.size != top.raw_len:
            return None
        acc = [xor_planes(a, b) for a, b in zip(acc, split_planes(base, top.itemsize), strict=True)]
    size = top.raw_len // top.itemsize
    full = [np.zeros(size, np.uint8) if p is None else p for p in acc]
    result = join_planes(full, out)
    if top.version == 2:
        if raw_checksum(result) != top.checksum:
            return None
    elif hash_chunk(result.data) != chunk_id:
        return None
    return result


def _xor_chain(
    store: StoreInternals, chunk_id: str, out: np.ndarray | None
) -> tuple[list[bytes], np.ndarray | None] | None:
    """The records from `chunk_id` down its XOR references to a FULL chunk, or to a cached
    (verified) chunk returned with them, each checked against its checksum before it is
    returned (None: not such a chain)."""
    records: list[bytes] = []
    top: ChunkHeader | None = None
    current = chunk_id
    while len(records) <= MAX_DEPTH:
        if top is not None:
            cached = store._cache.get(current)
            if cached is not None:
                return records, cached[0]
        data = store.read_record(CHUNK, current)
        head = parse_header(data)
        if head.encoding not in (ChunkEncoding.FULL, ChunkEncoding.XOR):
            return None
        if top is None:
            top = head
            check_length(head, out.nbytes if out is not None else None)
        elif head.itemsize != top.itemsize or head.raw_len != top.raw_len:
            return None
        verify_checksum(data, head)  # a version-1 file's own checksum (packed: checked above)
        records.append(data)
        if head.encoding is ChunkEncoding.FULL:
            return records, None
        current = head.refs[0]
    return None


def _decode_strict(
    store: StoreInternals,
    chunk_id: str,
    out: np.ndarray | None,
    level: int,
    expected: int | None = None,
) -> np.ndarray:
    if level > MAX_DEPTH:
        raise CorruptObjectError(
            chunk_id, store.where(CHUNK, chunk_id), "delta chain is cyclic or too deep"
        )
    data = store.read_record(CHUNK, chunk_id)
    where = store.where(CHUNK, chunk_id)

    def load_ref(ref_id: str) -> np.ndarray:
        cached = store._cache.get(ref_id)
        if cached is not None:
            return cached[0]
        raw = _decode_strict(store, ref_id, None, level + 1, head.raw_len)
        store._cache.put(ref_id, raw, store.chain_depth(ref_id))
        return raw

    try:
        head = parse_header(data)
        raw = decode_chunk(data, load_ref, out=out, expected_len=expected)
    except ValueError as exc:
        raise CorruptObjectError(chunk_id, where, str(exc)) from None
    except ObjectNotFoundError as exc:
        raise CorruptObjectError(
            chunk_id, where, f"its delta reference is missing: {exc.message}"
        ) from None
    if head.version == 1 and hash_chunk(raw.data) != chunk_id:
        raise CorruptObjectError(chunk_id, where, "content does not match its hash")
    return raw


def xor_planes(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return np.bitwise_xor(a, b)

"""Storage figures of a pack store: chain depths, per-chunk and per-tensor sizes, totals."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import CHUNK, ObjectStats, StoreStats
from coral.storage.chunk_format import ChunkEncoding
from coral.storage.pack import NOT_A_CHUNK

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals

MAX_DEPTH = 256  # deeper than any chain the store writes: a cycle or damage


def chain_depth(store: StoreInternals, chunk_id: str) -> int:
    """Delta steps from a chunk down to FULL (longest path), through packed and loose chunks."""
    depth, frontier = 0, {chunk_id}
    while True:
        refs: set[str] = set()
        for cid in frontier:
            try:
                refs.update(store._chunk_refs(cid)[1])
            except (ObjectNotFoundError, CorruptObjectError):
                continue
        if not refs:
            return depth
        depth += 1
        if depth > MAX_DEPTH:
            return depth  # a cycle (damage)
        frontier = refs


def chunk_info(store: StoreInternals, chunk_id: str) -> tuple[int, str, int]:
    """(stored bytes, encoding label, chain depth) of one chunk."""
    loc = store.index.get(chunk_id)
    if loc is not None and loc.encoding != NOT_A_CHUNK:
        label = ChunkEncoding(loc.encoding).label
        return loc.length, label, chain_depth(store, chunk_id)
    data = store.loose.read(CHUNK, chunk_id)
    if data is None:
        raise ObjectNotFoundError(f"chunk {chunk_id} is missing ({store.root})")
    head = store._header(chunk_id)
    return len(data), head.encoding.label, chain_depth(store, chunk_id)


def tensor_stats(store: StoreInternals, tensor_id: str) -> ObjectStats:
    manifest = store._manifest(tensor_id)
    infos = [chunk_info(store, c) for c in dict.fromkeys(manifest.chunks)]
    encodings = Counter(label for _, label, _ in infos)
    label = (
        next(iter(encodings))
        if len(encodings) == 1
        else ("mixed(" + ",".join(f"{k}={v}" for k, v in sorted(encodings.items())) + ")")
    )
    return ObjectStats(
        object_id=tensor_id,
        raw_bytes=manifest.nbytes,
        stored_bytes=sum(size for size, _, _ in infos) + len(manifest.encode()),
        encoding=label if infos else "empty",
        chain_depth=max((d for _, _, d in infos), default=0),
        chunks=len(manifest.chunks),
    )


def store_stats(store: StoreInternals) -> StoreStats:
    st = StoreStats()
    for tid in store.list():
        st.tensors += 1
        try:
            st.raw_bytes += store._manifest(tid).nbytes
        except (CorruptObjectError, ObjectNotFoundError):
            continue
    encodings: Counter[str] = Counter()
    for cid in store.list_blobs(CHUNK):
        try:
            size, label, _ = chunk_info(store, cid)
        except (CorruptObjectError, ObjectNotFoundError):
            continue
        st.chunks += 1
        st.stored_bytes += size
        encodings[label] += 1
    st.encodings = dict(encodings)
    return st

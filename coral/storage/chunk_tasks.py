"""Decoding a chunk as a pure task, for an `EncodePool` that runs tasks on a Dask cluster.

The store reads the records a chunk needs (its own and its delta references', each checked
against the pack index's record checksum) and sends them; the worker decodes them with the
same `chunk_reader` code and checks as a local read, over a `RecordSet` instead of a store.
A record that fails there is decoded again locally, so that the error names the pack file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from coral.core.lazy_imports import lazy_module
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage import chunk_reader
from coral.storage.backend import BackendError
from coral.storage.base import CHUNK
from coral.storage.chunk_cache import ChunkCache
from coral.storage.store_stats import MAX_DEPTH

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals


class RecordSet:
    """What `chunk_reader` reads of a store, served from records sent along with a task."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records = records
        self._cache = ChunkCache(0)  # nothing is kept between tasks

    def read_record(self, kind: str, object_id: str, *, check: bool = True) -> bytes:
        try:
            return self.records[object_id]
        except KeyError:
            raise ObjectNotFoundError(f"{kind} {object_id} was not sent to the worker") from None

    def where(self, kind: str, object_id: str) -> str:
        return f"{kind} {object_id} (decoding on a Dask worker)"

    def chain_depth(self, chunk_id: str) -> int:
        return 0  # only the cache, which keeps nothing, asks


def decode_records(chunk_id: str, records: dict[str, bytes]) -> np.ndarray:
    """The verified raw bytes of `chunk_id`, decoded from `records` (a pure task)."""
    return chunk_reader.decode(cast("StoreInternals", RecordSet(records)), chunk_id)


def gather_records(store: StoreInternals, chunk_id: str) -> dict[str, bytes]:
    """The records of `chunk_id` and of every chunk it references, down to FULL ones."""
    records: dict[str, bytes] = {}
    todo = [chunk_id]
    while todo:
        current = todo.pop()
        if current in records:
            continue
        if len(records) > MAX_DEPTH:
            raise CorruptObjectError(
                chunk_id, store.where(CHUNK, chunk_id), "delta chain is cyclic or too deep"
            )
        records[current] = store.read_record(CHUNK, current)
        todo.extend(store._chunk_refs(current)[1])
    return records


def decode_remote(store: StoreInternals, chunk_id: str, out: np.ndarray | None) -> np.ndarray:
    """Decode a chunk on the store's pool (a Dask task), into `out` when given."""
    try:
        raw = store.pool.run(decode_records, chunk_id, gather_records(store, chunk_id))
    except (OSError, ValueError, ObjectNotFoundError, CorruptObjectError, BackendError):
        raw = None
    if raw is None or (out is not None and raw.nbytes != out.nbytes):
        return chunk_reader.decode(store, chunk_id, out)  # its error names the damaged file
    if out is None:
        return raw
    out[...] = raw.view(np.uint8).reshape(out.shape)
    return out

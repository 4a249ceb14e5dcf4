"""Planning a tensor's chunks for `PackStore.store_many`: its chunk jobs (hashed as they are
reached, so a memory-mapped tensor is read chunk by chunk) and each job's delta base."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coral.core.hashing import hash_chunk
from coral.core.lazy_imports import lazy_module
from coral.core.mapped_pages import release
from coral.core.weight_tensor import WeightTensor
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import TENSOR
from coral.storage.chunk_encoder import Reference
from coral.storage.stream_source import is_mapped

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals


@dataclass
class ChunkJob:
    """One chunk of a tensor to store: its bytes, and the chunk it may be a delta of."""

    chunk_id: str
    raw: np.ndarray
    dtype: str
    itemsize: int
    ref_id: str | None
    mapped: bool = False  # raw is a view of a read-only file map: its pages go once written

    def done(self) -> None:
        if self.mapped:
            release(self.raw)


def plan_chunks(
    store: StoreInternals, weight: WeightTensor, reference: str | None
) -> tuple[int, Iterator[ChunkJob]]:
    """The tensor's chunk size and its chunk jobs, each hashed only when it is reached."""
    dtype = weight.metadata.dtype_name
    itemsize = weight.dtype.itemsize
    chunk_bytes = max(1, store.config.chunk_bytes // itemsize) * itemsize
    data = weight.data
    mapped = is_mapped(data)
    raw = data.reshape(-1).view(np.uint8)
    ref_chunks = reference_chunks(store, reference, dtype, raw.nbytes, chunk_bytes)

    def jobs() -> Iterator[ChunkJob]:
        for i, start in enumerate(range(0, raw.nbytes, chunk_bytes)):
            piece = raw[start : start + chunk_bytes]
            ref_id = ref_chunks[i] if ref_chunks else None
            yield ChunkJob(hash_chunk(piece.data), piece, dtype, itemsize, ref_id, mapped)

    return chunk_bytes, jobs()


def reference_chunks(
    store: StoreInternals, reference: str | None, dtype: str, nbytes: int, chunk_bytes: int
) -> tuple[str, ...] | None:
    """The chunks of `reference` when it is stored with the same dtype and chunking (each
    chunk then is the delta base of the same chunk of the new tensor), else None."""
    if reference is None or not store._has(TENSOR, reference):
        return None
    try:
        ref = store._manifest(reference)
    except (CorruptObjectError, ObjectNotFoundError):
        return None
    if ref.dtype != dtype or ref.nbytes != nbytes or ref.chunk_bytes != chunk_bytes:
        return None
    return ref.chunks


def reference_for(store: StoreInternals, job: ChunkJob) -> Reference | None:
    """The delta base of a chunk job (decoded), or None when it cannot serve as one."""
    if job.ref_id is None or job.ref_id == job.chunk_id:
        return None
    try:
        if job.mapped:  # the base is read chunk by chunk too, and not kept
            cached = store._cache.get(job.ref_id)
            raw = cached[0] if cached is not None else store._decode(job.ref_id)
        else:
            raw, _ = store._chunk_raw(job.ref_id)
    except (ObjectNotFoundError, CorruptObjectError):
        return None
    depth = store.chain_depth(job.ref_id)
    if depth >= store.config.max_chain_depth or raw.nbytes != job.raw.nbytes:
        return None
    return Reference(job.ref_id, raw, depth)

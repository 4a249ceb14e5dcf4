"""Reading a stored tensor chunk by chunk, in order, with a bounded number of chunks in memory.

What `coral export` writes from: each chunk is decoded (in parallel, a window of them ahead)
and verified against the checksum of its decoded bytes, and the whole tensor is hashed as its
chunks go by and checked against its BLAKE3 name at the end, so a reader of many gigabytes
holds a few chunks, never the tensor, and still learns of any damage before it finishes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from coral.core.hashing import TensorHasher
from coral.errors import CorruptObjectError
from coral.storage.base import TENSOR

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals


def iter_chunks(
    store: StoreInternals, tensor_id: str, window: int | None = None
) -> Iterator[np.ndarray]:
    """The tensor's raw bytes as consecutive uint8 arrays (one per chunk), each verified; the
    last one is yielded only after the whole tensor matched its name (CorruptObjectError)."""
    manifest = store.manifest(tensor_id)
    store.check_chunks_present(tensor_id, manifest)
    ahead = window or 2 * store.config.worker_count
    hasher = TensorHasher(manifest.dtype, manifest.shape)
    pending: deque[Future[np.ndarray]] = deque()
    spans = [manifest.chunk_span(i) for i in range(len(manifest.chunks))]

    def submit(i: int) -> None:
        out = np.empty(spans[i][1] - spans[i][0], dtype=np.uint8)
        pending.append(store.pool.submit(store._decode, manifest.chunks[i], out))

    nxt = 0
    try:
        for i in range(len(spans)):
            while nxt < len(spans) and nxt < i + ahead:
                submit(nxt)
                nxt += 1
            piece = pending.popleft().result()
            hasher.update(piece.data)
            if i == len(spans) - 1 and hasher.hexdigest() != tensor_id:
                raise CorruptObjectError(
                    tensor_id,
                    store.where(TENSOR, tensor_id),
                    "tensor content does not match its hash",
                )
            yield piece
        if not spans and hasher.hexdigest() != tensor_id:
            raise CorruptObjectError(
                tensor_id, store.where(TENSOR, tensor_id), "tensor content does not match its hash"
            )
    finally:
        for fut in pending:
            fut.cancel()

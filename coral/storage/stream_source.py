"""Tensors read straight from a file through a memory map, piece by piece.

`map_range` maps one tensor of a file (a safetensors tensor, by the offsets of its header)
read-only; `MappedTensor` is a `WeightTensor` over such a map whose name (BLAKE3) is computed
piece by piece, each piece's pages dropped once hashed (`coral.core.mapped_pages`), so
committing a checkpoint many times the memory budget keeps only a few pieces resident.
The store encodes a mapped tensor chunk by chunk the same way (`PackStore._store_into`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coral.core.hashing import TensorHasher
from coral.core.lazy_imports import lazy_module
from coral.core.mapped_pages import read_only_map, release
from coral.core.weight_tensor import WeightMetadata, WeightTensor

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

PIECE_BYTES = 8 << 20  # bytes hashed at a time


def map_range(path: Path | str, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The tensor at `offset` of `path`, memory-mapped read-only (an empty tensor: in memory)."""
    dt = np.dtype(dtype)
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize == 0:
        return np.empty(shape, dtype=dt)
    return np.memmap(path, dtype=dt, mode="r", offset=offset, shape=tuple(shape))


def is_mapped(arr: object) -> bool:
    """Whether `arr` is (a view of) a read-only memory map."""
    return isinstance(arr, np.ndarray) and read_only_map(arr) is not None


def pieces(raw: np.ndarray, piece_bytes: int) -> list[np.ndarray]:
    """Consecutive views of a flat uint8 array, `piece_bytes` each (the last may be shorter)."""
    return [raw[start : start + piece_bytes] for start in range(0, raw.nbytes, piece_bytes)]


class MappedTensor(WeightTensor):
    """A WeightTensor whose data is a read-only memory map; hashing streams it piece by piece."""

    def __init__(self, data: np.ndarray, metadata: WeightMetadata | None = None, *, name: str = ""):
        super().__init__(data, metadata, name=name)

    def compute_hash(self, force: bool = False) -> str:
        if self.metadata.hash is None or force:
            raw = self.data.reshape(-1).view(np.uint8)
            hasher = TensorHasher(self.metadata.dtype_name, self.shape)
            for piece in pieces(raw, PIECE_BYTES):
                hasher.update(piece.data)
                release(piece)
            self.metadata.hash = hasher.hexdigest()
        return self.metadata.hash


def as_mapped(value: object, name: str) -> object:
    """A `MappedTensor` for a memory-mapped array, anything else unchanged."""
    if isinstance(value, np.ndarray) and not isinstance(value, WeightTensor) and is_mapped(value):
        return MappedTensor(value, name=name)
    return value

"""The `WeightStore` interface: what every object store (local, remote-backed) offers.

Objects are immutable and named by the BLAKE3-256 of their canonical content. Kinds:
- "tensor": a tensor manifest (dtype, shape, chunk list); its name is the tensor's hash.
- "chunk":  an element-aligned slice of a tensor's bytes; its name is the hash of the raw slice,
            whatever encoding (FULL or DELTA against another chunk) it is stored in.
- any other kind ("tree", "commit", ...): a small blob named by `hash_blob(kind, data)`.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from coral.core.weight_tensor import WeightTensor

TENSOR = "tensor"
CHUNK = "chunk"


@dataclass(frozen=True)
class ObjectStats:
    """Storage facts of one stored tensor."""

    object_id: str
    raw_bytes: int
    stored_bytes: int
    encoding: str  # "full", "xor", ... or "mixed(full=2,xor=6)"
    chain_depth: int  # longest delta chain among its chunks (0 = all FULL)
    chunks: int

    @property
    def compression_ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


@dataclass
class StoreStats:
    """Totals over a store."""

    tensors: int = 0
    chunks: int = 0
    raw_bytes: int = 0  # sum of each stored tensor's raw size
    stored_bytes: int = 0  # bytes on disk for chunks
    encodings: dict[str, int] = field(default_factory=dict)  # chunk count per encoding

    @property
    def compression_ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


@dataclass
class GCReport:
    removed: dict[str, int] = field(default_factory=dict)  # kind -> count
    freed_bytes: int = 0


class WeightStore(ABC):
    """Content-addressed storage of tensors and small blobs."""

    # -- tensors -----------------------------------------------------------------------------
    @abstractmethod
    def store(self, weight: WeightTensor, reference: str | None = None) -> str:
        """Store `weight` (delta-encoded against tensor `reference` when that is smaller).

        Returns the tensor id (== weight.compute_hash()). Storing an existing tensor is free.
        """

    def store_many(self, items: Iterable[tuple[WeightTensor, str | None]]) -> builtins.list[str]:
        """Store several (weight, reference) pairs; implementations parallelise."""
        return [self.store(w, ref) for w, ref in items]

    @abstractmethod
    def load(self, tensor_id: str, name: str | None = None, *, lazy: bool = False) -> WeightTensor:
        """Read a tensor back, bit-exact, re-hashing it (CorruptObjectError on mismatch)."""

    @abstractmethod
    def exists(self, tensor_id: str) -> bool: ...

    @abstractmethod
    def delete(self, tensor_id: str) -> bool:
        """Remove a tensor manifest (its chunks go at the next `gc`)."""

    @abstractmethod
    def list(self) -> builtins.list[str]:
        """Ids of every stored tensor."""

    @abstractmethod
    def stats(self, tensor_id: str | None = None) -> ObjectStats | StoreStats: ...

    # -- small blobs (trees, commits, ...) ---------------------------------------------------
    @abstractmethod
    def put_blob(self, kind: str, data: bytes) -> str: ...

    @abstractmethod
    def get_blob(self, kind: str, blob_id: str) -> bytes: ...

    @abstractmethod
    def has_blob(self, kind: str, blob_id: str) -> bool: ...

    @abstractmethod
    def list_blobs(self, kind: str) -> builtins.list[str]: ...

    # -- raw transfer (remotes) --------------------------------------------------------------
    @abstractmethod
    def read_raw(self, kind: str, object_id: str) -> bytes:
        """The object's stored bytes, exactly as on disk."""

    @abstractmethod
    def write_raw(self, kind: str, object_id: str, data: bytes) -> None:
        """Install an object's stored bytes (from another store); verified before it is visible."""

    @abstractmethod
    def dependencies(self, kind: str, object_id: str) -> builtins.list[tuple[str, str]]:
        """Objects this one needs to be readable: a tensor's chunks, a delta chunk's reference."""

    def iter_objects(self, kind: str) -> Iterator[str]:
        yield from (self.list() if kind == TENSOR else self.list_blobs(kind))

    # -- maintenance -------------------------------------------------------------------------
    @abstractmethod
    def gc(self, live_tensors: set[str], live_blobs: dict[str, set[str]]) -> GCReport:
        """Remove everything not reachable from the given live tensors and blobs."""

    @abstractmethod
    def verify(self, kind: str, object_id: str) -> None:
        """Re-hash one object (and, for tensors, its chunks); CorruptObjectError if wrong."""

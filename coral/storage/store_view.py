"""`StoreInternals`: what PackStore's helper modules read of it, as a Protocol.

`chunk_reader`, `received`, `repack`, `store_stats`, `promisor`, `stream_read` and
`stream_map` are parts of `PackStore` kept in their own files; `PackStore` calls them with
itself. So that they do not import
`pack_store.py` back (an import cycle), they are typed against this Protocol, which
`PackStore` satisfies structurally (mypy checks it where `PackStore` passes `self`). The
underscored members are PackStore's own internals, shared only with these helpers.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from coral.storage.backend import Backend
from coral.storage.chunk_cache import ChunkCache
from coral.storage.chunk_format import ChunkHeader
from coral.storage.config import StoreConfig
from coral.storage.encode_pool import EncodePool
from coral.storage.loose import LooseObjects
from coral.storage.manifest import TensorManifest
from coral.storage.pack_index import Location, PackIndex


class StoreInternals(Protocol):
    """The members of `PackStore` its helper modules use."""

    root: Path
    config: StoreConfig
    backend: Backend
    index: PackIndex
    loose: LooseObjects
    _cache: ChunkCache

    @property
    def pool(self) -> EncodePool: ...

    def where(self, kind: str, object_id: str) -> str | None: ...

    def manifest(self, tensor_id: str) -> TensorManifest: ...

    def check_chunks_present(self, tensor_id: str, manifest: TensorManifest) -> None: ...

    def read_record(self, kind: str, object_id: str, *, check: bool = True) -> bytes: ...

    def retire_pack(self, pack_id: str) -> None: ...

    def list(self) -> builtins.list[str]: ...

    def list_blobs(self, kind: str) -> builtins.list[str]: ...

    def chain_depth(self, chunk_id: str) -> int: ...

    def live_chunks(self, tensors: Iterable[str]) -> set[str]: ...

    def _read_at(self, loc: Location) -> bytes: ...

    def _has(self, kind: str, object_id: str) -> bool: ...

    def _has_fresh(self, kind: str, object_id: str) -> bool: ...

    def _chunk_refs(self, chunk_id: str) -> tuple[int, tuple[str, ...]]: ...

    def _header(self, chunk_id: str) -> ChunkHeader: ...

    def _manifest(self, tensor_id: str, *, fetch: bool = True) -> TensorManifest: ...

    def _chunk_raw(self, chunk_id: str) -> tuple[np.ndarray, int]: ...

    def _decode(
        self, chunk_id: str, out: np.ndarray | None = None, *, strict: bool = False
    ) -> np.ndarray: ...

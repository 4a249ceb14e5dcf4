"""Installing objects received from another store (a remote, a peer): verify, then keep.

Every record is checked against its BLAKE3 name before it becomes visible, in an order that
makes each check possible: chunks (references before the chunks that delta against them),
then tensor manifests (every chunk present and the whole tensor hashing to its name), then
trees, commits and other blobs. Each group goes into one new pack; a record that fails its
check is a CorruptObjectError and nothing after it is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from coral.core.hashing import TensorHasher, hash_blob, hash_chunk, is_hash
from coral.errors import CorruptObjectError, InvalidNameError
from coral.storage.base import CHUNK, TENSOR
from coral.storage.chunk_format import decode_chunk, parse_header
from coral.storage.manifest import TensorManifest
from coral.storage.pack import KINDS, NOT_A_CHUNK, PackWriter

if TYPE_CHECKING:
    from coral.storage.pack_store import PackStore

_ORDER = {CHUNK: 0, TENSOR: 1}  # blobs after, commits last


def install(store: PackStore, records: Iterable[tuple[str, str, bytes]]) -> int:
    """Verify and store `(kind, id, bytes)` records; returns how many were new."""
    todo: dict[str, tuple[str, bytes]] = {}
    for kind, oid, data in records:
        if kind not in KINDS or not is_hash(oid):
            raise InvalidNameError(f"not an object name: {kind}/{oid}")
        if not store._has(kind, oid):
            todo[oid] = (kind, data)
    groups: dict[int, list[str]] = {}
    for oid, (kind, _) in todo.items():
        groups.setdefault(_ORDER.get(kind, 2 if kind != "commit" else 3), []).append(oid)
    installed = 0
    for rank in sorted(groups):
        ids = groups[rank]
        if rank == 0:
            ids = _references_first(ids, todo)
        writer = PackWriter(store.backend, fsync=store.config.fsync)
        raws: dict[str, np.ndarray] = {}
        try:
            for oid in ids:
                kind, data = todo[oid]
                encoding, refs = _verify(store, kind, oid, data, raws)
                writer.add(kind, oid, data, encoding, refs)
            if len(writer):
                store.index.add_pack(writer.finish(), writer.size)
                installed += len(writer)
            else:
                writer.abort()
        except BaseException:
            writer.abort()
            raise
    return installed


def _references_first(ids: list[str], todo: dict[str, tuple[str, bytes]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(oid: str, depth: int) -> None:
        if oid in seen or oid not in todo or depth > 1024:
            return
        seen.add(oid)
        try:
            refs = parse_header(todo[oid][1][:4096]).refs
        except ValueError:
            refs = ()
        for ref in refs:
            visit(ref, depth + 1)
        order.append(oid)

    for oid in ids:
        visit(oid, 0)
    return order


def _verify(
    store: PackStore, kind: str, oid: str, data: bytes, raws: dict[str, np.ndarray]
) -> tuple[int, tuple[str, ...]]:
    if kind == CHUNK:

        def load_ref(ref: str) -> np.ndarray:
            return raws[ref] if ref in raws else store._chunk_raw(ref)[0]

        try:
            head = parse_header(data)
            raw = decode_chunk(data, load_ref)
        except (ValueError, KeyError) as exc:
            raise CorruptObjectError(oid, None, f"received chunk is invalid: {exc}") from None
        if hash_chunk(raw.data) != oid:
            raise CorruptObjectError(oid, None, "received chunk does not match its name")
        raws[oid] = raw
        return int(head.encoding), head.refs
    if kind == TENSOR:
        try:
            manifest = TensorManifest.decode(data)
        except ValueError as exc:
            raise CorruptObjectError(oid, None, f"received manifest is invalid: {exc}") from None
        hasher = TensorHasher(manifest.dtype, manifest.shape)
        for cid in manifest.chunks:
            if not store._has(CHUNK, cid):
                raise CorruptObjectError(oid, None, f"received tensor lacks chunk {cid}")
            hasher.update(store._chunk_raw(cid)[0].data)
        if hasher.hexdigest() != oid:
            raise CorruptObjectError(oid, None, "received tensor does not match its name")
        return NOT_A_CHUNK, ()
    if hash_blob(kind, data) != oid:
        raise CorruptObjectError(oid, None, f"received {kind} does not match its name")
    return NOT_A_CHUNK, ()

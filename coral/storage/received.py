"""Installing objects received from another store (a remote, a peer): verify, then keep.

Every record is checked against its BLAKE3 name before it becomes visible. Each received chunk
is decoded once: tensors are verified in delta-chain order (a tensor after the tensors its
chunks delta against), in parallel, and a decoded chunk is kept only while a tensor or chunk
still to verify needs it, so memory stays near one tensor per worker. Chunks and tensors then
go into one new pack (a tensor is never visible without its chunks), trees and tags into the
next, commits last. A record that fails its check is a CorruptObjectError and nothing of its
group is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from coral.core.hashing import TensorHasher, hash_blob, hash_chunk, is_hash
from coral.errors import CorruptObjectError, InvalidNameError, ObjectNotFoundError
from coral.storage.base import CHUNK, TENSOR
from coral.storage.chunk_format import ChunkHeader, decode_chunk, parse_header
from coral.storage.manifest import TensorManifest
from coral.storage.pack import KINDS, NOT_A_CHUNK, PackWriter
from coral.storage.store_stats import MAX_DEPTH  # the readers' limit: deeper is unreadable

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals

Record = tuple[str, str, bytes]  # (kind, id, stored bytes)


def install(store: StoreInternals, records: Iterable[Record]) -> int:
    """Verify and store `(kind, id, bytes)` records; returns how many were new."""
    todo: dict[str, tuple[str, bytes]] = {}
    for kind, oid, data in records:
        if kind not in KINDS or not is_hash(oid):
            raise InvalidNameError(f"not an object name: {kind}/{oid}")
        if not store._has(kind, oid):
            todo[oid] = (kind, data)
    data_ids = [o for o, (k, _) in todo.items() if k in (CHUNK, TENSOR)]
    blob_ids = [o for o, (k, _) in todo.items() if k not in (CHUNK, TENSOR, "commit")]
    commit_ids = [o for o, (k, _) in todo.items() if k == "commit"]
    installed = 0
    if data_ids:
        verified = _TensorVerifier(store, {o: todo[o] for o in data_ids}).run()
        installed += _write(
            store, [(todo[o][0], o, todo[o][1], enc, refs) for o, enc, refs in verified]
        )
    for group in (blob_ids, commit_ids):
        for oid in group:
            kind, data = todo[oid]
            if hash_blob(kind, data) != oid:
                raise CorruptObjectError(oid, None, f"received {kind} does not match its name")
        installed += _write(store, [(todo[o][0], o, todo[o][1], NOT_A_CHUNK, ()) for o in group])
    return installed


def _write(store: StoreInternals, rows: list[tuple[str, str, bytes, int, tuple[str, ...]]]) -> int:
    if not rows:
        return 0
    writer = PackWriter(store.backend, fsync=store.config.fsync)
    try:
        for kind, oid, data, encoding, refs in rows:
            writer.add(kind, oid, data, encoding, refs)
        store.index.add_pack(writer.finish(), writer.size)
    except BaseException:
        writer.abort()
        raise
    return len(rows)


class _TensorVerifier:
    """Decodes each received chunk once, checks it and the tensors built from it."""

    def __init__(self, store: StoreInternals, todo: dict[str, tuple[str, bytes]]) -> None:
        self.store = store
        self.chunks: dict[str, bytes] = {o: d for o, (k, d) in todo.items() if k == CHUNK}
        self.manifests: dict[str, TensorManifest] = {}
        for oid, (kind, data) in todo.items():
            if kind == TENSOR:
                try:
                    self.manifests[oid] = TensorManifest.decode(data)
                except ValueError as exc:
                    raise CorruptObjectError(
                        oid, None, f"received manifest is invalid: {exc}"
                    ) from None
        self.heads: dict[str, ChunkHeader] = {}
        for oid, data in self.chunks.items():
            try:
                self.heads[oid] = parse_header(data[:4096])
            except ValueError as exc:
                raise CorruptObjectError(oid, None, f"received chunk is invalid: {exc}") from None
        self.uses: dict[str, int] = dict.fromkeys(self.chunks, 0)
        for head in self.heads.values():
            for ref in head.refs:
                if ref in self.uses:
                    self.uses[ref] += 1
        for manifest in self.manifests.values():
            for cid in manifest.chunks:
                if cid in self.uses:
                    self.uses[cid] += 1
        self.raws: dict[str, Future[np.ndarray]] = {}
        self.decoded: set[str] = set()  # verified at least once (raws may have let go of it)
        self.lock = threading.Lock()

    def run(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """Verify everything; (id, chunk encoding, references) in a safe writing order."""
        chunk_order = self._chunk_order()
        tensors = self._tensor_order(chunk_order)
        for fut in [self.store.pool.submit(self._verify_tensor, t) for t in tensors]:
            fut.result()
        for cid in chunk_order:  # chunks no received tensor uses
            if cid not in self.decoded:
                self._raw(cid, release=False)
                with self.lock:
                    if self.uses[cid] <= 0:
                        self.raws.pop(cid, None)
        out = [(c, int(self.heads[c].encoding), tuple(self.heads[c].refs)) for c in chunk_order]
        return out + [(t, NOT_A_CHUNK, ()) for t in tensors]

    # -- ordering --------------------------------------------------------------------------
    def _chunk_order(self) -> list[str]:
        """Chunks with their references first; a cycle, or a chain deeper than readers follow
        (counting stored bases), is damage."""
        order: list[str] = []
        depth: dict[str, int] = {}  # chain length down to a FULL chunk, once known
        visiting: set[str] = set()
        for start in self.chunks:
            stack: list[tuple[str, int]] = [(start, 0)]
            while stack:
                oid, i = stack.pop()
                refs = self.heads[oid].refs
                if i == 0:
                    if oid in depth:
                        continue
                    if oid in visiting:
                        raise CorruptObjectError(oid, None, "received chunks reference in a cycle")
                    visiting.add(oid)
                if i < len(refs):
                    stack.append((oid, i + 1))
                    ref = refs[i]
                    if ref in self.chunks and ref not in depth:
                        if ref in visiting:
                            raise CorruptObjectError(
                                oid, None, "received chunks reference in a cycle"
                            )
                        stack.append((ref, 0))
                    continue
                visiting.discard(oid)
                depth[oid] = 1 + max((self._base_depth(r, depth) for r in refs), default=-1)
                if depth[oid] > MAX_DEPTH:
                    raise CorruptObjectError(
                        oid, None, f"received delta chain is deeper than {MAX_DEPTH}"
                    )
                order.append(oid)
        return order

    def _base_depth(self, ref: str, depth: dict[str, int]) -> int:
        if ref in depth:
            return depth[ref]
        if self.store._has(CHUNK, ref):
            try:
                return self.store.chain_depth(ref)
            except (CorruptObjectError, ObjectNotFoundError):
                return 0
        return 0  # neither received nor stored: decoding it says so

    def _tensor_order(self, chunk_order: list[str]) -> list[str]:
        """Tensors in the order their first new chunk is decoded (delta bases first)."""
        rank = {c: i for i, c in enumerate(chunk_order)}
        size = len(rank) + 1
        return sorted(
            self.manifests,
            key=lambda t: max((rank.get(c, -1) for c in self.manifests[t].chunks), default=size),
        )

    # -- decoding ------------------------------------------------------------------------------
    def _verify_tensor(self, tensor_id: str) -> None:
        manifest = self.manifests[tensor_id]
        hasher = TensorHasher(manifest.dtype, manifest.shape)
        for i, cid in enumerate(manifest.chunks):
            if cid in self.chunks:
                raw = self._raw(cid)
            elif self.store._has(CHUNK, cid):
                raw = self.store._chunk_raw(cid)[0]
            else:
                raise CorruptObjectError(tensor_id, None, f"received tensor lacks chunk {cid}")
            start, end = manifest.chunk_span(i)
            if raw.nbytes != end - start:
                raise CorruptObjectError(
                    tensor_id,
                    None,
                    f"received manifest puts {end - start} bytes where chunk {cid} has "
                    f"{raw.nbytes}",
                )
            hasher.update(raw.data)
        if hasher.hexdigest() != tensor_id:
            raise CorruptObjectError(tensor_id, None, "received tensor does not match its name")

    def _raw(self, chunk_id: str, *, release: bool = True) -> np.ndarray:
        """A received chunk's verified raw bytes (its undecoded bases first, deepest first,
        so decoding never recurses down a chain); `release` counts one use of it."""
        if chunk_id not in self.raws:
            for base in self._undecoded_bases(chunk_id):
                if chunk_id in self.raws:
                    break  # another thread got to it first
                self._get(base)
        raw = self._get(chunk_id)
        if release:
            self._release(chunk_id)
        return raw

    def _get(self, chunk_id: str) -> np.ndarray:
        """Decode a chunk once, whichever thread asks first; the others wait for it."""
        with self.lock:
            fut = self.raws.get(chunk_id)
            owner = fut is None
            if fut is None:
                fut = self.raws[chunk_id] = Future()
        if owner:
            try:
                fut.set_result(self._decode(chunk_id))
                with self.lock:
                    self.decoded.add(chunk_id)
            except BaseException as exc:
                fut.set_exception(exc)
        return fut.result()

    def _undecoded_bases(self, chunk_id: str) -> list[str]:
        order: list[str] = []
        seen = {chunk_id}
        stack: list[tuple[str, bool]] = [(chunk_id, False)]
        while stack:
            oid, expanded = stack.pop()
            if expanded:
                order.append(oid)
                continue
            if oid != chunk_id:
                stack.append((oid, True))
            for ref in self.heads[oid].refs:
                if ref in self.chunks and ref not in self.raws and ref not in seen:
                    seen.add(ref)
                    stack.append((ref, False))
        return order

    def _release(self, chunk_id: str) -> None:
        with self.lock:
            self.uses[chunk_id] -= 1
            fut = self.raws.get(chunk_id)
            if self.uses[chunk_id] <= 0 and fut is not None and fut.done():
                del self.raws[chunk_id]  # asked for again (a race): decoded again

    def _decode(self, chunk_id: str) -> np.ndarray:
        def load_ref(ref: str) -> np.ndarray:
            if ref in self.chunks:
                return self._raw(ref)
            try:
                return self.store._chunk_raw(ref)[0]
            except ObjectNotFoundError:
                raise CorruptObjectError(
                    chunk_id, None, f"received chunk's delta base {ref} was neither sent nor stored"
                ) from None

        try:
            raw = decode_chunk(self.chunks[chunk_id], load_ref)
        except (ValueError, KeyError) as exc:
            raise CorruptObjectError(chunk_id, None, f"received chunk is invalid: {exc}") from None
        if hash_chunk(raw.data) != chunk_id:
            raise CorruptObjectError(chunk_id, None, "received chunk does not match its name")
        return raw

"""`PackStore`: the chunked tensor store over a byte backend, its objects in immutable packs.

Layout under the backend (docs/FORMAT.md): `packs/<id>.pack` (records + trailing index) and
`tmp/` for writes in progress; loose files of the first release are still read (`loose.py`).

Writes: tensors are cut into element-aligned chunks, encoded in a thread pool (a bounded
number in flight) and appended to one new pack per call, fsynced once. A chunk whose same-named
predecessor is FULL is written FULL with a hint; the background repack (`repack.py`) then turns
the predecessor into a reverse delta against it, so the newest version stays one decode away
without any file being rewritten.
Reads: chunks decode in parallel straight into the output buffer, each checked against the
XXH3-128 of its decoded bytes; `verify` (fsck) re-hashes everything against the BLAKE3 names.
"""

from __future__ import annotations

import builtins
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coral.core.dtypes import numpy_dtype
from coral.core.hashing import TensorHasher, hash_blob, hash_chunk, is_hash
from coral.core.lazy_imports import lazy_module
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.errors import CorruptObjectError, InvalidNameError, ObjectNotFoundError
from coral.storage import chunk_reader, chunk_tasks, store_stats
from coral.storage.backend import Backend, KeyNotFoundError, LocalBackend
from coral.storage.base import CHUNK, TENSOR, GCReport, ObjectStats, StoreStats, WeightStore
from coral.storage.chunk_cache import ChunkCache
from coral.storage.chunk_encoder import EncodedChunk, encode_best, encode_full
from coral.storage.chunk_format import (
    ChunkEncoding,
    ChunkHeader,
    parse_header,
)
from coral.storage.chunk_plan import ChunkJob, plan_chunks, reference_for
from coral.storage.cluster import ClusterSettings, cluster_settings
from coral.storage.config import StoreConfig
from coral.storage.encode_pool import EncodePool, open_pool
from coral.storage.loose import LOOSE_KINDS, LooseObjects
from coral.storage.maintenance import BackgroundRepack
from coral.storage.manifest import TensorManifest
from coral.storage.pack import KINDS, NOT_A_CHUNK, PackWriter, pack_key, record_checksum
from coral.storage.pack_files import PackFiles
from coral.storage.pack_index import Location, PackIndex
from coral.storage.promisor import Promisor

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

_MAX_DECODE_DEPTH = 256  # deeper than any chain the store writes: a cycle or damage


class PackStore(WeightStore):
    """Tensors and small objects in immutable pack files over a `Backend`."""

    def __init__(
        self, root: Path | str, config: StoreConfig | None = None, *, backend: Backend | None = None
    ) -> None:
        self.root = Path(root)
        self.config = config or StoreConfig()
        self.backend = backend or LocalBackend(self.root, fsync=self.config.fsync)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = PackIndex(self.backend)
        self.index.refresh()
        self.loose = LooseObjects(self.root)
        self._cache = ChunkCache(self.config.cache_bytes)
        self._pool: EncodePool | None = None
        self._pool_lock = threading.Lock()
        self.cluster = cluster_settings({})  # the Dask scheduler, if any (repo_config sets it)
        self._packs = PackFiles(lambda pack_id: self.backend.path(pack_key(pack_id)))
        self._write_lock = threading.Lock()
        self.maintenance = BackgroundRepack(self.repack)
        self.repository: Any = None  # the repository owning this store, if any (for remotes)
        self.promisor = Promisor(self.root)  # where tensors of a partial clone come from

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def pool(self) -> EncodePool:
        """Where chunk work runs: local threads, or `self.cluster`'s Dask workers (connected
        on first use; see `encode_pool`)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = open_pool(self.cluster, self.config.worker_count)
            return self._pool

    def use_cluster(self, settings: ClusterSettings) -> EncodePool:
        """Run chunk work as `settings` say from now on, connecting now (ClusterError when
        the scheduler cannot be reached)."""
        with self._pool_lock:
            old, self._pool, self.cluster = self._pool, None, settings
        if old is not None:
            old.shutdown()
        return self.pool

    def close(self) -> None:
        """Finish background maintenance, stop worker threads, close pack files."""
        self.wait_for_maintenance()
        with self._pool_lock:
            pool = self._pool
        if pool is not None:  # unlocked: a task still running may ask for `self.pool`
            pool.shutdown()
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
        self._packs.close()

    def retire_pack(self, pack_id: str) -> None:
        """Forget the open file of a pack that is being deleted."""
        self._packs.forget(pack_id)

    def kinds(self) -> builtins.list[str]:
        """Every object kind the store can hold."""
        return list(KINDS)

    def where(self, kind: str, object_id: str) -> str | None:
        """Where an object's record lives, for messages: `pack <path> @ offset`."""
        loc = self.index.get(object_id)
        if loc is not None:
            return f"{self.backend.describe()}/{pack_key(loc.pack_id)} @ {loc.offset}"
        if self.loose.has(kind, object_id):
            return str(self.loose.path(kind, object_id))
        return None

    def _check_id(self, kind: str, object_id: str) -> None:
        if not isinstance(object_id, str) or not is_hash(object_id) or not kind.isidentifier():
            raise InvalidNameError(f"not an object name: {kind}/{object_id}")

    # -- records -------------------------------------------------------------------------------
    def _locate(self, object_id: str) -> Location | None:
        loc = self.index.get(object_id)
        if loc is None:
            self.index.refresh()  # another process may have written it
            loc = self.index.get(object_id)
        return loc

    def _read_at(self, loc: Location) -> bytes:
        """A record's bytes from its pack (re-reading the index while repacks move it away)."""
        for _ in range(8):  # other processes' repacks may move it more than once meanwhile
            try:
                return self._pread(loc)
            except (FileNotFoundError, KeyNotFoundError):
                self.index.refresh(force=True)
                if (fresh := self.index.get(loc.entry.object_id)) is None:
                    raise ObjectNotFoundError(
                        f"{loc.kind} {loc.entry.object_id} is not in the store ({self.root})"
                    ) from None
                loc = fresh
        return self._pread(loc)

    def _pread(self, loc: Location) -> bytes:
        if not self.backend.capabilities.local_path:
            return self.backend.get(pack_key(loc.pack_id), loc.offset, loc.length)
        data = self._packs.pread(loc.pack_id, loc.length, loc.offset)
        if len(data) != loc.length:
            raise CorruptObjectError(
                loc.entry.object_id, self.where(loc.kind, loc.entry.object_id), "record truncated"
            )
        return data

    def read_record(self, kind: str, object_id: str, *, check: bool = True) -> bytes:
        """An object's stored bytes (checked against the pack index's record checksum)."""
        self._check_id(kind, object_id)
        loc = self._locate(object_id)
        if loc is not None:
            data = self._read_at(loc)
            if check and record_checksum(data) != loc.entry.checksum:
                raise CorruptObjectError(
                    object_id, self.where(kind, object_id), "record does not match its checksum"
                )
            return data
        loose = self.loose.read(kind, object_id)
        if loose is None:
            raise ObjectNotFoundError(f"{kind} {object_id} is not in the store ({self.root})")
        return loose

    def _has(self, kind: str, object_id: str) -> bool:
        """Known to this process (no look for other writers' packs: for dedup checks)."""
        if not is_hash(object_id):
            return False
        loc = self.index.get(object_id)
        return (loc is not None and loc.kind == kind) or self.loose.has(kind, object_id)

    def _has_fresh(self, kind: str, object_id: str) -> bool:
        """Stored, by this process or another (the index is refreshed on a miss)."""
        if self._has(kind, object_id):
            return True
        if not is_hash(object_id):
            return False
        self.index.refresh()
        return self._has(kind, object_id)

    def _chunk_refs(self, chunk_id: str) -> tuple[int, tuple[str, ...]]:
        """(encoding, references) of a chunk, from the index or its header."""
        loc = self.index.get(chunk_id)
        if loc is not None and loc.encoding != NOT_A_CHUNK:
            return loc.encoding, loc.refs
        head = self._header(chunk_id)
        return int(head.encoding), head.refs

    def _header(self, chunk_id: str) -> ChunkHeader:
        data = self.read_record(CHUNK, chunk_id, check=False)
        try:
            return parse_header(data[:4096])
        except ValueError as exc:
            raise CorruptObjectError(chunk_id, self.where(CHUNK, chunk_id), str(exc)) from None

    # -- tensors: write ------------------------------------------------------------------------
    def store(self, weight: WeightTensor, reference: str | None = None) -> str:
        return self.store_many([(weight, reference)])[0]

    def store_many(self, items: Iterable[tuple[WeightTensor, str | None]]) -> builtins.list[str]:
        """Store tensors into one new pack; chunks encode in parallel, a bounded window of them
        in flight; the pack is fsynced once and visible only when whole."""
        ids: builtins.list[str] = []
        with self._write_lock:
            writer = PackWriter(self.backend, fsync=self.config.fsync)
            try:
                self._store_into(writer, items, ids)
                if len(writer):
                    contents = writer.finish()
                    self.index.add_pack(contents, writer.size)
                else:
                    writer.abort()
            except BaseException:
                writer.abort()
                raise
        return ids

    def _store_into(
        self,
        writer: PackWriter,
        items: Iterable[tuple[WeightTensor, str | None]],
        ids: builtins.list[str],
    ) -> None:
        window: deque[tuple[Future[EncodedChunk], ChunkJob]] = deque()
        manifests: deque[tuple[str, TensorManifest, set[str]]] = deque()
        in_flight: set[str] = set()
        limit = 2 * self.pool.workers  # connects to a cluster before anything is written

        def drain(keep: int) -> None:
            while len(window) > keep:
                future, job = window.popleft()
                enc = future.result()
                writer.add(CHUNK, enc.chunk_id, enc.data, int(enc.encoding), enc.refs)
                if enc.encoding is ChunkEncoding.FULL and job.ref_id and self._is_full(job.ref_id):
                    writer.hint(job.ref_id, enc.chunk_id)
                in_flight.discard(enc.chunk_id)
                job.done()
            while manifests and not (manifests[0][2] & in_flight):
                tid, manifest, _ = manifests.popleft()
                writer.add(TENSOR, tid, manifest.encode())

        for weight, reference in items:
            tid = weight.compute_hash()
            ids.append(tid)
            if tid in writer or any(t == tid for t, _, _ in manifests) or self._has(TENSOR, tid):
                continue
            chunk_ids: builtins.list[str] = []
            chunk_bytes, jobs = plan_chunks(self, weight, reference)
            waiting: set[str] = set()
            for job in jobs:  # planned as they come: a mapped tensor is read chunk by chunk
                chunk_ids.append(job.chunk_id)
                if job.chunk_id in in_flight:
                    waiting.add(job.chunk_id)
                    job.done()
                    continue
                if job.chunk_id in writer or self._has(CHUNK, job.chunk_id):
                    job.done()
                    continue
                if job.ref_id is not None and job.ref_id in in_flight:
                    drain(0)  # its reference is still being encoded
                drain(limit - 1)
                window.append((self.pool.submit(self._encode_new, job), job))
                in_flight.add(job.chunk_id)
                waiting.add(job.chunk_id)
            dtype = weight.metadata.dtype_name
            manifest = TensorManifest(dtype, weight.shape, chunk_bytes, tuple(chunk_ids))
            manifests.append((tid, manifest, waiting))
            drain(limit)
        drain(0)

    def _is_full(self, chunk_id: str) -> bool:
        try:
            return self._chunk_refs(chunk_id)[0] == int(ChunkEncoding.FULL)
        except (ObjectNotFoundError, CorruptObjectError):
            return False

    def _encode_new(self, job: ChunkJob) -> EncodedChunk:
        """FULL when the reference is FULL (the repack reverses it later), else the best delta."""
        config = self.config
        ref = reference_for(self, job)
        reverse = config.reverse_deltas and config.mode != "fast"
        if ref is None or (reverse and ref.depth == 0 and self._is_full(ref.chunk_id)):
            enc = self.pool.run(encode_full, job.chunk_id, job.raw, job.itemsize, job.dtype, config)
        else:
            enc = self.pool.run(
                encode_best, job.chunk_id, job.raw, job.itemsize, job.dtype, ref, config
            )
        if not job.mapped:  # a mapped tensor streams from its file: nothing of it is kept
            self._cache.put(job.chunk_id, job.raw.copy(), enc.depth)
        return enc

    # -- tensors: read -------------------------------------------------------------------------
    def _manifest(self, tensor_id: str, *, fetch: bool = True) -> TensorManifest:
        """A tensor's manifest (`fetch`: from the promisor when a partial clone lacks it)."""
        try:
            data = self.read_record(TENSOR, tensor_id)
        except ObjectNotFoundError:
            if not fetch or not self.fetch_promised([tensor_id]):
                raise
            data = self.read_record(TENSOR, tensor_id)
        try:
            return TensorManifest.decode(data)
        except ValueError as exc:
            raise CorruptObjectError(tensor_id, self.where(TENSOR, tensor_id), str(exc)) from None

    def fetch_promised(self, tensor_ids: Iterable[str]) -> bool:
        """Fetch tensors this store lacks from its promisor (see `promisor.py`)."""
        return self.promisor.fetch_missing(self, tensor_ids)

    def manifest(self, tensor_id: str) -> TensorManifest:
        """The tensor's manifest (dtype, shape, chunk ids) without reading its data."""
        return self._manifest(tensor_id)

    def _chunk_raw(self, chunk_id: str) -> tuple[np.ndarray, int]:
        """A chunk's verified raw bytes and chain depth (decoding its references as needed)."""
        cached = self._cache.get(chunk_id)
        if cached is not None:
            return cached
        raw = self._decode(chunk_id)
        depth = self.chain_depth(chunk_id)
        self._cache.put(chunk_id, raw, depth)
        return raw, depth

    def _decode(
        self, chunk_id: str, out: np.ndarray | None = None, *, strict: bool = False
    ) -> np.ndarray:
        """Decode and verify a chunk (see `chunk_reader`; on a cluster, `chunk_tasks`)."""
        if self.pool.remote and not strict:
            return chunk_tasks.decode_remote(self, chunk_id, out)
        return chunk_reader.decode(self, chunk_id, out, strict=strict)

    def load(self, tensor_id: str, name: str | None = None, *, lazy: bool = False) -> WeightTensor:
        manifest = self._manifest(tensor_id)
        meta = WeightMetadata(
            name=name or "", shape=manifest.shape, dtype=numpy_dtype(manifest.dtype), hash=tensor_id
        )
        if lazy:  # read on first use: straight from the pack where the encoding allows
            return WeightTensor(
                metadata=meta,
                loader=lambda: self._mapped_or_read(tensor_id, manifest),
            )
        return WeightTensor(self._read_tensor(tensor_id, manifest), meta)

    def _read_tensor(
        self,
        tensor_id: str,
        manifest: TensorManifest,
        *,
        parallel: bool = True,
        full_check: bool = False,
    ) -> np.ndarray:
        """Decode every chunk into one buffer, each verified by its decoded-bytes checksum
        (`full_check`: and the whole tensor against its BLAKE3 name)."""
        out = np.empty(manifest.nbytes, dtype=np.uint8)
        jobs = [(cid, out[slice(*manifest.chunk_span(i))]) for i, cid in enumerate(manifest.chunks)]
        self.check_chunks_present(tensor_id, manifest)
        if parallel and len(jobs) > 1:
            for fut in [self.pool.submit(self._decode, c, o) for c, o in jobs]:
                fut.result()
        else:
            for cid, piece in jobs:
                self._decode(cid, piece)
        if full_check and self._tensor_hash(manifest, out) != tensor_id:
            raise CorruptObjectError(
                tensor_id, self.where(TENSOR, tensor_id), "tensor content does not match its hash"
            )
        return out.view(numpy_dtype(manifest.dtype)).reshape(manifest.shape)

    def _mapped_or_read(self, tensor_id: str, manifest: TensorManifest) -> np.ndarray:
        mapped = self.mapped(tensor_id)
        return mapped if mapped is not None else self._read_tensor(tensor_id, manifest)

    def check_chunks_present(self, tensor_id: str, manifest: TensorManifest) -> None:
        """CorruptObjectError naming the first chunk of the tensor that the store lacks."""
        missing = [c for c in dict.fromkeys(manifest.chunks) if not self._has(CHUNK, c)]
        if missing:
            self.index.refresh()
            missing = [c for c in missing if not self._has(CHUNK, c)]
        if missing:
            raise CorruptObjectError(
                tensor_id,
                self.where(TENSOR, tensor_id),
                f"{len(missing)} of its chunks are missing (first: {missing[0]})",
            )

    def iter_chunks(self, tensor_id: str) -> Iterator[np.ndarray]:
        """A tensor's bytes chunk by chunk in order, each verified, the whole checked against
        its name before the last is given (a few chunks in memory: see `stream_read`)."""
        from coral.storage.stream_read import iter_chunks

        return iter_chunks(self, tensor_id)

    def mapped(self, tensor_id: str) -> np.ndarray | None:
        """The tensor memory-mapped straight from its pack, when its encoding allows it (one
        FULL chunk stored raw), verified once; else None (see `stream_map`)."""
        from coral.storage.stream_map import map_tensor

        return map_tensor(self, tensor_id)

    @staticmethod
    def _tensor_hash(manifest: TensorManifest, raw: np.ndarray) -> str:
        hasher = TensorHasher(manifest.dtype, manifest.shape)
        hasher.update(raw.data)
        return hasher.hexdigest()

    def load_many(
        self, tensor_ids: Iterable[str], *, lazy: bool = False
    ) -> builtins.list[WeightTensor]:
        """Load several tensors, decoding their chunks in parallel (each one verified)."""
        ids = builtins.list(tensor_ids)
        if not lazy and self.promisor.configured:
            self.fetch_promised(ids)  # one transfer for every tensor the clone lacks
        if lazy or len(ids) <= 1:
            return [self.load(t, lazy=lazy) for t in ids]
        manifests = [self._manifest(t) for t in ids]
        arrays = self.pool.map(
            lambda tm: self._read_tensor(tm[0], tm[1], parallel=False),
            zip(ids, manifests, strict=True),
        )
        return [
            WeightTensor(
                arr, WeightMetadata(name="", shape=m.shape, dtype=numpy_dtype(m.dtype), hash=t)
            )
            for t, m, arr in zip(ids, manifests, arrays, strict=True)
        ]

    def exists(self, tensor_id: str) -> bool:
        return self._has_fresh(TENSOR, tensor_id)

    def delete(self, tensor_id: str) -> bool:
        """Packs are immutable: an unreferenced tensor goes at the next `gc`."""
        return False

    def list(self) -> builtins.list[str]:
        return self.list_blobs(TENSOR)

    # -- statistics ----------------------------------------------------------------------------
    def chain_depth(self, chunk_id: str) -> int:
        """Delta steps from a chunk down to FULL (longest path), through packed and loose chunks."""
        return store_stats.chain_depth(self, chunk_id)

    def chunk_info(self, chunk_id: str) -> tuple[int, str, int]:
        """(stored bytes, encoding label, chain depth) of one chunk."""
        return store_stats.chunk_info(self, chunk_id)

    def stats(self, tensor_id: str | None = None) -> ObjectStats | StoreStats:
        """Settled figures: pending background maintenance finishes first."""
        self.wait_for_maintenance()
        if tensor_id is not None:
            return self.tensor_stats(tensor_id)
        return self.store_stats()

    def tensor_stats(self, tensor_id: str) -> ObjectStats:
        return store_stats.tensor_stats(self, tensor_id)

    def store_stats(self) -> StoreStats:
        return store_stats.store_stats(self)

    def files(self) -> builtins.list[str]:
        """Keys of every pack file (what `coral stats` counts and remotes move)."""
        return [pack_key(p.pack_id) for p in self.index.packs()]

    # -- blobs ---------------------------------------------------------------------------------
    def put_blob(self, kind: str, data: bytes) -> str:
        return self.put_blobs([(kind, data)])[0]

    def put_blobs(self, blobs: Iterable[tuple[str, bytes]]) -> builtins.list[str]:
        """Store small objects (trees, commits, ...) together in one durable pack."""
        ids = []
        with self._write_lock:
            writer = PackWriter(self.backend, fsync=self.config.fsync)
            try:
                for kind, data in blobs:
                    blob_id = hash_blob(kind, data)
                    ids.append(blob_id)
                    if not self._has(kind, blob_id):
                        writer.add(kind, blob_id, data)
                if len(writer):
                    self.index.add_pack(writer.finish(), writer.size)
                else:
                    writer.abort()
            except BaseException:
                writer.abort()
                raise
        return ids

    def get_blob(self, kind: str, blob_id: str) -> bytes:
        data = self.read_record(kind, blob_id)
        if hash_blob(kind, data) != blob_id:
            raise CorruptObjectError(
                blob_id, self.where(kind, blob_id), f"{kind} content does not match its hash"
            )
        return data

    def has_blob(self, kind: str, blob_id: str) -> bool:
        return self._has_fresh(kind, blob_id)

    def list_blobs(self, kind: str) -> builtins.list[str]:
        self.index.refresh()
        ids = set(self.index.ids(kind))
        if kind in LOOSE_KINDS:
            ids.update(self.loose.ids(kind))
        return sorted(ids)

    # -- raw transfer --------------------------------------------------------------------------
    def read_raw(self, kind: str, object_id: str) -> bytes:
        return self.read_record(kind, object_id)

    def dependencies(self, kind: str, object_id: str) -> builtins.list[tuple[str, str]]:
        if kind == TENSOR:
            return [(CHUNK, c) for c in dict.fromkeys(self._manifest(object_id).chunks)]
        if kind == CHUNK:
            return [(CHUNK, r) for r in self._chunk_refs(object_id)[1]]
        return []

    def write_raw(self, kind: str, object_id: str, data: bytes) -> None:
        """Install an object from another store after verifying it against its BLAKE3 name."""
        self.install([(kind, object_id, data)])

    def install(self, records: Iterable[tuple[str, str, bytes]]) -> int:
        """Verify received records against their names and store them (see `received.py`)."""
        from coral.storage.received import install

        return install(self, records)

    # -- maintenance ---------------------------------------------------------------------------
    def live_chunks(self, tensors: Iterable[str]) -> set[str]:
        """Every chunk the given tensors need, delta references included (see repack.py)."""
        from coral.storage.repack import live_chunks

        return live_chunks(self, tensors)

    def repack(self) -> dict[str, int]:
        """Turn superseded chunks into reverse deltas and compact packs (see repack.py)."""
        from coral.storage.repack import repack

        return repack(self)

    def schedule_maintenance(self) -> None:
        """Repack in the background (see `BackgroundRepack`); `close()` waits for it."""
        self.maintenance.schedule()

    def wait_for_maintenance(self) -> None:
        """Block until background maintenance is done (its failure costs space, not data)."""
        self.maintenance.wait()

    def gc(
        self, live_tensors: set[str], live_blobs: dict[str, set[str]], grace_seconds: float = 0.0
    ) -> GCReport:
        """Repack, then drop unreachable objects older than `grace_seconds` (kinds absent from
        `live_blobs` are kept) and convert loose files to packs."""
        from coral.storage.repack import collect

        self.wait_for_maintenance()
        return collect(self, live_tensors, live_blobs, grace_seconds)

    def verify(self, kind: str, object_id: str) -> None:
        """Full check: record checksum, and BLAKE3 of the decoded content against the name."""
        if kind == TENSOR:
            self._read_tensor(object_id, self._manifest(object_id), full_check=True)
        elif kind == CHUNK:
            self.read_record(CHUNK, object_id)  # record checksum
            self._cache.discard(object_id)
            raw = self._decode(object_id, strict=True)
            if hash_chunk(raw.data) != object_id:
                raise CorruptObjectError(
                    object_id, self.where(CHUNK, object_id), "content does not match its hash"
                )
        else:
            self.get_blob(kind, object_id)

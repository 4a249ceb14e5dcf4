"""`LocalStore`: the content-addressed object store on the local filesystem.

Layout under `root`: `<kind>/<2 hex>/<62 hex>` for every object kind ("tensor", "chunk",
"tree", "commit", ...) and `tmp/` for writes in progress. See docs/FORMAT.md.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral.core.dtypes import is_float, numpy_dtype
from coral.core.hashing import TensorHasher, hash_blob, hash_chunk, is_hash
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.delta import transforms
from coral.delta.planes import join_planes, split_planes
from coral.errors import CorruptObjectError, InvalidNameError, ObjectNotFoundError
from coral.storage.atomic import atomic_write, fsync_dirs
from coral.storage.base import CHUNK, TENSOR, GCReport, ObjectStats, StoreStats, WeightStore
from coral.storage.chunk_cache import ChunkCache
from coral.storage.chunk_format import (
    ChunkEncoding,
    ChunkHeader,
    chunk_planes,
    decode_chunk,
    encode_chunk,
    parse_header,
)
from coral.storage.config import StoreConfig
from coral.storage.manifest import TensorManifest

_DELTA_GOOD_ENOUGH = 0.5  # a delta this small (vs raw) is not worth comparing with FULL


@dataclass
class _ChunkJob:
    """One chunk to write: its raw bytes and the reference chunks it may delta against."""

    chunk_id: str
    raw: np.ndarray
    dtype: str
    itemsize: int
    ref_id: str | None


_OpenTensor = tuple[str, TensorManifest, "list[Future[Path | None]]"]


class LocalStore(WeightStore):
    """Objects as files; tensors chunked, each chunk FULL or a delta against a reference chunk."""

    def __init__(self, root: Path | str, config: StoreConfig | None = None) -> None:
        self.root = Path(root)
        self.config = config or StoreConfig()
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._cache = ChunkCache(self.config.cache_bytes)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------------
    def path_of(self, kind: str, object_id: str) -> Path:
        """File of an object (whether or not it exists)."""
        if not kind.isidentifier() or not is_hash(object_id):
            raise InvalidNameError(f"not an object name: {kind}/{object_id}")
        return self.root / kind / object_id[:2] / object_id[2:]

    def _ids(self, kind: str) -> Iterator[str]:
        base = self.root / kind
        if not base.is_dir():
            return
        for sub in sorted(base.iterdir()):
            if len(sub.name) == 2 and sub.is_dir():
                for f in sorted(sub.iterdir()):
                    oid = sub.name + f.name
                    if is_hash(oid):
                        yield oid

    def _read_file(self, kind: str, object_id: str) -> bytes:
        path = self.path_of(kind, object_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(
                f"{kind} {object_id} is not in the store ({self.root})"
            ) from None

    def _write(self, kind: str, object_id: str, data: bytes | memoryview) -> Path:
        path = self.path_of(kind, object_id)
        atomic_write(path, data, self.tmp_dir, fsync=self.config.fsync)
        return path.parent

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.config.worker_count, thread_name_prefix="coral-store"
                )
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (the store stays usable; they restart on demand)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    # -- tensors: write ------------------------------------------------------------------------
    def store(self, weight: WeightTensor, reference: str | None = None) -> str:
        return self.store_many([(weight, reference)])[0]

    def store_many(self, items: Iterable[tuple[WeightTensor, str | None]]) -> builtins.list[str]:
        """Store tensors, encoding chunks of several tensors in parallel (a bounded number in
        flight); each manifest is written once its own chunks are durable."""
        ids: builtins.list[str] = []
        dirs: set[Path | None] = set()
        window: deque[Future[Path | None]] = deque()
        open_tensors: deque[_OpenTensor] = deque()  # chunks in flight, manifest not yet written
        limit = 2 * self.config.worker_count

        def finish(all_: bool) -> None:
            while open_tensors and (all_ or all(f.done() for f in open_tensors[0][2])):
                tid, manifest, futures = open_tensors.popleft()
                dirs.update(f.result() for f in futures)
                dirs.add(self._write(TENSOR, tid, manifest.encode()))

        for weight, reference in items:
            tid = weight.compute_hash()
            ids.append(tid)
            if any(t in (tid, reference) for t, _, _ in open_tensors):
                finish(all_=True)  # a duplicate or a reference still being written
            if self.exists(tid):
                continue
            manifest, jobs = self._plan(weight, reference)
            futures = []
            for job in jobs:
                while len(window) >= limit:
                    window.popleft().result()
                futures.append(self.pool.submit(self._write_chunk, job))
                window.append(futures[-1])
            open_tensors.append((tid, manifest, futures))
            finish(all_=False)
        finish(all_=True)
        dirs.discard(None)
        if self.config.fsync:
            written = [d for d in dirs if d is not None]
            fsync_dirs([*written, *(d.parent for d in written)])
        return ids

    def _plan(
        self, weight: WeightTensor, reference: str | None
    ) -> tuple[TensorManifest, list[_ChunkJob]]:
        dtype = weight.metadata.dtype_name
        itemsize = weight.dtype.itemsize
        chunk_bytes = max(1, self.config.chunk_bytes // itemsize) * itemsize
        raw = weight.data.reshape(-1).view(np.uint8)
        ref_chunks = self._reference_chunks(reference, dtype, raw.nbytes, chunk_bytes)
        jobs = []
        for i, start in enumerate(range(0, raw.nbytes, chunk_bytes)):
            piece = raw[start : start + chunk_bytes]
            ref_id = ref_chunks[i] if ref_chunks else None
            jobs.append(_ChunkJob(hash_chunk(piece.data), piece, dtype, itemsize, ref_id))
        manifest = TensorManifest(dtype, weight.shape, chunk_bytes, tuple(j.chunk_id for j in jobs))
        return manifest, jobs

    def _reference_chunks(
        self, reference: str | None, dtype: str, nbytes: int, chunk_bytes: int
    ) -> tuple[str, ...] | None:
        if reference is None or not self.exists(reference):
            return None
        try:
            ref = self._manifest(reference)
        except CorruptObjectError:
            return None
        if ref.dtype != dtype or ref.nbytes != nbytes or ref.chunk_bytes != chunk_bytes:
            return None
        return ref.chunks

    def _write_chunk(self, job: _ChunkJob) -> Path | None:
        if self.path_of(CHUNK, job.chunk_id).exists():
            return None
        if self.config.reverse_deltas:
            reverse = self._reverse_candidate(job)
            if reverse is not None:
                ref_id, ref_raw, run, ref_size = reverse
                if run + 1 < self.config.max_chain_depth:
                    return self._write_reversed(job, ref_id, ref_raw, run, ref_size)
                return self._write_full(job)  # the run is long enough: start a new one
        data, depth = self._encode_best(job)
        parent = self._write(CHUNK, job.chunk_id, data)
        self._cache.put(job.chunk_id, job.raw.copy(), depth)
        return parent

    def _write_full(self, job: _ChunkJob, run: int = 0) -> Path:
        data = encode_chunk(
            job.raw, job.itemsize, ChunkEncoding.FULL, self.config.codec, dtype=job.dtype, depth=run
        )
        parent = self._write(CHUNK, job.chunk_id, data)
        self._cache.put(job.chunk_id, job.raw.copy(), 0)
        return parent

    def _reverse_candidate(self, job: _ChunkJob) -> tuple[str, np.ndarray, int, int] | None:
        """(id, raw, run, stored size) of the reference chunk when it is FULL and the same size."""
        if job.ref_id is None or job.ref_id == job.chunk_id:
            return None
        try:
            head = self._header(job.ref_id)
            size = self.path_of(CHUNK, job.ref_id).stat().st_size
            if head.encoding is not ChunkEncoding.FULL or head.raw_len != job.raw.nbytes:
                return None
            raw, _ = self._chunk_raw(job.ref_id)
        except (OSError, ValueError, ObjectNotFoundError, CorruptObjectError):
            return None
        return job.ref_id, raw, head.depth, size

    def _write_reversed(
        self, job: _ChunkJob, ref_id: str, ref_raw: np.ndarray, run: int, ref_size: int
    ) -> Path:
        """Write the new chunk FULL, then re-encode the older one as an XOR delta against it."""
        codec = self.config.codec
        parent = self._write_full(job, run + 1)
        encodings = [ChunkEncoding.XOR]
        if self.config.mode == "max":
            encodings.append(ChunkEncoding.XOR_CONTEXT)
        older = min(
            (
                encode_chunk(
                    ref_raw,
                    job.itemsize,
                    encoding,
                    codec,
                    dtype=job.dtype,
                    refs=(job.chunk_id,),
                    ref_data=(job.raw,),
                    depth=1,
                )
                for encoding in encodings
            ),
            key=len,
        )
        if len(older) < ref_size:
            self._write(CHUNK, ref_id, older)  # same name: the content is unchanged
            self._cache.put(ref_id, ref_raw, 1)
        return parent

    def _encode_best(self, job: _ChunkJob) -> tuple[bytes, int]:
        codec = self.config.codec

        def full() -> bytes:
            return encode_chunk(job.raw, job.itemsize, ChunkEncoding.FULL, codec, dtype=job.dtype)

        ref = self._reference(job)
        if ref is None:
            return full(), 0
        ref_id, ref_raw, ref_depth = ref
        depth = ref_depth + 1

        def delta(encoding: ChunkEncoding) -> bytes:
            return encode_chunk(
                job.raw,
                job.itemsize,
                encoding,
                codec,
                dtype=job.dtype,
                refs=(ref_id,),
                ref_data=(ref_raw,),
                depth=depth,
            )

        best = delta(ChunkEncoding.XOR)
        candidates = [best]
        mode = self.config.mode
        if mode == "max":
            candidates.append(delta(ChunkEncoding.XOR_CONTEXT))
            if transforms.supports_int_diff(job.itemsize):
                candidates.append(delta(ChunkEncoding.INT_DIFF))
            grand = self._grand_reference(ref_id, ref_depth)
            if grand is not None and transforms.supports_predict(job.dtype):
                candidates.append(
                    encode_chunk(
                        job.raw,
                        job.itemsize,
                        ChunkEncoding.PREDICT,
                        codec,
                        dtype=job.dtype,
                        refs=(ref_id, grand[0]),
                        ref_data=(ref_raw, grand[1]),
                        depth=max(depth, grand[2] + 1),
                    )
                )
        poor = len(best) > _DELTA_GOOD_ENOUGH * job.raw.nbytes or not is_float(job.dtype)
        if mode == "max" or (mode == "default" and poor):
            candidates.append(full())
        best = min(candidates, key=len)
        return best, parse_header(best).depth

    def _reference(self, job: _ChunkJob) -> tuple[str, np.ndarray, int] | None:
        if job.ref_id is None or job.ref_id == job.chunk_id:
            return None
        try:
            raw, depth = self._chunk_raw(job.ref_id)
        except (ObjectNotFoundError, CorruptObjectError):
            return None
        if depth and self.config.reverse_deltas:
            depth = self.chain_depth(job.ref_id)
        if depth >= self.config.max_chain_depth or raw.nbytes != job.raw.nbytes:
            return None
        return job.ref_id, raw, depth

    def _grand_reference(self, ref_id: str, ref_depth: int) -> tuple[str, np.ndarray, int] | None:
        """The reference of our reference, for linear prediction from two previous versions."""
        if ref_depth == 0 or ref_depth + 1 >= self.config.max_chain_depth:
            return None
        head = self._header(ref_id)
        if head.encoding is not ChunkEncoding.XOR:
            return None
        raw, depth = self._chunk_raw(head.refs[0])
        return head.refs[0], raw, depth

    # -- tensors: read -------------------------------------------------------------------------
    def _manifest(self, tensor_id: str) -> TensorManifest:
        data = self._read_file(TENSOR, tensor_id)
        try:
            return TensorManifest.decode(data)
        except ValueError as exc:
            raise CorruptObjectError(
                tensor_id, str(self.path_of(TENSOR, tensor_id)), str(exc)
            ) from None

    def _chunk_raw(self, chunk_id: str) -> tuple[np.ndarray, int]:
        """A chunk's verified raw bytes and chain depth (decoding its references as needed)."""
        cached = self._cache.get(chunk_id)
        if cached is not None:
            return cached
        raw, depth = self._decode_verified(chunk_id)
        self._cache.put(chunk_id, raw, depth)
        return raw, depth

    def _decode_verified(
        self, chunk_id: str, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """Decode and verify a chunk: XOR chains in plane space, anything else level by level."""
        try:
            fast = self._decode_xor_chain(chunk_id, out)
        except (OSError, ValueError, ObjectNotFoundError, CorruptObjectError):
            fast = None
        if fast is not None and hash_chunk(fast[0].data) == chunk_id:
            return fast
        return self._decode_strict(chunk_id, out)

    def _decode_xor_chain(
        self, chunk_id: str, out: np.ndarray | None
    ) -> tuple[np.ndarray, int] | None:
        """XOR the planes of every chunk along the chain down to a FULL (or cached) chunk.

        All-zero planes (the high bytes of most XOR deltas) cost nothing. Returns None when the
        chain holds another encoding; the caller verifies the result against the chunk's name.
        """
        acc: list[np.ndarray | None] | None = None
        current, depth, itemsize = chunk_id, 0, 1
        while True:
            cached = self._cache.get(current) if current != chunk_id else None
            if cached is not None:
                planes: list[np.ndarray | None] = list(split_planes(cached[0], itemsize))
                head = None
            else:
                head, planes = chunk_planes(
                    self._read_file(CHUNK, current), check=current == chunk_id
                )
                if head.encoding not in (ChunkEncoding.FULL, ChunkEncoding.XOR):
                    return None
                itemsize = head.itemsize
            acc = (
                planes
                if acc is None
                else [_xor_planes(a, b) for a, b in zip(acc, planes, strict=True)]
            )
            if head is None or head.encoding is ChunkEncoding.FULL:
                break
            if head.encoding is not ChunkEncoding.XOR or depth > 4 * self.config.max_chain_depth:
                return None
            current = head.refs[0]
            depth += 1
        size = next((p.size for p in acc if p is not None), None)
        if size is None:  # every plane is zero
            raw_len = self._header(chunk_id).raw_len
            size = raw_len // itemsize
        full = [np.zeros(size, np.uint8) if p is None else p for p in acc]
        return join_planes(full, out), depth

    def _decode_strict(
        self, chunk_id: str, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        data = self._read_file(CHUNK, chunk_id)
        path = str(self.path_of(CHUNK, chunk_id))
        try:
            head = parse_header(data)
            if out is not None and out.nbytes != head.raw_len:
                raise ValueError(f"chunk has {head.raw_len} bytes, the tensor expects {out.nbytes}")
            raw = decode_chunk(data, self._reference_raw, out=out)
        except ValueError as exc:
            raise CorruptObjectError(chunk_id, path, str(exc)) from None
        except ObjectNotFoundError as exc:
            raise CorruptObjectError(
                chunk_id, path, f"its delta reference is missing: {exc.message}"
            ) from None
        if hash_chunk(raw.data) != chunk_id:
            raise CorruptObjectError(chunk_id, path, "content does not match its hash")
        return raw, 0 if head.encoding is ChunkEncoding.FULL else head.depth

    def _reference_raw(self, chunk_id: str) -> np.ndarray:
        return self._chunk_raw(chunk_id)[0]

    def load(self, tensor_id: str, name: str | None = None, *, lazy: bool = False) -> WeightTensor:
        manifest = self._manifest(tensor_id)
        meta = WeightMetadata(
            name=name or "", shape=manifest.shape, dtype=numpy_dtype(manifest.dtype), hash=tensor_id
        )
        if lazy:
            return WeightTensor(
                metadata=meta, loader=lambda: self._read_tensor(tensor_id, manifest)
            )
        return WeightTensor(self._read_tensor(tensor_id, manifest), meta)

    def _read_tensor(
        self, tensor_id: str, manifest: TensorManifest, *, parallel: bool = True
    ) -> np.ndarray:
        """Decode every chunk, then hash the whole tensor once against its name.

        Chunks are not hashed one by one on this path: the tensor hash covers them. Only when
        it does not match are the chunks verified one by one, to name the broken file.
        """
        path = str(self.path_of(TENSOR, tensor_id))
        missing = [
            c for c in dict.fromkeys(manifest.chunks) if not self.path_of(CHUNK, c).is_file()
        ]
        if missing:
            raise CorruptObjectError(
                tensor_id, path, f"{len(missing)} of its chunks are missing (first: {missing[0]})"
            )
        out = np.empty(manifest.nbytes, dtype=np.uint8)
        jobs = [
            (cid, out[a:b])
            for cid, (a, b) in zip(
                manifest.chunks,
                (manifest.chunk_span(i) for i in range(len(manifest.chunks))),
                strict=True,
            )
        ]
        try:
            if parallel and len(jobs) > 1:
                for fut in [self.pool.submit(self._decode_unverified, c, o) for c, o in jobs]:
                    fut.result()
            else:
                for cid, piece in jobs:
                    self._decode_unverified(cid, piece)
            intact = self._tensor_hash(manifest, out) == tensor_id
        except (ValueError, OSError, ObjectNotFoundError, CorruptObjectError):
            intact = False
        if not intact:
            for cid, piece in jobs:  # names the broken chunk, if one is
                self._cache.discard(cid)
                self._decode_strict(cid, piece)
            if self._tensor_hash(manifest, out) != tensor_id:
                raise CorruptObjectError(tensor_id, path, "tensor content does not match its hash")
        return out.view(numpy_dtype(manifest.dtype)).reshape(manifest.shape)

    @staticmethod
    def _tensor_hash(manifest: TensorManifest, raw: np.ndarray) -> str:
        hasher = TensorHasher(manifest.dtype, manifest.shape)
        hasher.update(raw.data)
        return hasher.hexdigest()

    def _decode_unverified(self, chunk_id: str, out: np.ndarray) -> None:
        """Decode a chunk into `out`; the caller verifies (fast XOR chain, else level by level)."""
        if self._decode_xor_chain(chunk_id, out) is None:
            self._decode_strict(chunk_id, out)

    def load_many(
        self, tensor_ids: Iterable[str], *, lazy: bool = False
    ) -> builtins.list[WeightTensor]:
        """Load several tensors, decoding them in parallel (each one verified)."""
        ids = builtins.list(tensor_ids)
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

    def manifest(self, tensor_id: str) -> TensorManifest:
        """The tensor's manifest (dtype, shape, chunk ids) without reading its data."""
        return self._manifest(tensor_id)

    def exists(self, tensor_id: str) -> bool:
        return is_hash(tensor_id) and self.path_of(TENSOR, tensor_id).is_file()

    def delete(self, tensor_id: str) -> bool:
        try:
            self.path_of(TENSOR, tensor_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self) -> builtins.list[str]:
        return list(self._ids(TENSOR))

    # -- statistics ----------------------------------------------------------------------------
    def _header(self, chunk_id: str) -> ChunkHeader:
        path = self.path_of(CHUNK, chunk_id)
        try:
            with open(path, "rb") as fh:
                return parse_header(fh.read(4096))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"chunk {chunk_id} is missing ({path})") from None
        except ValueError as exc:
            raise CorruptObjectError(chunk_id, str(path), str(exc)) from None

    def chain_depth(self, chunk_id: str) -> int:
        """How many delta steps separate a chunk from a FULL one (longest path, from headers)."""
        head = self._header(chunk_id)
        if head.encoding is ChunkEncoding.FULL:
            return 0
        return 1 + max(self.chain_depth(r) for r in head.refs)

    def chunk_info(self, chunk_id: str) -> tuple[int, str, int]:
        """(stored bytes, encoding label, chain depth) of one chunk, from the headers."""
        path = self.path_of(CHUNK, chunk_id)
        try:
            head = self._header(chunk_id)
            return path.stat().st_size, head.encoding.label, self.chain_depth(chunk_id)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"chunk {chunk_id} is missing ({path})") from None
        except ValueError as exc:
            raise CorruptObjectError(chunk_id, str(path), str(exc)) from None

    def stats(self, tensor_id: str | None = None) -> ObjectStats | StoreStats:
        if tensor_id is not None:
            return self.tensor_stats(tensor_id)
        return self.store_stats()

    def tensor_stats(self, tensor_id: str) -> ObjectStats:
        manifest = self._manifest(tensor_id)
        infos = [self.chunk_info(c) for c in dict.fromkeys(manifest.chunks)]
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

    def store_stats(self) -> StoreStats:
        st = StoreStats()
        for tid in self._ids(TENSOR):
            st.tensors += 1
            try:
                st.raw_bytes += self._manifest(tid).nbytes
            except CorruptObjectError:
                continue
        encodings: Counter[str] = Counter()
        for cid in self._ids(CHUNK):
            try:
                size, label, _ = self.chunk_info(cid)
            except CorruptObjectError:
                continue
            st.chunks += 1
            st.stored_bytes += size
            encodings[label] += 1
        st.encodings = dict(encodings)
        return st

    # -- blobs ---------------------------------------------------------------------------------
    def put_blob(self, kind: str, data: bytes) -> str:
        blob_id = hash_blob(kind, data)
        path = self.path_of(kind, blob_id)
        if not path.exists():
            parent = self._write(kind, blob_id, data)
            if self.config.fsync:
                fsync_dirs([parent, parent.parent])
        return blob_id

    def get_blob(self, kind: str, blob_id: str) -> bytes:
        data = self._read_file(kind, blob_id)
        if hash_blob(kind, data) != blob_id:
            raise CorruptObjectError(
                blob_id, str(self.path_of(kind, blob_id)), f"{kind} content does not match its hash"
            )
        return data

    def has_blob(self, kind: str, blob_id: str) -> bool:
        return is_hash(blob_id) and self.path_of(kind, blob_id).is_file()

    def list_blobs(self, kind: str) -> builtins.list[str]:
        return list(self._ids(kind))

    # -- raw transfer --------------------------------------------------------------------------
    def read_raw(self, kind: str, object_id: str) -> bytes:
        return self._read_file(kind, object_id)

    def dependencies(self, kind: str, object_id: str) -> builtins.list[tuple[str, str]]:
        if kind == TENSOR:
            return [(CHUNK, c) for c in dict.fromkeys(self._manifest(object_id).chunks)]
        if kind == CHUNK:
            return [(CHUNK, r) for r in self._header(object_id).refs]
        return []

    def write_raw(self, kind: str, object_id: str, data: bytes) -> None:
        """Install an object from another store; it is verified in `tmp/` before it is visible."""
        path = self.path_of(kind, object_id)
        if path.exists():
            return
        if kind == CHUNK:
            try:
                raw = decode_chunk(data, self._reference_raw)
            except ValueError as exc:
                raise CorruptObjectError(
                    object_id, None, f"received chunk is invalid: {exc}"
                ) from None
            if hash_chunk(raw.data) != object_id:
                raise CorruptObjectError(object_id, None, "received chunk does not match its hash")
        elif kind == TENSOR:
            try:
                manifest = TensorManifest.decode(data)
            except ValueError as exc:
                raise CorruptObjectError(
                    object_id, None, f"received manifest is invalid: {exc}"
                ) from None
            self._read_tensor(object_id, manifest)
        elif hash_blob(kind, data) != object_id:
            raise CorruptObjectError(object_id, None, f"received {kind} does not match its hash")
        parent = self._write(kind, object_id, data)
        if self.config.fsync:
            fsync_dirs([parent, parent.parent])

    # -- maintenance ---------------------------------------------------------------------------
    def live_chunks(self, tensors: Iterable[str]) -> set[str]:
        """Every chunk the given tensors need, delta references included."""
        live: set[str] = set()
        stack: builtins.list[str] = []
        for tid in tensors:
            try:
                stack.extend(self._manifest(tid).chunks)
            except (ObjectNotFoundError, CorruptObjectError):
                continue
        while stack:
            cid = stack.pop()
            if cid in live:
                continue
            live.add(cid)
            try:
                stack.extend(r for _, r in self.dependencies(CHUNK, cid))
            except (ObjectNotFoundError, CorruptObjectError):
                continue
        return live

    def gc(
        self, live_tensors: set[str], live_blobs: dict[str, set[str]], grace_seconds: float = 0.0
    ) -> GCReport:
        """Delete unreachable objects older than `grace_seconds`.

        Kinds absent from `live_blobs` are left alone.
        """
        report = GCReport()
        cutoff = time.time() - grace_seconds
        roots = set(live_tensors)
        if grace_seconds > 0:  # a tensor spared for its youth keeps its (older) chunks too
            roots |= {t for t in self._ids(TENSOR) if self._younger_than(TENSOR, t, cutoff)}
        keep = {TENSOR: roots, CHUNK: self.live_chunks(roots)}
        keep.update({k: set(v) for k, v in live_blobs.items()})
        for kind, live in keep.items():
            for oid in list(self._ids(kind)):
                if oid in live:
                    continue
                path = self.path_of(kind, oid)
                try:
                    st = path.stat()
                    if st.st_mtime > cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                self._cache.discard(oid)
                report.removed[kind] = report.removed.get(kind, 0) + 1
                report.freed_bytes += st.st_size
        for tmp in self.tmp_dir.glob("*.tmp"):
            try:
                if tmp.stat().st_mtime < time.time() - 3600:
                    tmp.unlink()
            except FileNotFoundError:
                pass
        return report

    def _younger_than(self, kind: str, object_id: str, cutoff: float) -> bool:
        try:
            return self.path_of(kind, object_id).stat().st_mtime > cutoff
        except FileNotFoundError:
            return False

    def verify(self, kind: str, object_id: str) -> None:
        if kind == TENSOR:
            self._read_tensor(object_id, self._manifest(object_id))
        elif kind == CHUNK:
            self._cache.discard(object_id)
            self._decode_verified(object_id)
        else:
            self.get_blob(kind, object_id)


def _xor_planes(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return np.bitwise_xor(a, b)

"""Write object stores in the first release's layout (loose files, chunk format version 1).

The first release kept every object in its own file, `<root>/<kind>/<2 hex>/<62 hex>`, and
wrote chunks in chunk format version 1 (a delta depth byte, a BLAKE3 checksum of the file's
other bytes). Its store kept the newest version of a chunk FULL and re-wrote the version it
replaced as an XOR delta against it (reverse deltas). These helpers build such stores so that
tests can check that `PackStore` still reads them and that `gc` converts them to packs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coral.core.dtypes import dtype_name
from coral.core.hashing import hash_blob, hash_chunk
from coral.core.weight_tensor import WeightTensor
from coral.delta.plane_codec import PlaneCodecConfig
from coral.storage.base import CHUNK, TENSOR
from coral.storage.chunk_format import ChunkEncoding, encode_chunk, parse_header
from coral.storage.manifest import TensorManifest
from coral.version_control.objects import COMMIT, TAG, TREE
from coral.version_control.repository import Repository

LEGACY_KINDS = (CHUNK, TENSOR, TREE, COMMIT, TAG)
_CODEC = PlaneCodecConfig()


def loose_path(root: Path, kind: str, object_id: str) -> Path:
    """Where the first release kept an object."""
    return Path(root) / kind / object_id[:2] / object_id[2:]


def write_loose(root: Path, kind: str, object_id: str, data: bytes) -> Path:
    """Write one loose object file (an existing one is left as it is); returns its path."""
    path = loose_path(root, kind, object_id)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def write_legacy_blob(root: Path, kind: str, data: bytes) -> str:
    """A tree, commit or tag as a loose file named `hash_blob(kind, data)`."""
    blob_id = hash_blob(kind, data)
    write_loose(root, kind, blob_id, data)
    return blob_id


def _canonical(arr: np.ndarray) -> np.ndarray:
    """The array as the store hashes it: little-endian and C-contiguous."""
    return WeightTensor(arr).data


def _raw(arr: np.ndarray) -> np.ndarray:
    return _canonical(arr).reshape(-1).view(np.uint8)


def _slices(arr: np.ndarray, chunk_bytes: int) -> list[np.ndarray]:
    raw = _raw(arr)
    return [raw[start : start + chunk_bytes] for start in range(0, raw.nbytes, chunk_bytes)]


def _depth(root: Path, chunk_id: str) -> int:
    """The v1 depth byte of an existing loose chunk."""
    return parse_header(loose_path(root, CHUNK, chunk_id).read_bytes()).depth


def write_legacy_chunk(
    root: Path,
    piece: np.ndarray,
    itemsize: int,
    dtype: str,
    reference: np.ndarray | None = None,
) -> str:
    """One v1 chunk: FULL, or an XOR delta against `reference` (raw bytes of a chunk that must
    already be a loose file). Returns the chunk id."""
    chunk_id = hash_chunk(piece.data)
    if loose_path(root, CHUNK, chunk_id).exists():
        return chunk_id
    ref_id = None if reference is None else hash_chunk(reference.data)
    if reference is None or ref_id == chunk_id or reference.nbytes != piece.nbytes:
        data = encode_chunk(piece, itemsize, ChunkEncoding.FULL, _CODEC, dtype=dtype, version=1)
    else:
        assert ref_id is not None
        data = encode_chunk(
            piece,
            itemsize,
            ChunkEncoding.XOR,
            _CODEC,
            dtype=dtype,
            refs=(ref_id,),
            ref_data=(reference,),
            depth=_depth(root, ref_id) + 1,
            version=1,
        )
    write_loose(root, CHUNK, chunk_id, data)
    return chunk_id


def write_legacy_tensor(
    root: Path, arr: np.ndarray, chunk_bytes: int, reference_arr: np.ndarray | None = None
) -> str:
    """Store `arr` as loose v1 files; returns its tensor id (`WeightTensor(arr).compute_hash()`).

    With `reference_arr` (the NEWER version of the same tensor, same dtype and shape) every
    chunk of `arr` that differs is written as an XOR delta against the newer chunk at the same
    position, the way the old reverse-delta store re-wrote superseded versions. The newer
    version's chunks are written FULL first when they are not there yet.
    """
    canonical = _canonical(arr)
    itemsize = canonical.dtype.itemsize
    if chunk_bytes % itemsize:
        raise ValueError("chunk_bytes must be a multiple of the element size")
    dtype = dtype_name(canonical.dtype)
    pieces = _slices(canonical, chunk_bytes)
    refs: list[np.ndarray | None] = [None] * len(pieces)
    if reference_arr is not None:
        newer = _canonical(reference_arr)
        if newer.dtype != canonical.dtype or newer.shape != canonical.shape:
            raise ValueError("the reference must have the same dtype and shape")
        write_legacy_tensor(root, newer, chunk_bytes)
        refs = list(_slices(newer, chunk_bytes))
    chunk_ids = [
        write_legacy_chunk(root, piece, itemsize, dtype, ref)
        for piece, ref in zip(pieces, refs, strict=True)
    ]
    tensor_id = WeightTensor(canonical).compute_hash()
    manifest = TensorManifest(dtype, tuple(canonical.shape), chunk_bytes, tuple(chunk_ids))
    write_loose(root, TENSOR, tensor_id, manifest.encode())
    return tensor_id


def loose_files(root: Path) -> list[Path]:
    """Every loose object file under an objects folder."""
    out: list[Path] = []
    for kind in LEGACY_KINDS:
        base = Path(root) / kind
        if base.is_dir():
            out.extend(sorted(p for p in base.rglob("*") if p.is_file()))
    return out


def convert_to_legacy(repo: Repository) -> dict[str, int]:
    """Rewrite every object of `repo` as a loose first-release file and delete `packs/`.

    Chunks are decoded and re-encoded as v1 FULL; manifests and blobs keep their bytes. The
    repository is closed (its background repack finished) before the packs go. Returns the
    number of objects written per kind.
    """
    store = repo.store
    store.wait_for_maintenance()
    root = store.root
    objects: list[tuple[str, str, bytes]] = []
    for kind in LEGACY_KINDS:
        for oid in store.list_blobs(kind):
            if kind == CHUNK:
                head = parse_header(store.read_record(CHUNK, oid)[:4096])
                raw = store._chunk_raw(oid)[0]
                data = encode_chunk(
                    raw, head.itemsize, ChunkEncoding.FULL, _CODEC, dtype=head.dtype, version=1
                )
            else:
                data = store.read_record(kind, oid)
            objects.append((kind, oid, data))
    repo.close()
    shutil.rmtree(root / "packs")
    counts: dict[str, int] = {}
    for kind, oid, data in objects:
        write_loose(root, kind, oid, data)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def legacy_weights(step: int) -> dict[str, np.ndarray]:
    """A small model at training step `step` (deterministic; consecutive steps differ a little)."""
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((96, 64)) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal(3000) * 0.05).astype(np.float16)
    if step:
        upd = np.random.default_rng(100 + step)
        w1.reshape(-1)[upd.integers(0, w1.size, 300)] += np.float32(1e-3 * step)
        w2[upd.integers(0, w2.size, 50)] += np.float16(1e-2)
    return {
        "layer.weight": w1,
        "layer.bias": np.full(64, step, dtype=np.float32),
        "emb": w2,
        "step": np.array([step], dtype=np.int64),
    }


def write_storage_config(repo: Repository, storage: Mapping[str, object]) -> None:
    """Append a `[storage]` section to the repository's config.toml (reopen to apply it)."""

    def toml(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return json.dumps(str(value))

    lines = [f"{key} = {toml(value)}" for key, value in storage.items()]
    with open(repo.config_path, "a", encoding="utf-8") as fh:
        fh.write("[storage]\n" + "\n".join(lines) + "\n")


@dataclass
class LegacyHistory:
    """What `build_legacy_repository` committed: commit hash -> weights, plus named commits."""

    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    main: list[str] = field(default_factory=list)  # commits on main, oldest first
    side: str = ""  # tip of branch "side"
    dead: str = ""  # a commit of a branch that was deleted (its reflog expired): garbage
    objects: dict[str, int] = field(default_factory=dict)  # loose objects written per kind


def build_legacy_repository(
    path: Path, storage: Mapping[str, object] | None = None
) -> LegacyHistory:
    """A repository whose object store is in the first release's layout.

    History: four commits on main (tag `v1` on the third), a branch `side` with one commit, and
    a deleted branch whose commit (and its tensors) only garbage reaches. Built through the
    normal API, then `convert_to_legacy`.
    """
    history = LegacyHistory()
    repo = Repository.init(path)
    if storage:
        write_storage_config(repo, storage)
        repo.close()
        repo = Repository(path)
    for step in range(4):
        weights = legacy_weights(step)
        repo.add_all_weights(weights)
        h = repo.commit(f"step {step}")
        history.weights[h] = weights
        history.main.append(h)
        if step == 2:
            repo.tag_version("v1", "third step", {"acc": 0.5})
    repo.create_branch("side", history.main[1])
    repo.checkout("side")
    side = {**legacy_weights(1), "extra": np.arange(10, dtype=np.int32)}
    repo.add_all_weights({"extra": side["extra"]})
    history.side = repo.commit("side work")
    history.weights[history.side] = side
    repo.create_branch("doomed")
    repo.checkout("doomed")
    repo.add_all_weights({"garbage": np.full(2000, 3.25, dtype=np.float64)})
    history.dead = repo.commit("doomed work")
    repo.checkout("main")
    repo.delete_branch("doomed", force=True)
    repo.expire_reflog()
    history.objects = convert_to_legacy(repo)
    return history

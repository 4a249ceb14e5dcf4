"""Object stores of the first release (loose files, chunk format v1) open, verify and convert."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import CHUNK, TENSOR
from coral.storage.chunk_format import parse_header
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore
from coral.version_control.objects import COMMIT, TAG, TREE
from coral.version_control.repository import Repository

from .legacy_repo import (
    LEGACY_KINDS,
    build_legacy_repository,
    legacy_weights,
    loose_files,
    loose_path,
    write_legacy_blob,
    write_legacy_tensor,
)

CONFIG = StoreConfig(chunk_bytes=4096, fsync=False)
CHUNK_BYTES = 4096


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass
class LegacyStore:
    """A first-release store written by the helpers, and what the test expects of it."""

    root: Path
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # tensor id -> values
    names: dict[str, str] = field(default_factory=dict)  # label -> tensor id
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (kind, id) -> bytes

    def add(self, label: str, arr: np.ndarray, newer: np.ndarray | None = None) -> str:
        tid = write_legacy_tensor(self.root, arr, CHUNK_BYTES, newer)
        self.arrays[tid] = WeightTensor(arr).data
        self.names[label] = tid
        return tid


def _chain() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three versions of a float32 tensor (3 chunks); chunk 0 changes twice, chunk 2 once."""
    rng = np.random.default_rng(0)
    v2 = (rng.standard_normal(3000) * 0.05).astype(np.float32)
    v1 = v2.copy()
    v1[:100] += np.float32(1e-3)
    v1[2100:2200] -= np.float32(1e-3)
    v0 = v1.copy()
    v0[:50] += np.float32(1e-3)
    return v0, v1, v2


def make_legacy_store(root: Path) -> LegacyStore:
    """Tensors of several dtypes and shapes, FULL and XOR v1 chunks (chains two deep), blobs."""
    legacy = LegacyStore(root)
    v0, v1, v2 = _chain()
    legacy.add("v2", v2)  # newest: FULL
    legacy.add("v1", v1, newer=v2)  # XOR against v2 where they differ
    legacy.add("v0", v0, newer=v1)  # chunk 0: XOR -> XOR -> FULL
    rng = np.random.default_rng(1)
    b_new = (rng.standard_normal((40, 70)) * 0.1).astype(ml_dtypes.bfloat16)
    b_old = b_new.copy()
    b_old[3, :10] = 0
    legacy.add("bf16.new", b_new)
    legacy.add("bf16.old", b_old, newer=b_new)
    legacy.add("int8", rng.integers(-128, 127, (33, 129), dtype=np.int8))
    legacy.add("bool", rng.integers(0, 2, 5000).astype(bool))
    legacy.add("scalar", np.array(-0.0, np.float64))
    legacy.add("empty", np.zeros((0, 3), np.float16))
    nan = np.array([0x7FC00001, 0xFFC12345, 0x80000000, 0x7F800000], np.uint32).view(np.float32)
    legacy.add("nan", nan)
    for kind, doc in (
        (TREE, {"entries": [], "format": 1, "type": "tree"}),
        (COMMIT, {"format": 1, "message": "old", "type": "commit"}),
        (TAG, {"format": 1, "name": "v0", "type": "tag"}),
    ):
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        legacy.blobs[(kind, write_legacy_blob(root, kind, data))] = data
    return legacy


@pytest.fixture
def legacy(tmp_path: Path) -> LegacyStore:
    return make_legacy_store(tmp_path / "objects")


def _chunks_of(root: Path, tensor_id: str) -> list[str]:
    doc = json.loads(loose_path(root, TENSOR, tensor_id).read_bytes())
    return list(doc["chunks"])


def _closure(root: Path, tensor_ids: set[str]) -> set[str]:
    """Chunks the tensors need, delta references included, read straight from the v1 files."""
    live: set[str] = set()
    stack = [c for t in tensor_ids for c in _chunks_of(root, t)]
    while stack:
        cid = stack.pop()
        if cid not in live:
            live.add(cid)
            stack.extend(parse_header(loose_path(root, CHUNK, cid).read_bytes()).refs)
    return live


def _leftovers(root: Path) -> list[str]:
    """Anything under the store root outside `packs/` and `tmp/`."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] not in ("packs", "tmp")
    )


# -- reading ------------------------------------------------------------------------------------
def test_legacy_store_reads_every_tensor_bit_exact(legacy: LegacyStore) -> None:
    store = PackStore(legacy.root, CONFIG)
    assert store.files() == []  # nothing but loose files
    for tid, arr in legacy.arrays.items():
        assert same_bits(store.load(tid).data, arr), tid
        assert same_bits(PackStore(legacy.root, CONFIG).load(tid, lazy=True).data, arr)
    loaded = PackStore(legacy.root, CONFIG).load_many(list(legacy.arrays))
    for (tid, arr), w in zip(legacy.arrays.items(), loaded, strict=True):
        assert same_bits(w.data, arr), tid
    # both chunk encodings of version 1 were exercised
    labels = {store.chunk_info(c)[1] for t in legacy.arrays for c in store.manifest(t).chunks}
    assert labels == {"full", "xor"}
    v0 = legacy.names["v0"]
    head = parse_header(loose_path(legacy.root, CHUNK, store.manifest(v0).chunks[0]).read_bytes())
    assert (head.version, head.encoding.label, head.depth) == (1, "xor", 2)
    store.close()


def test_legacy_store_lists_and_verifies_every_object(legacy: LegacyStore) -> None:
    store = PackStore(legacy.root, CONFIG)
    assert store.list() == sorted(legacy.arrays)
    chunks = _closure(legacy.root, set(legacy.arrays))
    assert store.list_blobs(CHUNK) == sorted(chunks)
    for (kind, blob_id), data in legacy.blobs.items():
        assert store.list_blobs(kind) == [blob_id]
        assert store.has_blob(kind, blob_id)
        assert store.get_blob(kind, blob_id) == data
        assert store.read_raw(kind, blob_id) == data
    for kind in LEGACY_KINDS:
        for oid in store.iter_objects(kind):
            store.verify(kind, oid)
            assert store.where(kind, oid) == str(loose_path(legacy.root, kind, oid))
    assert sum(len(store.list_blobs(k)) for k in LEGACY_KINDS) == len(loose_files(legacy.root))
    store.close()


def _flip(path: Path, offset: int, mask: int = 0x01) -> bytes:
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[offset] ^= mask
    path.write_bytes(bytes(damaged))
    return original


@pytest.mark.parametrize("label", ["v2", "v1", "v0", "bf16.old"])
def test_flipped_byte_in_a_loose_chunk_names_the_file(legacy: LegacyStore, label: str) -> None:
    tid = legacy.names[label]
    cid = _chunks_of(legacy.root, tid)[0]
    path = loose_path(legacy.root, CHUNK, cid)
    size = path.stat().st_size
    head_len = parse_header(path.read_bytes()).header_len
    # every header byte (magic, version, encoding, dtype, itemsize, depth, length, refs,
    # checksum) and a spread of the plane buffer
    offsets = sorted({*range(head_len + 12), *range(head_len, size, max(1, size // 40)), size - 1})
    for offset in offsets:
        original = _flip(path, offset)
        try:
            for check in ("load", "verify_chunk", "verify_tensor"):
                store = PackStore(legacy.root, CONFIG)  # nothing cached
                with pytest.raises(CorruptObjectError) as info:
                    if check == "load":
                        store.load(tid)
                    elif check == "verify_chunk":
                        store.verify(CHUNK, cid)
                    else:
                        store.verify(TENSOR, tid)
                assert info.value.path == str(path), (offset, check, info.value)
                assert info.value.object_id == cid, (offset, check)
                store.close()
        finally:
            path.write_bytes(original)
    assert same_bits(PackStore(legacy.root, CONFIG).load(tid).data, legacy.arrays[tid])


def test_damaged_delta_base_is_named_when_its_referrer_is_read(legacy: LegacyStore) -> None:
    v0 = legacy.names["v0"]
    base = _chunks_of(legacy.root, legacy.names["v1"])[0]  # what v0's first chunk refers to
    assert parse_header(
        loose_path(legacy.root, CHUNK, _chunks_of(legacy.root, v0)[0]).read_bytes()
    ).refs == (base,)
    path = loose_path(legacy.root, CHUNK, base)
    _flip(path, path.stat().st_size - 3)
    with pytest.raises(CorruptObjectError) as info:
        PackStore(legacy.root, CONFIG).load(v0)
    assert info.value.path == str(path)


def test_flipped_byte_in_a_loose_manifest_or_blob_is_detected(legacy: LegacyStore) -> None:
    tid = legacy.names["v0"]
    path = loose_path(legacy.root, TENSOR, tid)
    for offset in range(path.stat().st_size):
        original = _flip(path, offset)
        try:
            store = PackStore(legacy.root, CONFIG)
            with pytest.raises(CorruptObjectError):
                store.verify(TENSOR, tid)
            with pytest.raises(CorruptObjectError):  # never silently different values
                store.load(tid)
            store.close()
        finally:
            path.write_bytes(original)
    for kind, blob_id in legacy.blobs:
        path = loose_path(legacy.root, kind, blob_id)
        _flip(path, 5)
        with pytest.raises(CorruptObjectError) as info:
            PackStore(legacy.root, CONFIG).get_blob(kind, blob_id)
        assert info.value.path == str(path)


# -- conversion ---------------------------------------------------------------------------------
def test_gc_converts_loose_files_to_packs(legacy: LegacyStore) -> None:
    root = legacy.root
    names = legacy.names
    # v0 stays, v1 and v2 go: their chunks that v0's deltas stand on must stay
    live = {names[k] for k in ("v0", "bf16.old", "int8", "scalar", "empty")}
    dead = set(legacy.arrays) - live
    live_chunks = _closure(root, live)
    dead_chunks = _closure(root, set(legacy.arrays)) - live_chunks
    assert dead_chunks and live_chunks & _closure(root, {names["v2"]})
    dead_bytes = sum(loose_path(root, TENSOR, t).stat().st_size for t in dead) + sum(
        loose_path(root, CHUNK, c).stat().st_size for c in dead_chunks
    )

    store = PackStore(root, CONFIG)
    report = store.gc(live, {})
    store.close()
    assert report.removed == {TENSOR: len(dead), CHUNK: len(dead_chunks)}
    assert report.freed_bytes == dead_bytes
    assert _leftovers(root) == []  # no loose file, no empty kind folder
    assert loose_files(root) == []
    assert any((root / "packs").iterdir())

    fresh = PackStore(root, CONFIG)
    assert not fresh.loose.any()
    assert fresh.list() == sorted(live)
    for tid in live:
        assert same_bits(fresh.load(tid).data, legacy.arrays[tid]), tid
        fresh.verify(TENSOR, tid)
    for tid in dead:
        assert not fresh.exists(tid)
        with pytest.raises(ObjectNotFoundError):
            fresh.load(tid)
    assert fresh.list_blobs(CHUNK) == sorted(live_chunks)
    for cid in live_chunks:
        fresh.verify(CHUNK, cid)
        assert fresh.where(CHUNK, cid) is not None and "packs/" in str(fresh.where(CHUNK, cid))
    for (kind, blob_id), data in legacy.blobs.items():  # kinds not in live_blobs are kept
        assert fresh.get_blob(kind, blob_id) == data
    # the delta graph came along: v0's first chunk still chains two deep
    assert fresh.tensor_stats(names["v0"]).chain_depth == 2
    again = fresh.gc(live, {})
    assert again.removed == {} and again.freed_bytes == 0
    assert fresh.list() == sorted(live)
    fresh.close()


def test_gc_drops_dead_loose_blobs(legacy: LegacyStore) -> None:
    (tree_id,) = [b for k, b in legacy.blobs if k == TREE]
    (commit_id,) = [b for k, b in legacy.blobs if k == COMMIT]
    store = PackStore(legacy.root, CONFIG)
    report = store.gc(set(legacy.arrays), {TREE: set(), COMMIT: {commit_id}})
    assert report.removed == {TREE: 1}
    assert report.freed_bytes == len(legacy.blobs[(TREE, tree_id)])
    assert _leftovers(legacy.root) == []
    fresh = PackStore(legacy.root, CONFIG)
    assert not fresh.has_blob(TREE, tree_id)
    assert fresh.list_blobs(COMMIT) == [commit_id]
    assert len(fresh.list_blobs(TAG)) == 1
    for tid, arr in legacy.arrays.items():
        assert same_bits(fresh.load(tid).data, arr)


def test_new_versions_on_top_of_a_legacy_store(legacy: LegacyStore) -> None:
    """Storing against a loose tensor, repacking, then converting: everything stays exact."""
    store = PackStore(legacy.root, CONFIG)
    v2 = legacy.names["v2"]
    newer = legacy.arrays[v2].copy()
    newer[1500:1600] += np.float32(1e-3)
    tid = store.store(WeightTensor(newer), reference=v2)
    store.repack()
    expected = {**legacy.arrays, tid: newer}
    for t, arr in expected.items():
        assert same_bits(PackStore(legacy.root, CONFIG).load(t).data, arr)
    store.gc(set(expected), {})
    assert _leftovers(legacy.root) == []
    fresh = PackStore(legacy.root, CONFIG)
    for t, arr in expected.items():
        assert same_bits(fresh.load(t).data, arr)
        fresh.verify(TENSOR, t)


def test_chain_depth_counts_loose_delta_chunks(legacy: LegacyStore) -> None:
    """Depth is walked through loose chunks too (not 1 for any loose delta)."""
    store = PackStore(legacy.root, CONFIG)
    v0 = legacy.names["v0"]
    first = store.manifest(v0).chunks[0]
    assert store.chunk_info(first)[2] == 2  # XOR -> XOR -> FULL, as the v1 header says
    assert store.tensor_stats(v0).chain_depth == 2


def test_forward_deltas_on_loose_chains_respect_max_chain_depth(legacy: LegacyStore) -> None:
    """A loose reference two deltas deep counts as two deep (not 0) against max_chain_depth."""
    config = StoreConfig(chunk_bytes=4096, max_chain_depth=2, reverse_deltas=False, fsync=False)
    store = PackStore(legacy.root, config)
    v0 = legacy.names["v0"]
    newer = legacy.arrays[v0].copy()
    newer[:20] -= np.float32(1e-3)  # changes chunk 0, already two deltas deep
    tid = store.store(WeightTensor(newer), reference=v0)
    store.gc(set(store.list()), {})  # into packs: the index now sees the whole chain
    fresh = PackStore(legacy.root, config)
    assert same_bits(fresh.load(tid).data, newer)
    assert fresh.tensor_stats(tid).chain_depth <= 2


# -- repositories -------------------------------------------------------------------------------
def _check_weights(repo: Repository, expected: dict[str, dict[str, np.ndarray]]) -> None:
    for commit, weights in expected.items():
        got = repo.get_all_weights(commit)
        assert sorted(got) == sorted(weights), commit
        for name, arr in weights.items():
            assert same_bits(got[name].data, WeightTensor(arr).data), (commit, name)


def test_legacy_repository_opens_reads_and_converts(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    history = build_legacy_repository(path)
    objects = path / ".coral" / "objects"
    assert not (objects / "packs").exists()
    assert len(loose_files(objects)) == sum(history.objects.values())

    with Repository(path) as repo:
        assert [c.commit_hash for c in repo.log()] == history.main[::-1]
        assert [t.name for t in repo.list_tags()] == ["v1"]
        assert repo.resolve_ref("side") == history.side
        _check_weights(repo, history.weights)
        assert repo.store.has_blob(COMMIT, history.dead)  # garbage, still there
        report = repo.fsck()
        assert report.ok, str(report)
        assert {k: report.checked[k] for k in history.objects} == history.objects
        garbage = {COMMIT: 1, TREE: 1, TENSOR: 1, CHUNK: 1}
        assert repo.gc(dry_run=True).removed == garbage
        result = repo.gc()
        assert result.removed == garbage
        after = repo.fsck()
        assert after.ok, str(after)
        _check_weights(repo, history.weights)

    assert _leftovers(objects) == []
    assert loose_files(objects) == []
    packs = list((objects / "packs").iterdir())
    assert packs and all(p.suffix == ".pack" and p.is_file() for p in packs)
    with Repository(path) as repo:
        _check_weights(repo, history.weights)
        assert not repo.store.has_blob(COMMIT, history.dead)
        assert repo.fsck().ok
        # and it keeps working as a packed repository
        repo.add_all_weights(legacy_weights(4))
        tip = repo.commit("step 4")
        _check_weights(repo, {tip: legacy_weights(4)})
        assert repo.fsck().ok


def test_legacy_repository_takes_new_commits_before_gc(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    history = build_legacy_repository(path, {"chunk_bytes": 4096})
    expected = dict(history.weights)
    with Repository(path) as repo:
        for step in (4, 5):  # deltas against loose (v1) chunks of HEAD
            repo.add_all_weights(legacy_weights(step))
            expected[repo.commit(f"step {step}")] = legacy_weights(step)
        repo.store.wait_for_maintenance()
        _check_weights(repo, expected)
        assert repo.fsck().ok
        repo.gc()
        assert repo.fsck().ok
    objects = path / ".coral" / "objects"
    assert _leftovers(objects) == []
    with Repository(path) as repo:
        _check_weights(repo, expected)


def test_fsck_of_a_legacy_repository_names_a_damaged_loose_file(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    history = build_legacy_repository(path)
    objects = path / ".coral" / "objects"
    with Repository(path) as repo:
        tree = repo.read_tree(repo.read_commit(history.main[-1]).tree_id)
        tid = tree.entries["layer.weight"].tensor_id
        cid = repo.store.manifest(tid).chunks[0]
    damaged = loose_path(objects, CHUNK, cid)
    _flip(damaged, damaged.stat().st_size // 2)
    with Repository(path) as repo:
        report = repo.fsck()
        assert not report.ok
        assert (CHUNK, cid, str(damaged)) in {(p.kind, p.id, p.path) for p in report.problems}
        with pytest.raises(CorruptObjectError):
            repo.get_all_weights(history.main[-1])

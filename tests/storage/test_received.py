"""`PackStore.install` (coral/storage/received.py): received records are checked against their
BLAKE3 names before anything is visible, each received chunk is decoded exactly once (bases
first, shared between worker threads, freed after its last use), and a damaged record leaves
nothing of its group installed.

The tests under "bugs" reproduce defects found in received.py (a race between verifying
threads, manifest boundaries, a missing delta base, chain depth limits), all fixed.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.core.hashing import hash_blob, hash_chunk
from coral.core.weight_tensor import WeightTensor
from coral.errors import CorruptObjectError, InvalidNameError
from coral.storage import received
from coral.storage.base import CHUNK, TENSOR
from coral.storage.chunk_format import ChunkEncoding, encode_chunk, parse_header
from coral.storage.config import StoreConfig
from coral.storage.manifest import TensorManifest
from coral.storage.pack_store import PackStore
from coral.storage.store_stats import MAX_DEPTH
from coral.version_control.objects import COMMIT, TAG, TREE, canonical_json

Record = received.Record
MakeStore = Callable[..., PackStore]

# Small chunks (five per tensor, the last one short), chains of at most three deltas, and a
# pool of several workers so that verification runs in parallel.
CONFIG = StoreConfig(chunk_bytes=4096, max_chain_depth=3, fsync=False, workers=4)
ELEMENTS = 4 * 1024 + 300  # float32: four whole 4 KiB chunks and a short one
VERSIONS = 6


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[MakeStore]:
    """Fresh stores under tmp_path, closed (thread pools stopped) at the end of the test."""
    made: list[PackStore] = []

    def make(config: StoreConfig = CONFIG) -> PackStore:
        store = PackStore(tmp_path / uuid.uuid4().hex, config)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often install decoded each chunk (by the id of the decoded bytes)."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    real = received.decode_chunk

    def counting(
        buf: bytes | memoryview, load_ref: Callable[[str], np.ndarray], **kwargs: Any
    ) -> np.ndarray:
        raw = real(buf, load_ref, **kwargs)
        with lock:
            counts[hash_chunk(raw.data)] += 1
        return raw

    monkeypatch.setattr(received, "decode_chunk", counting)
    return counts


@pytest.fixture
def verifiers(monkeypatch: pytest.MonkeyPatch) -> list[received._TensorVerifier]:
    """Every `_TensorVerifier` that finished its run (to inspect what it still holds)."""
    done: list[received._TensorVerifier] = []
    real = received._TensorVerifier.run

    def run(self: received._TensorVerifier) -> list[tuple[str, int, tuple[str, ...]]]:
        out = real(self)
        done.append(self)
        return out

    monkeypatch.setattr(received._TensorVerifier, "run", run)
    return done


def make_history(
    store: PackStore, versions: int = VERSIONS, elements: int = ELEMENTS, seed: int = 0
) -> tuple[list[str], list[np.ndarray]]:
    """Sparse updates of one tensor, each stored against the previous one and repacked, so
    older versions become reverse-delta chains ending in FULL keyframes."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(elements) * 0.02).astype(np.float32)
    ids, arrays = [store.store(WeightTensor(w))], [w]
    for _ in range(versions - 1):
        w = w.copy()
        w[rng.integers(0, w.size, 40)] += np.float32(1e-3)
        ids.append(store.store(WeightTensor(w), reference=ids[-1]))
        arrays.append(w)
        store.repack()
    return ids, arrays


def records_for(store: PackStore, tensor_ids: Iterable[str]) -> list[Record]:
    """The tensors' records with every chunk they need (delta bases included)."""
    seen: dict[tuple[str, str], None] = {}
    stack = [(TENSOR, t) for t in tensor_ids]
    while stack:
        kind, oid = stack.pop()
        if (kind, oid) not in seen:
            seen[(kind, oid)] = None
            stack.extend(store.dependencies(kind, oid))
    return [(kind, oid, store.read_raw(kind, oid)) for kind, oid in seen]


def shuffled(records: list[Record], seed: int = 0) -> list[Record]:
    out = list(records)
    random.Random(seed).shuffle(out)
    return out


def ids_of(records: Iterable[Record], kind: str) -> set[str]:
    return {oid for k, oid, _ in records if k == kind}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_installed(src: PackStore, dst: PackStore, records: Iterable[Record]) -> None:
    """Every record is in dst, passes the full (fsck) check, and chunks keep their encoding and
    references in the pack index; checked through a freshly opened store too."""
    fresh = PackStore(dst.root, dst.config)
    try:
        for kind, oid, data in records:
            for store in (dst, fresh):
                assert store._has(kind, oid), f"{kind} {oid} missing"
                store.verify(kind, oid)
                assert store.read_raw(kind, oid) == data
            if kind == CHUNK:
                assert fresh._chunk_refs(oid) == src._chunk_refs(oid)
                assert fresh.chain_depth(oid) == src.chain_depth(oid)
    finally:
        fresh.close()


def assert_loads(dst: PackStore, expected: dict[str, np.ndarray]) -> None:
    fresh = PackStore(dst.root, dst.config)
    try:
        for tid, arr in expected.items():
            assert same_bits(fresh.load(tid).data, arr)
            assert fresh.load(tid).data.view(np.uint8).tobytes() == arr.view(np.uint8).tobytes()
    finally:
        fresh.close()


def assert_released(verifier: received._TensorVerifier) -> None:
    """Each received chunk was decoded and its raw bytes dropped after the last use."""
    assert verifier.decoded == set(verifier.chunks)
    assert verifier.raws == {}  # nothing decoded is still held
    assert not any(verifier.uses.values())


def assert_empty(dst: PackStore, records: Iterable[Record]) -> None:
    """Nothing of the batch is visible, not even after re-reading the packs folder."""
    assert dst.files() == []
    dst.index.refresh(force=True)
    for kind, oid, _ in records:
        assert not dst._has(kind, oid), f"{kind} {oid} is visible"


def chunk_with(src: PackStore, chunks: Iterable[str], role: str) -> str:
    """A chunk of the batch: a "delta" in the middle of a chain (a delta on it, and a delta
    itself against another delta) or a "keyframe" (a FULL chunk deltas are made against)."""
    chunks = sorted(chunks)
    bases = {ref for c in chunks for ref in src._chunk_refs(c)[1]}
    for cid in chunks:
        encoding, refs = src._chunk_refs(cid)
        if cid not in bases:
            continue
        if role == "keyframe" and encoding == ChunkEncoding.FULL:
            return cid
        if role == "delta" and refs and src._chunk_refs(refs[0])[0] != ChunkEncoding.FULL:
            return cid
    raise AssertionError(f"no {role} chunk in the batch")


def flip(data: bytes, offset: int, mask: int = 0x40) -> bytes:
    out = bytearray(data)
    out[offset % len(out)] ^= mask
    return bytes(out)


def replace_record(records: list[Record], oid: str, data: bytes) -> list[Record]:
    return [(k, o, data if o == oid else d) for k, o, d in records]


def with_refs(data: bytes, refs: tuple[str, ...]) -> bytes:
    """A chunk record with its header's reference ids replaced."""
    head = parse_header(data)
    start = head.header_len - 16 - 32 * len(head.refs)
    assert len(refs) == len(head.refs)
    return data[:start] + b"".join(bytes.fromhex(r) for r in refs) + data[start + 32 * len(refs) :]


def chain_records(length: int, seed: int = 0) -> list[Record]:
    """A valid chain of `length` XOR chunks (tiny, each a delta against the next) ending in a
    FULL chunk; the first record is the top of the chain."""
    rng = np.random.default_rng(seed)
    raws = [rng.integers(0, 256, 64, dtype=np.uint8) for _ in range(length + 1)]
    ids = [hash_chunk(r.data) for r in raws]
    codec = CONFIG.codec
    out: list[Record] = []
    for i in range(length):
        data = encode_chunk(
            raws[i],
            4,
            ChunkEncoding.XOR,
            codec,
            dtype="float32",
            refs=(ids[i + 1],),
            ref_data=(raws[i + 1],),
        )
        out.append((CHUNK, ids[i], data))
    full = encode_chunk(raws[-1], 4, ChunkEncoding.FULL, codec, dtype="float32")
    return [*out, (CHUNK, ids[-1], full)]


# -- whole histories in one call ---------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 4])
def test_history_of_delta_chains_installs_in_one_call_decoding_each_chunk_once(
    make_store: MakeStore,
    decodes: Counter[str],
    verifiers: list[received._TensorVerifier],
    workers: int,
) -> None:
    src = make_store()
    ids, arrays = make_history(src)
    records = shuffled(records_for(src, ids), seed=workers)
    chunks = ids_of(records, CHUNK)
    assert len(chunks) == VERSIONS * 5
    assert max(src.chain_depth(c) for c in chunks) == 3  # real chains, not just FULL chunks
    dst = make_store(dataclasses.replace(CONFIG, workers=workers))

    assert dst.install(records) == len(records)

    assert decodes == Counter(dict.fromkeys(chunks, 1))
    assert len(verifiers) == 1
    assert_released(verifiers[0])
    assert len(dst.files()) == 1  # chunks and tensors land together in one pack
    assert_installed(src, dst, records)
    assert_loads(dst, dict(zip(ids, arrays, strict=True)))


def test_mixed_batch_with_trees_commits_and_tags(
    make_store: MakeStore, decodes: Counter[str]
) -> None:
    src = make_store()
    ids, arrays = make_history(src)
    tree = canonical_json(
        {
            "type": TREE,
            "format": 1,
            "entries": [
                {"name": f"v{i}", "tensor": t, "shape": [ELEMENTS], "dtype": "float32"}
                for i, t in enumerate(ids)
            ],
        }
    )
    tree_id = src.put_blob(TREE, tree)
    commit = canonical_json({"type": COMMIT, "format": 1, "tree": tree_id, "message": "six"})
    commit_id = src.put_blob(COMMIT, commit)
    tag_id = src.put_blob(TAG, canonical_json({"type": TAG, "format": 1, "commit": commit_id}))
    blobs: list[Record] = [
        (kind, oid, src.read_raw(kind, oid))
        for kind, oid in ((TREE, tree_id), (COMMIT, commit_id), (TAG, tag_id))
    ]
    records = shuffled(records_for(src, ids) + blobs, seed=7)
    dst = make_store()

    assert dst.install(records) == len(records)

    assert decodes == Counter(dict.fromkeys(ids_of(records, CHUNK), 1))
    for kind, oid, data in blobs:
        assert dst.get_blob(kind, oid) == data == src.get_blob(kind, oid)
    assert_installed(src, dst, records)
    assert_loads(dst, dict(zip(ids, arrays, strict=True)))
    # data first, then trees and tags, commits last: whoever sees a commit finds what it names
    seq = {oid: dst.index.get(oid).sequence for _, oid, _ in records}  # type: ignore[union-attr]
    assert max(seq[t] for t in ids) < seq[tree_id] == seq[tag_id] < seq[commit_id]


def test_batches_whose_chains_end_in_chunks_already_installed(
    make_store: MakeStore, decodes: Counter[str]
) -> None:
    src = make_store()
    ids, arrays = make_history(src)
    twin = src.store(WeightTensor(arrays[1].reshape(4, -1)))  # same chunks as version 1
    dst = make_store()
    newest = records_for(src, [ids[-1], ids[3]])  # the two keyframes' tensors
    assert dst.install(newest) == len(newest)
    decodes.clear()

    rest = [r for r in records_for(src, ids) if not dst._has(r[0], r[1])]
    assert dst.install(shuffled(rest)) == len(rest)
    # only the received chunks are decoded by install, each once; the bases already in the
    # destination are read from it
    assert decodes == Counter(dict.fromkeys(ids_of(rest, CHUNK), 1))
    decodes.clear()

    # a tensor whose chunks are all in the destination already: only its manifest travels
    assert dst.install([(TENSOR, twin, src.read_raw(TENSOR, twin))]) == 1
    assert not decodes
    assert_installed(src, dst, records_for(src, [*ids, twin]))
    assert_loads(dst, {**dict(zip(ids, arrays, strict=True)), twin: arrays[1].reshape(4, -1)})


def test_chunks_shared_by_several_tensors_are_decoded_once(
    make_store: MakeStore, decodes: Counter[str], verifiers: list[received._TensorVerifier]
) -> None:
    src = make_store()
    ids, arrays = make_history(src)
    expected = dict(zip(ids, arrays, strict=True))
    for arr in arrays:  # every chunk of the history has a second user: another shape
        expected[src.store(WeightTensor(arr.reshape(2, -1)))] = arr.reshape(2, -1)
    as_int = arrays[0].view(np.int32)  # the same bytes under another dtype: the same chunks
    expected[src.store(WeightTensor(as_int))] = as_int
    zeros = np.zeros(3 * 1024, np.float32)  # one chunk, three times in one tensor
    zeros8 = np.zeros((3, 4096), np.int8)  # ... and three times more in another
    expected[src.store(WeightTensor(zeros))] = zeros
    expected[src.store(WeightTensor(zeros8))] = zeros8
    records = shuffled(records_for(src, expected), seed=3)
    users = Counter(c for t in expected for c in src.manifest(t).chunks)
    assert all(users[c] >= 2 for t in ids for c in src.manifest(t).chunks)
    assert users[hash_chunk(np.zeros(4096, np.uint8).data)] == 6
    dst = make_store(dataclasses.replace(CONFIG, workers=8))

    assert dst.install(records) == len(records)

    assert decodes == Counter(dict.fromkeys(ids_of(records, CHUNK), 1))
    assert_released(verifiers[0])
    assert_installed(src, dst, records)
    assert_loads(dst, expected)


# -- damage --------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["delta", "keyframe"])
@pytest.mark.parametrize("where", ["checksum", "body", "last"])
def test_flipped_chunk_byte_fails_the_whole_data_group(
    make_store: MakeStore, role: str, where: str
) -> None:
    src = make_store()
    ids, _ = make_history(src)
    records = records_for(src, ids)
    target = chunk_with(src, ids_of(records, CHUNK), role)
    data = src.read_raw(CHUNK, target)
    head = parse_header(data)
    offset = {
        "checksum": head.header_len - 5,
        "body": (head.header_len + len(data)) // 2,
        "last": -1,
    }[where]
    bad = shuffled(replace_record(records, target, flip(data, offset)), seed=11)
    dst = make_store()

    with pytest.raises(CorruptObjectError) as err:
        dst.install(bad)

    assert err.value.object_id == target
    assert not any(dst._has(TENSOR, t) for t in ids)
    assert_empty(dst, records)


@pytest.mark.parametrize(
    "damage",
    [
        "chunk not a chunk",
        "chunk under another name",
        "lone chunk under another name",
        "manifest not json",
        "manifest too short",
    ],
)
def test_damaged_data_records_are_refused(make_store: MakeStore, damage: str) -> None:
    src = make_store()
    ids, _ = make_history(src, versions=2)
    records = records_for(src, ids)
    some_chunk = src.manifest(ids[0]).chunks[2]
    if damage == "chunk not a chunk":
        records = replace_record(records, some_chunk, b"not a chunk record")
    elif damage == "chunk under another name":
        other = src.manifest(ids[1]).chunks[2]  # a valid record, but another chunk's
        records = replace_record(records, some_chunk, src.read_raw(CHUNK, other))
    elif damage == "lone chunk under another name":  # no tensor whose hash would catch it
        other = src.manifest(ids[1]).chunks[2]
        records = [(CHUNK, some_chunk, src.read_raw(CHUNK, other))]
    elif damage == "manifest not json":
        records = replace_record(records, ids[0], b"\xff{")
    else:
        manifest = src.manifest(ids[0])
        short = dataclasses.replace(manifest, chunks=manifest.chunks[:-1])
        records = replace_record(records, ids[0], short.encode())
    dst = make_store()

    with pytest.raises(CorruptObjectError):
        dst.install(shuffled(records))

    assert_empty(dst, records)


def test_manifest_under_another_valid_name_is_refused(make_store: MakeStore) -> None:
    src = make_store()
    ids, _ = make_history(src, versions=2)
    records = records_for(src, ids[:1])
    wrong = "cd" * 32
    bad = [(TENSOR, wrong, d) if o == ids[0] else (k, o, d) for k, o, d in records]
    dst = make_store()

    with pytest.raises(CorruptObjectError, match="does not match its name") as err:
        dst.install(bad)

    assert err.value.object_id == wrong
    assert_empty(dst, bad)
    assert not dst._has(TENSOR, ids[0])


def test_tensor_without_its_chunk_is_refused_naming_the_chunk(make_store: MakeStore) -> None:
    src = make_store()
    ids, _ = make_history(src)
    records = records_for(src, ids)
    lost = src.manifest(ids[0]).chunks[1]  # no other chunk deltas against the oldest version
    assert all(lost not in src._chunk_refs(c)[1] for c in ids_of(records, CHUNK))
    without = [r for r in records if r[1] != lost]
    dst = make_store()

    with pytest.raises(CorruptObjectError, match=lost) as err:
        dst.install(shuffled(without))

    assert err.value.object_id == ids[0]
    assert_empty(dst, records)


@pytest.mark.parametrize(
    ("kind", "oid"),
    [
        ("blob", "ab" * 32),
        ("Tree", "ab" * 32),
        ("tree", "AB" * 32),
        ("tree", "ab" * 31 + "a"),
        ("tree", "zz" * 32),
        ("chunk", "../" + "a" * 61),
    ],
)
def test_invalid_names_are_refused_before_anything_is_written(
    make_store: MakeStore, kind: str, oid: str
) -> None:
    good = b'{"type":"tree"}'
    records: list[Record] = [(TREE, hash_blob(TREE, good), good), (kind, oid, good)]
    dst = make_store()

    with pytest.raises(InvalidNameError):
        dst.install(records)

    assert dst.files() == []
    assert not dst._has(TREE, hash_blob(TREE, good))


def test_damaged_blob_fails_its_group_and_every_later_one(make_store: MakeStore) -> None:
    tree = b'{"type":"tree"}'
    commit = b'{"type":"commit"}'
    records: list[Record] = [
        (TREE, hash_blob(TREE, tree), tree + b" "),
        (COMMIT, hash_blob(COMMIT, commit), commit),
    ]
    dst = make_store()

    with pytest.raises(CorruptObjectError, match="does not match its name"):
        dst.install(records)

    assert_empty(dst, records)


def test_installing_the_same_records_again_changes_nothing(make_store: MakeStore) -> None:
    src = make_store()
    ids, arrays = make_history(src)
    tree_id = src.put_blob(TREE, b'{"type":"tree"}')
    records = [*records_for(src, ids), (TREE, tree_id, src.read_raw(TREE, tree_id))]
    dst = make_store()
    part = records_for(src, ids[-1:])
    assert dst.install(part) == len(part)
    assert dst.install(records) == len(records) - len(part)
    files = sorted(dst.files())
    packs = {p: dst.backend.path(p).read_bytes() for p in files}

    assert dst.install(shuffled(records)) == 0
    assert dst.install(records[:3]) == 0

    assert sorted(dst.files()) == files
    assert {p: dst.backend.path(p).read_bytes() for p in files} == packs
    assert_loads(dst, dict(zip(ids, arrays, strict=True)))


# -- reference graphs that cannot be decoded -----------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize("shape", ["two chunks", "self"])
def test_reference_cycle_is_refused_without_hanging(make_store: MakeStore, shape: str) -> None:
    src = make_store()
    ids, _ = make_history(src, versions=3)
    a, b = src.manifest(ids[0]).chunks[0], src.manifest(ids[1]).chunks[0]
    assert src._chunk_refs(a)[1] == (b,)  # a deltas against b, b against the newest version
    if shape == "self":
        records: list[Record] = [(CHUNK, a, with_refs(src.read_raw(CHUNK, a), (a,)))]
    else:
        records = [
            (CHUNK, a, with_refs(src.read_raw(CHUNK, a), (b,))),
            (CHUNK, b, with_refs(src.read_raw(CHUNK, b), (a,))),
        ]
    records += [(TENSOR, ids[0], src.read_raw(TENSOR, ids[0]))]
    dst = make_store()

    with pytest.raises(CorruptObjectError, match="cycle"):
        dst.install(records)

    assert_empty(dst, records)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "order",
    [
        "top first",
        "bottom first",
        "shuffled",
    ],
)
def test_absurdly_long_chain_is_refused(make_store: MakeStore, order: str) -> None:
    records = chain_records(MAX_DEPTH + 50)  # top of the chain first
    if order == "bottom first":
        records.reverse()
    elif order == "shuffled":
        records = shuffled(records)
    dst = make_store()

    with pytest.raises(CorruptObjectError):
        dst.install(records)

    assert_empty(dst, records)


# -- bugs ----------------------------------------------------------------------------------------
def _partial_fetch(src: PackStore, shapes: list[tuple[int, ...]]) -> list[Record]:
    """The oldest version of a history, stored under several shapes (so its chunks have several
    users), with the delta chain it needs but none of the newer tensors: what fetching one old
    commit (or some layers of it) sends."""
    ids, arrays = make_history(src)
    twins = [src.store(WeightTensor(arrays[0].reshape(s))) for s in shapes]
    records = records_for(src, twins)
    assert ids_of(records, TENSOR) == set(twins) and ids[-1] not in ids_of(records, TENSOR)
    return records


def test_parallel_users_of_one_delta_chunk_whose_base_has_no_tensor_in_the_batch(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: one thread is held between listing the bases and fetching them while the
    other verifies its tensor completely (a GIL switch can do the same)."""
    src = make_store()
    records = _partial_fetch(src, [(ELEMENTS,), (2, ELEMENTS // 2)])
    held: list[int] = []
    other_done = threading.Event()
    lock = threading.Lock()
    list_bases = received._TensorVerifier._undecoded_bases
    verify_tensor = received._TensorVerifier._verify_tensor

    def slow_bases(self: received._TensorVerifier, chunk_id: str) -> list[str]:
        bases = list_bases(self, chunk_id)
        with lock:
            hold = bool(bases) and not held
            if hold:
                held.append(threading.get_ident())
        if hold:
            other_done.wait(10)
        return bases

    def verify(self: received._TensorVerifier, tensor_id: str) -> None:
        try:
            verify_tensor(self, tensor_id)
        finally:
            if threading.get_ident() not in held:
                other_done.set()

    monkeypatch.setattr(received._TensorVerifier, "_undecoded_bases", slow_bases)
    monkeypatch.setattr(received._TensorVerifier, "_verify_tensor", verify)
    dst = make_store(dataclasses.replace(CONFIG, workers=2))

    assert dst.install(records) == len(records)
    assert_installed(src, dst, records)


def test_partial_fetch_with_shared_chunks_installs_under_many_workers(
    make_store: MakeStore,
) -> None:
    src = make_store(dataclasses.replace(CONFIG, max_chain_depth=8))
    records = _partial_fetch(src, [(ELEMENTS,), (2, -1), (4, -1), (-1, 4), (-1, 2), (1, -1)])
    for attempt in range(30):
        dst = make_store(dataclasses.replace(CONFIG, workers=8))
        assert dst.install(shuffled(records, seed=attempt)) == len(records)
    assert_installed(src, dst, records)


@pytest.mark.parametrize("lie", ["one flipped bit of chunk_bytes", "chunks cut elsewhere"])
def test_manifest_whose_chunks_do_not_fit_its_chunk_bytes_is_refused(
    make_store: MakeStore, lie: str
) -> None:
    src = make_store()
    ids, _ = make_history(src, versions=1)
    records = records_for(src, ids)
    if lie == "one flipped bit of chunk_bytes":
        manifest = src.read_raw(TENSOR, ids[0])
        assert b'"chunk_bytes":4096' in manifest
        flipped = manifest.replace(b'"chunk_bytes":4096', b'"chunk_bytes":4196')  # 0 -> 1
        TensorManifest.decode(flipped)  # still a valid manifest: five chunks either way
        records = replace_record(records, ids[0], flipped)
    else:
        arr = np.arange(2048, dtype=np.float32)
        raw = arr.view(np.uint8)
        pieces = [raw[:1024], raw[1024:]]  # 1 KiB + 7 KiB where chunk_bytes says 4 + 4
        records = [
            (
                CHUNK,
                hash_chunk(p.data),
                encode_chunk(p, 4, ChunkEncoding.FULL, CONFIG.codec, dtype="float32"),
            )
            for p in pieces
        ]
        manifest_obj = TensorManifest(
            "float32", (2048,), 4096, tuple(hash_chunk(p.data) for p in pieces)
        )
        records.append((TENSOR, WeightTensor(arr).compute_hash(), manifest_obj.encode()))
    dst = make_store()

    with pytest.raises(CorruptObjectError):
        dst.install(records)
    assert_empty(dst, records)


@pytest.mark.parametrize("cause", ["base not sent", "flipped reference byte"])
def test_delta_chunk_without_its_base_is_a_corrupt_object(
    make_store: MakeStore, cause: str
) -> None:
    src = make_store()
    ids, _ = make_history(src)
    records = records_for(src, ids)
    target = chunk_with(src, ids_of(records, CHUNK), "delta")
    if cause == "base not sent":  # only chunks: no tensor that lacks the base fails first
        (base,) = src._chunk_refs(target)[1]
        records = [r for r in records if r[0] == CHUNK and r[1] != base]
    else:
        data = src.read_raw(CHUNK, target)
        records = replace_record(records, target, flip(data, parse_header(data).header_len - 20))
    dst = make_store()

    with pytest.raises(CorruptObjectError):
        dst.install(shuffled(records))
    assert_empty(dst, records)


@pytest.mark.timeout(60)
def test_installed_chain_is_readable_or_refused(make_store: MakeStore) -> None:
    records = chain_records(MAX_DEPTH + 10)
    dst = make_store()
    try:
        dst.install(shuffled(records))
    except CorruptObjectError:
        assert_empty(dst, records)  # refusing such a chain is fine ...
        return
    for kind, oid, _ in records:  # ... keeping it is fine only if it can be read back
        dst.verify(kind, oid)

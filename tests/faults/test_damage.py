"""Damage that lies about sizes: a length or count field of a stored object set to 512 MiB ..
16 TiB (a flipped high bit), in chunk headers, plane tables, pack indexes, manifests and loose
files. Every read then either returns the right bytes or raises a CoralError naming the damaged
object with the `coral fsck` hint — never a MemoryError, a raw exception or an allocation of the
size the field claims (peak traced memory stays far below it: no timing is measured).

Two kinds of damage: "disk" changes bytes in place (the record no longer matches its pack index
checksum, which is checked before the record is parsed), "forged" rewrites the record with a
fresh checksum (a lying writer): then the size checks must hold on their own, up to the 1 GiB
that bounds any chunk. More values and random cases with CORAL_FAULT_SCALE.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CoralError
from coral.storage import chunk_format, pack, pack_index
from coral.storage.backend import LocalBackend
from coral.storage.chunk_format import ChunkEncoding, parse_header
from coral.storage.config import StoreConfig
from coral.storage.pack import PackWriter, encode_trailer, pack_key
from coral.storage.pack_store import PackStore
from coral.version_control import objects
from coral.version_control.objects import ObjectTooLargeError
from coral.version_control.repository import Repository
from tests.faults.scale import scale, trials
from tests.storage.legacy_repo import build_legacy_repository, loose_path, write_storage_config

MIB, GIB, TIB = 1 << 20, 1 << 30, 1 << 40
HUGE = [512 * MIB, GIB, 3 * GIB, TIB, 16 * TIB]
PEAK_LIMIT = 64 * MIB  # a commit holds about 2 MiB: any claimed size shows far above this
_U64 = struct.Struct("<Q")


@dataclass
class Template:
    """A small repository with delta chains, and the weights of each of its commits."""

    path: Path
    weights: dict[str, dict[str, np.ndarray]]


def _build(path: Path) -> Template:
    weights: dict[str, dict[str, np.ndarray]] = {}
    with Repository.init(path) as repo:
        write_storage_config(repo, {"fsync": False, "chunk_bytes": MIB})
    rng = np.random.default_rng(7)
    a = rng.standard_normal(40_000).astype(np.float32)
    with Repository(path) as repo:
        for step in range(3):
            a = a.copy()
            a[step::97] += np.float32(0.01)
            w = {
                "a": a,
                "z": np.zeros(MIB // 4, np.float32),  # one FULL chunk of ZERO planes
                "mask": np.zeros(MIB, np.uint8),  # the same, one byte per element
                "i": np.arange(5_000, dtype=np.int64),
            }
            repo.add_all_weights(w)
            weights[repo.commit(f"step {step}")] = w
        repo.store.wait_for_maintenance()
    return Template(path, weights)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _build(tmp_path_factory.mktemp("damage") / "repo")


@pytest.fixture
def work(template: Template, tmp_path: Path) -> Path:
    path = tmp_path / "work"
    shutil.copytree(template.path, path)
    return path


# -- finding objects and damaging them ----------------------------------------------------------
def _chunks(store: PackStore) -> dict[str, str]:
    """Chunk ids by role: FULL chunks of zeros (float32, uint8), a delta chunk, and the FULL
    base it needs."""
    delta = next(
        c for c in store.list_blobs("chunk") if store.index.get(c).encoding == ChunkEncoding.XOR
    )
    return {
        "zeros": store.manifest(_tensor_of(store, "z")).chunks[0],
        "bytes": store.manifest(_tensor_of(store, "mask")).chunks[0],
        "delta": delta,
        "base": store.index.get(delta).refs[0],
    }


def _tensor_of(store: PackStore, name: str) -> str:
    repo = store.repository
    return repo.read_tree(repo.read_commit(repo.refs.head().commit).tree_id).entries[name].tensor_id


def _record(store: PackStore, object_id: str) -> bytes:
    return store.read_record(store.index.get(object_id).kind, object_id, check=False)


def _write_in_place(store: PackStore, object_id: str, at: int, value: bytes) -> None:
    """Disk damage: bytes of a record overwritten in its pack (its checksum no longer fits)."""
    loc = store.index.get(object_id)
    with open(store.backend.path(pack_key(loc.pack_id)), "r+b") as fh:
        fh.seek(loc.offset + at)
        fh.write(value)


def _forge(store: PackStore, object_id: str, data: bytes) -> None:
    """A lying writer: the record replaced by `data` under a fresh checksum (new pack)."""
    loc = store.index.get(object_id)
    info = store.index.pack(loc.pack_id)
    writer = PackWriter(store.backend, fsync=False)
    for e in info.entries:
        record = data if e.object_id == object_id else _record(store, e.object_id)
        writer.add(e.kind, e.object_id, record, e.encoding, e.refs)
    writer.finish()
    store.backend.delete(pack_key(loc.pack_id))


def _damage_field(store: PackStore, object_id: str, at: int, value: bytes, forged: bool) -> None:
    if forged:
        data = bytearray(_record(store, object_id))
        data[at : at + len(value)] = value
        _forge(store, object_id, bytes(data))
    else:
        _write_in_place(store, object_id, at, value)


def _header_len(store: PackStore, chunk_id: str) -> int:
    return parse_header(_record(store, chunk_id)).header_len


# -- reading everything back ---------------------------------------------------------------------
@dataclass
class Outcome:
    errors: list[CoralError]
    peak: int
    fsck_ok: bool


def _nudged(array: np.ndarray) -> np.ndarray:
    """A copy with one bit of its first byte flipped (stored against the original)."""
    out = array.copy()
    out.reshape(-1).view(np.uint8)[0] ^= 1
    return out


def _read_all(path: Path, weights: dict[str, dict[str, np.ndarray]]) -> Outcome:
    """Open, read every commit (each tensor bit-exact or a CoralError), commit a nudged copy of
    each tensor on top (their chunks are decoded as delta references, a length no manifest
    states), fsck; peak traced memory of all of it."""
    errors: list[CoralError] = []
    tracemalloc.start()
    try:
        try:
            with Repository(path) as repo:
                for commit, expected in weights.items():
                    try:
                        got = repo.get_all_weights(commit)
                    except CoralError as exc:
                        errors.append(exc)
                        continue
                    for name, array in expected.items():
                        assert got[name].data.tobytes() == array.tobytes(), (commit, name)
                try:
                    repo.add_all_weights({k: _nudged(v) for k, v in expected.items()})
                    repo.commit("on top of damage")
                except CoralError as exc:
                    errors.append(exc)
                fsck_ok = repo.fsck().ok
        except CoralError as exc:
            errors.append(exc)
            fsck_ok = False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Outcome(errors, peak, fsck_ok)


def _assert_refused(outcome: Outcome, damaged: str | None) -> None:
    assert outcome.peak < PEAK_LIMIT, f"peak {outcome.peak >> 20} MiB"
    assert outcome.errors, "damage went unnoticed"
    assert not outcome.fsck_ok
    for exc in outcome.errors:
        assert "fsck" in (exc.hint or ""), exc
    if damaged is not None:
        assert any(damaged in exc.message for exc in outcome.errors), outcome.errors


# -- chunk records ---------------------------------------------------------------------------------
FIELDS: dict[str, Callable[[PackStore, str, int], tuple[int, bytes]]] = {
    "raw length": lambda store, cid, v: (8, _U64.pack(v)),
    "plane count": lambda store, cid, v: (_header_len(store, cid), bytes([v & 0xFF])),
    "plane length": lambda store, cid, v: (_header_len(store, cid) + 2, _U64.pack(v)),
}
# disk damage: any value (the record checksum goes first); forged: beyond the 1 GiB chunk bound
VALUES = {
    ("raw length", False): [512 * MIB, GIB, 3 * GIB, 16 * TIB],
    ("raw length", True): [3 * GIB, 16 * TIB],
    ("plane length", False): [3 * GIB],
    ("plane length", True): [3 * GIB, 16 * TIB],
    ("plane count", False): [255],
    ("plane count", True): [255],
}


def _values(field: str, forged: bool) -> list[int]:
    if scale() == 1 or field == "plane count":
        return VALUES[field, forged]
    return [v for v in HUGE if not forged or v > GIB]


@pytest.mark.parametrize("forged", [False, True], ids=["disk", "forged"])
@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("role", ["zeros", "delta", "base"])
def test_a_chunk_length_that_lies_is_refused_before_allocating(
    template: Template, work: Path, role: str, field: str, forged: bool
) -> None:
    for value in _values(field, forged):
        shutil.rmtree(work)
        shutil.copytree(template.path, work)
        with Repository(work) as repo:
            target = _chunks(repo.store)[role]
            at, raw = FIELDS[field](repo.store, target, value)
            _damage_field(repo.store, target, at, raw, forged)
        _assert_refused(_read_all(work, template.weights), target)


def test_a_plane_table_with_more_planes_than_bytes_is_refused(
    template: Template, work: Path
) -> None:
    """A forged record of 255 ZERO planes for a 1-byte dtype: 255 times the chunk if decoded."""
    with Repository(work) as repo:
        target = _chunks(repo.store)["bytes"]
        record = _record(repo.store, target)
        table = bytes([255]) + struct.pack("<BQ", 2, 0) * 255  # mode ZERO, no payload
        _forge(repo.store, target, record[: _header_len(repo.store, target)] + table)
    _assert_refused(_read_all(work, template.weights), target)


@pytest.mark.parametrize("strict", [False, True], ids=["xor chain", "level by level"])
def test_a_delta_base_is_verified_before_the_delta_is_decoded(
    template: Template, work: Path, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    with Repository(work) as repo:
        roles = _chunks(repo.store)
        _write_in_place(repo.store, roles["base"], 40, b"\xff")
    decoded: list[str] = []
    for name in ("decode_planes", "decode_planes_sparse"):
        real = getattr(chunk_format, name)

        def counting(*args: object, _real: Callable[..., object] = real, **kw: object) -> object:
            decoded.append("planes")
            return _real(*args, **kw)

        monkeypatch.setattr(chunk_format, name, counting)
    with Repository(work) as repo, pytest.raises(CoralError) as info:
        repo.store._decode(roles["delta"], strict=strict)
    assert roles["base"] in info.value.message and "fsck" in (info.value.hint or "")
    assert decoded == [], "the delta's planes were decoded before its base was checked"


# -- pack indexes ---------------------------------------------------------------------------------
def _pack_with(store: PackStore, object_id: str) -> tuple[Path, int]:
    loc = store.index.get(object_id)
    path = store.backend.path(pack_key(loc.pack_id))
    return path, path.stat().st_size


@pytest.mark.parametrize("count", ["entries", "hints"])
def test_a_pack_index_count_that_lies_is_refused(
    template: Template, work: Path, count: str
) -> None:
    for value in (1 << 24, (1 << 32) - 1):
        shutil.rmtree(work)
        shutil.copytree(template.path, work)
        with Repository(work) as repo:
            path, size = _pack_with(repo.store, _chunks(repo.store)["zeros"])
        at = size - 37 + (8 if count == "entries" else 12)  # u64 sequence, u32 entries, u32 hints
        with open(path, "r+b") as fh:
            fh.seek(at)
            fh.write(struct.pack("<I", value))
        _assert_refused(_read_all(work, template.weights), None)


@pytest.mark.parametrize("field", ["offset", "length"])
def test_a_pack_index_entry_that_lies_is_refused(
    template: Template, work: Path, field: str
) -> None:
    """An entry's offset or length set huge under a valid index checksum (forged)."""
    for value in (3 * GIB, 16 * TIB):
        shutil.rmtree(work)
        shutil.copytree(template.path, work)
        with Repository(work) as repo:
            store = repo.store
            target = _chunks(store)["zeros"]
            loc = store.index.get(target)
            info = store.index.pack(loc.pack_id)
            entries = [
                e._replace(**{field: value}) if e.object_id == target else e for e in info.entries
            ]
            path = store.backend.path(pack_key(loc.pack_id))
            body = path.read_bytes()[: info.data_end]
            path.write_bytes(body + encode_trailer(entries, info.hints, info.sequence))
        _assert_refused(_read_all(work, template.weights), None)


def test_a_large_index_block_is_checked_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry count that claims most of a big pack is checksummed in pieces, not read."""
    piece = 64 << 10  # the 8 MiB piece, scaled down with the pack
    monkeypatch.setattr(pack, "INDEX_PIECE", piece)
    monkeypatch.setattr(pack_index, "INDEX_PIECE", piece)
    store = PackStore(tmp_path / "objects", StoreConfig(fsync=False))
    blob = store.put_blob("file", os.urandom(4 * MIB))
    path = store.backend.path(pack_key(store.index.get(blob).pack_id))
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # u64 sequence, u32 entry count: most of the file
        fh.seek(size - 37 + 8)
        fh.write(struct.pack("<I", (size - 64) // 123))
    tracemalloc.start()
    try:
        index = pack_index.PackIndex(LocalBackend(tmp_path / "objects", fsync=False))
        index.refresh()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stem in index.damaged and "checksum" in index.damaged[path.stem].message
    assert peak < 4 * piece, f"peak {peak} bytes"


# -- manifests ---------------------------------------------------------------------------------
def _more_dimensions(manifest: dict[str, object]) -> None:
    manifest["shape"] = [1] * 70 + list(manifest["shape"])  # type: ignore[call-overload]


def _chunk_id_not_a_string(manifest: dict[str, object]) -> None:
    manifest["chunks"] = [12345]


MANIFEST_LIES: dict[str, Callable[[dict[str, object]], None]] = {
    "shape 2^32 x 2^32": lambda m: m.update(shape=[2**32, 2**32]),
    "shape 10^30": lambda m: m.update(shape=[10**30]),
    "chunk size 16 TiB": lambda m: m.update(chunk_bytes=16 * TIB),
    "71 dimensions of the same size": _more_dimensions,
    "negative dimensions": lambda m: m.update(shape=[-1, -(MIB // 4)]),
    "a chunk id that is a number": _chunk_id_not_a_string,
}


@pytest.mark.parametrize("lie", sorted(MANIFEST_LIES))
def test_a_manifest_that_lies_is_refused(template: Template, work: Path, lie: str) -> None:
    with Repository(work) as repo:
        tid = _tensor_of(repo.store, "z")
        doc = json.loads(_record(repo.store, tid))
        MANIFEST_LIES[lie](doc)
        _forge(repo.store, tid, json.dumps(doc).encode())
    _assert_refused(_read_all(work, template.weights), tid)


# -- tree and commit objects ---------------------------------------------------------------------
def test_the_size_bounds_are_documented_ones() -> None:
    assert (objects.MAX_TREE_BYTES, objects.MAX_COMMIT_BYTES) == (256 << 20, 16 << 20)
    assert "MAX_TREE_BYTES" in (Path(__file__).parents[2] / "docs" / "FORMAT.md").read_text()


def test_tree_and_commit_sizes_are_bounded_on_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects, "MAX_COMMIT_BYTES", 4096)
    monkeypatch.setattr(objects, "MAX_TREE_BYTES", 4096)
    with Repository.init(tmp_path / "r") as repo:
        repo.add_weight("w", np.ones(1, np.float32))
        with pytest.raises(ObjectTooLargeError, match="a commit may hold"):
            repo.commit("m" * 5000)
        with pytest.raises(ObjectTooLargeError, match="a commit may hold"):
            repo.commit("ok", metadata={"notes": "x" * 5000})
        assert repo.refs.head().commit is None and repo.log() == []
        repo.add_all_weights({f"w{i:03d}": np.ones(1, np.float32) for i in range(60)})
        with pytest.raises(ObjectTooLargeError, match="a tree may hold"):
            repo.commit("too many tensors for this bound")
        repo.unstage()
        repo.add_weight("w", np.ones(1, np.float32))
        assert repo.commit("ok")


def test_a_stored_tree_or_commit_over_the_bound_is_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked on read before parsing: a size field flipped in a trusted-looking record."""
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights({f"w{i:03d}": np.ones(1, np.float32) for i in range(60)})
        head = repo.commit("a tree of about 8 KiB")
    monkeypatch.setattr(objects, "MAX_TREE_BYTES", 4096)
    with Repository(tmp_path / "r") as repo:
        with pytest.raises(CoralError, match="larger than any tree") as info:
            repo.get_all_weights(head)
        assert "fsck" in (info.value.hint or "")
    monkeypatch.setattr(objects, "MAX_COMMIT_BYTES", 64)
    with Repository(tmp_path / "r") as repo, pytest.raises(CoralError, match="larger than any"):
        repo.read_commit(head)


# -- loose files of the first release ------------------------------------------------------------
@pytest.fixture(scope="module")
def legacy(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    path = tmp_path_factory.mktemp("legacy") / "repo"
    history = build_legacy_repository(path, {"fsync": False})
    return path, history.weights


def _live_loose_chunk(path: Path) -> str:
    with Repository(path) as repo:
        return repo.store.manifest(_tensor_of(repo.store, "layer.weight")).chunks[0]


@pytest.mark.parametrize("damage", ["raw length", "huge file", "directory", "symlink loop"])
def test_a_loose_file_that_lies_is_refused(
    legacy: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path, damage: str
) -> None:
    source, weights = legacy
    work = tmp_path / "legacy"
    shutil.copytree(source, work, symlinks=True)
    cid = _live_loose_chunk(work)
    path = loose_path(work / ".coral" / "objects", "chunk", cid)
    if damage == "raw length":
        data = bytearray(path.read_bytes())
        data[9:17] = _U64.pack(16 << 40)  # version 1: the depth byte comes first
        path.write_bytes(bytes(data))
    elif damage == "huge file":
        os.truncate(path, 3 << 30)  # sparse: nothing is written, reading it would allocate it
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.unlink()
        path.symlink_to(path)
    _assert_refused(_read_all(work, weights), cid)


# -- random fields, and the CLI --------------------------------------------------------------------
def test_random_huge_fields_never_amplify(template: Template, work: Path) -> None:
    """Disk damage: a huge value written at a random place of a random record."""
    rnd = random.Random(14)
    for _ in range(trials(6)):
        shutil.rmtree(work)
        shutil.copytree(template.path, work)
        with Repository(work) as repo:
            store = repo.store
            kind = rnd.choice(["chunk", "chunk", "tensor", "tree", "commit"])
            target = rnd.choice(store.list_blobs(kind))
            size = len(_record(store, target))
            at = rnd.randrange(0, max(1, size - 8))
            _write_in_place(store, target, at, _U64.pack(rnd.choice(HUGE)))
        outcome = _read_all(work, template.weights)
        assert outcome.peak < PEAK_LIMIT, (kind, at)
        for exc in outcome.errors:
            assert "fsck" in (exc.hint or ""), exc


def test_the_cli_reports_a_lying_chunk_as_damage(template: Template, work: Path) -> None:
    with Repository(work) as repo:
        target = _chunks(repo.store)["zeros"]
        _damage_field(repo.store, target, 8, _U64.pack(16 << 40), forged=True)
    runner = CliRunner()
    for args in (["show", "HEAD:z"], ["fsck"], ["export", "HEAD", str(work / "out.npz")]):
        result = runner.invoke(app, ["-C", str(work), *args])
        assert result.exit_code == 1, (args, result.output)
        assert "bug in Coral" not in result.output and "MemoryError" not in result.output
        assert target[:10] in result.output, (args, result.output)

"""Opening a store reads each pack's index block and checks it, nothing more: a lookup builds
the id map of the packs it searches (newest first) and decodes one entry; listing a kind reads
ids without decoding entries. What `coral log -n 20` costs on a big repository depends on the
packs it touches, not on every object stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral.errors import CorruptObjectError
from coral.storage.config import StoreConfig
from coral.storage.pack import PackWriter, encode_trailer, pack_key
from coral.storage.pack_index import PackIndex
from coral.storage.pack_store import PackStore


def _store_with_packs(path: Path, packs: int, per_pack: int) -> tuple[list[list[str]], PackStore]:
    store = PackStore(path, StoreConfig(fsync=False))
    ids: list[list[str]] = []
    for p in range(packs):
        blobs = [("file", f"pack {p} blob {i}".encode()) for i in range(per_pack)]
        ids.append(store.put_blobs(blobs))  # one pack each
    return ids, store


def test_open_decodes_nothing_and_a_lookup_touches_the_newest_packs_only(tmp_path: Path) -> None:
    ids, writer = _store_with_packs(tmp_path / "objects", packs=5, per_pack=50)
    writer.close()
    store = PackStore(tmp_path / "objects", StoreConfig(fsync=False))
    packs = store.index.packs()
    assert len(packs) == 5
    assert not any(p.table.indexed or p.table.decoded for p in packs)
    newest = ids[-1][7]
    assert store.get_blob("file", newest) == b"pack 4 blob 7"
    touched = [p.table.indexed for p in store.index.packs()]
    assert touched == [False, False, False, False, True]  # oldest first: only the newest
    assert store.get_blob("file", ids[0][3]) == b"pack 0 blob 3"  # found in the oldest
    assert all(p.table.indexed for p in store.index.packs())
    assert not any(p.table.decoded for p in store.index.packs())  # one entry each, not all
    assert "ab" * 32 not in store.index and store.index.get("not hex") is None
    listed = store.list_blobs("file")
    assert listed == sorted(i for pack in ids for i in pack)
    assert not any(p.table.decoded for p in store.index.packs())  # ids read from the block
    store.close()


def test_the_newest_pack_wins_and_a_dropped_pack_is_forgotten(tmp_path: Path) -> None:
    """Two packs hold one object (an interrupted repack): the newer one answers; once it is
    removed, the older one does (no answer remembered from the dropped pack)."""
    ids, store = _store_with_packs(tmp_path / "objects", packs=1, per_pack=3)
    oid = ids[0][1]
    older = store.index.get(oid)
    assert older is not None
    copy = PackWriter(store.backend, fsync=False)
    copy.add("file", oid, store.read_record("file", oid, check=False))
    contents = copy.finish()
    store.index.add_pack(contents, copy.size)
    assert store.index.get(oid).pack_id == contents.pack_id  # type: ignore[union-attr]
    store.backend.delete(pack_key(contents.pack_id))
    store.index.refresh(force=True)
    assert store.index.get(oid).pack_id == older.pack_id  # type: ignore[union-attr]
    assert store.get_blob("file", oid) == b"pack 0 blob 1"
    store.close()


def test_a_lying_entry_is_refused_when_it_is_looked_up(tmp_path: Path) -> None:
    """An entry whose offset points past the records, under a valid index checksum (a forged
    pack): opening still works, looking that object up is a CorruptObjectError naming fsck,
    and its neighbours read fine."""
    ids, store = _store_with_packs(tmp_path / "objects", packs=1, per_pack=3)
    target, neighbour = ids[0][0], ids[0][2]
    info = store.index.packs()[0]
    store.close()
    entries = [e._replace(offset=1 << 40) if e.object_id == target else e for e in info.entries]
    path = tmp_path / "objects" / pack_key(info.pack_id)
    body = path.read_bytes()[: info.data_end]
    path.write_bytes(body + encode_trailer(entries, info.hints, info.sequence))
    index = PackIndex(store.backend)
    index.refresh()
    assert not index.damaged
    with pytest.raises(CorruptObjectError) as refused:
        index.get(target)
    assert "out of bounds" in refused.value.message and "fsck" in (refused.value.hint or "")
    assert index.get(neighbour) is not None

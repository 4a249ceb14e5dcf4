"""Deliberate damage to a pack store, for tests: flip a record's byte, lose an object."""

from __future__ import annotations

from pathlib import Path

from coral.storage.pack import PackWriter, pack_key
from coral.storage.pack_store import PackStore


def locate(store: PackStore, object_id: str) -> tuple[Path, int, int]:
    """(pack file, offset, length) of an object's record."""
    loc = store.index.get(object_id)
    assert loc is not None, f"{object_id} is in no pack"
    return store.backend.path(pack_key(loc.pack_id)), loc.offset, loc.length


def flip_record_byte(store: PackStore, object_id: str, offset: int = -1, mask: int = 0x40) -> Path:
    """Flip bits of one byte of an object's record, in place (disk damage); returns the pack."""
    path, start, length = locate(store, object_id)
    data = bytearray(path.read_bytes())
    data[start + (offset % length)] ^= mask
    path.write_bytes(bytes(data))
    return path


def truncate_record(store: PackStore, object_id: str, keep: int) -> None:
    """Cut a record short by rewriting its pack with the record's first `keep` bytes only."""
    _rewrite(store, object_id, lambda data: data[:keep])


def remove_object(store: PackStore, object_id: str) -> None:
    """Lose one object: its pack is rewritten without it (as if the record had never landed)."""
    _rewrite(store, object_id, None)


def _rewrite(store: PackStore, object_id: str, change: object) -> None:
    loc = store.index.get(object_id)
    assert loc is not None, f"{object_id} is in no pack"
    info = store.index.pack(loc.pack_id)
    assert info is not None
    writer = PackWriter(store.backend, fsync=False)
    for entry in info.entries:
        data = store.read_record(entry.kind, entry.object_id, check=False)
        if entry.object_id == object_id:
            if change is None:
                continue
            data = change(data)  # type: ignore[operator]
            writer.add(entry.kind, entry.object_id, data, entry.encoding, entry.refs)
            # keep the old checksum so only the content is wrong
            writer.entries[-1] = type(entry)(
                entry.kind,
                entry.object_id,
                writer.entries[-1].offset,
                len(data),
                entry.checksum,
                entry.encoding,
                entry.refs,
            )
            continue
        writer.add(entry.kind, entry.object_id, data, entry.encoding, entry.refs)
    for older, newer in info.hints:
        writer.hint(older, newer)
    contents = writer.finish()
    store.index.add_pack(contents, writer.size)
    store.index.remove_pack(loc.pack_id)
    store.retire_pack(loc.pack_id)
    store.backend.delete(pack_key(loc.pack_id))

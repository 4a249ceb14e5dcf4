"""Moving records between a local store and a remote's packs, in parallel streams.

Downloads group the wanted records by pack and read each pack's spans in as few ranged GETs as
fit; uploads cut the records into packs of about `PACK_TARGET` bytes and send them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from coral.core.hashing import hash_blob
from coral.errors import CorruptObjectError, RemoteError
from coral.remotes.layout import RemoteLayout
from coral.storage.base import CHUNK
from coral.storage.pack import NOT_A_CHUNK, PackWriter
from coral.storage.pack_index import Location

if TYPE_CHECKING:
    from coral.storage.pack_store import PackStore

PACK_TARGET = 32 << 20  # bytes of records per uploaded pack
STREAMS = 8
Progress = Callable[[str, int, int], None]  # (phase, done bytes, total bytes)


def download(
    layout: RemoteLayout,
    index: dict[str, Location],
    ids: Iterable[str],
    progress: Progress | None = None,
    phase: str = "download",
) -> dict[str, bytes]:
    """The stored bytes of `ids` (each must be in `index`), fetched pack by pack in parallel."""
    by_pack: dict[str, list[str]] = {}
    total = 0
    for oid in dict.fromkeys(ids):
        loc = index.get(oid)
        if loc is None:
            raise RemoteError(
                f"the remote lacks object {oid}", hint="push it again from its source"
            )
        by_pack.setdefault(loc.pack_id, []).append(oid)
        total += loc.length
    got: dict[str, bytes] = {}
    if not by_pack:
        return got
    done = 0

    def fetch_pack(pack_id: str) -> dict[str, bytes]:
        oids = by_pack[pack_id]
        spans = [(index[o].offset, index[o].length) for o in oids]
        return dict(zip(oids, layout.read_records(pack_id, spans), strict=True))

    with ThreadPoolExecutor(STREAMS, thread_name_prefix="coral-fetch") as pool:
        for part in pool.map(fetch_pack, sorted(by_pack, key=lambda p: -len(by_pack[p]))):
            got.update(part)
            done += sum(len(d) for d in part.values())
            if progress:
                progress(phase, done, total)
    return got


def download_blobs(
    layout: RemoteLayout,
    index: dict[str, Location],
    ids: Iterable[str],
    progress: Progress | None = None,
    phase: str = "history",
) -> dict[str, bytes]:
    """Like `download`, for commits, trees, tags and model files: each is hashed against its
    name before anyone parses it (a tampered one is a CorruptObjectError)."""
    fetched = download(layout, index, ids, progress, phase)
    for oid, data in fetched.items():
        if hash_blob(index[oid].kind, data) != oid:
            raise CorruptObjectError(
                oid, None, f"received {index[oid].kind} does not match its name"
            )
    return fetched


def upload(
    layout: RemoteLayout,
    store: PackStore,
    phases: list[list[tuple[str, str]]],
    progress: Progress | None = None,
) -> int:
    """Upload records in packs of ~PACK_TARGET bytes; each phase starts once the one before
    landed (chunks before the tensors that need them, those before commits). Returns bytes."""
    total = sum(
        loc.length for phase in phases for _, o in phase if (loc := store.index.get(o)) is not None
    )
    sent = 0

    def send(batch: list[tuple[str, str]]) -> int:
        writer = PackWriter(layout.backend, fsync=True)
        for kind, oid in batch:
            encoding, refs = store._chunk_refs(oid) if kind == CHUNK else (NOT_A_CHUNK, ())
            writer.add(kind, oid, store.read_record(kind, oid), encoding, refs)
        writer.finish()
        return writer.size

    with ThreadPoolExecutor(STREAMS, thread_name_prefix="coral-push") as pool:
        for phase in phases:
            for size in pool.map(send, batches(store, phase)):
                sent += size
                if progress:
                    progress("upload", sent, total)
    return sent


def batches(store: PackStore, items: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    """Cut records into groups of about PACK_TARGET stored bytes (one pack each)."""
    batch: list[tuple[str, str]] = []
    size = 0
    for kind, oid in items:
        loc = store.index.get(oid)
        batch.append((kind, oid))
        size += loc.length if loc is not None else 0
        if size >= PACK_TARGET:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch

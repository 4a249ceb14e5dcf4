"""`find_damage`: the live objects that must be intact before gc deletes anything.

gc keeps what live objects reference and deletes the rest, and its compaction copies live
records into new packs. A damaged or missing live object hides what it references, which would
then be deleted as garbage; a damaged record copied into a newer pack would shadow the good copy
a user restores from a backup. So every live object is checked first:
- no pack index may be damaged (what its objects reference is unknown);
- every live tensor's manifest and every chunk it needs, delta references included, must be
  present, and every reference link readable (from the pack index, or a loose chunk's header);
- every live record matches its pack index checksum (XXH3-64; blobs also their BLAKE3 name);
  loose files of the first release are verified in full.
Tensors a partial clone has not fetched yet are expected absences, not damage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coral.errors import CoralError, CorruptObjectError, ObjectNotFoundError
from coral.storage.base import CHUNK

if TYPE_CHECKING:
    from coral.storage.pack_store import PackStore

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Damage:
    """One damaged or missing object: its kind and id, where it is, what is wrong."""

    kind: str
    object_id: str
    where: str | None
    reason: str

    def __str__(self) -> str:
        where = f" ({self.where})" if self.where else ""
        return f"{self.kind} {self.object_id[:10]}{where}: {self.reason}"


def find_damage(
    store: PackStore,
    live_tensors: Iterable[str],
    live_blobs: Mapping[str, Iterable[str]],
    advance: Advance | None = None,
) -> list[Damage]:
    """Every damaged or missing object among the live ones and what they need (see module)."""
    store.index.refresh(force=True)
    found = [
        Damage("pack", pack_id, exc.path, exc.reason)
        for pack_id, exc in sorted(store.index.damaged.items())
    ]
    for kind, ids in sorted(live_blobs.items()):
        found += _checked(store, [(kind, oid) for oid in sorted(set(ids))], advance)
    chunks: list[str] = []
    for tid in sorted(set(live_tensors)):
        try:
            chunks += store._manifest(tid, fetch=False).chunks
        except ObjectNotFoundError:
            if not store.promisor.configured:  # a partial clone fetches tensors on demand
                found.append(Damage("tensor", tid, None, "tensor is missing"))
        except CorruptObjectError as exc:
            found.append(Damage("tensor", tid, exc.path, exc.reason))
        if advance is not None:
            advance(1)
    live, broken = _chunk_closure(store, chunks)
    found += broken
    found += _checked(store, [(CHUNK, cid) for cid in _by_position(store, live)], advance)
    return found


def _chunk_closure(store: PackStore, start: Iterable[str]) -> tuple[list[str], list[Damage]]:
    """The chunks `start` needs, delta references included, and those whose links are lost."""
    seen: set[str] = set()
    readable: list[str] = []
    broken: list[Damage] = []
    stack = list(dict.fromkeys(start))
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        try:
            refs = store._chunk_refs(cid)[1]
        except ObjectNotFoundError:
            broken.append(Damage(CHUNK, cid, None, "chunk is missing"))
            continue
        except CorruptObjectError as exc:
            broken.append(Damage(CHUNK, cid, exc.path, exc.reason))
            continue
        readable.append(cid)
        stack.extend(refs)
    return readable, broken


def _by_position(store: PackStore, chunks: list[str]) -> list[str]:
    """Chunks in pack and offset order (sequential reads); loose ones last."""

    def position(cid: str) -> tuple[int, str, int]:
        loc = store.index.get(cid)
        return (0, loc.pack_id, loc.offset) if loc is not None else (1, cid, 0)

    return sorted(chunks, key=position)


def _checked(
    store: PackStore, objects: list[tuple[str, str]], advance: Advance | None
) -> list[Damage]:
    """The damage among `objects` ((kind, id) pairs), checked in parallel."""

    def check(item: tuple[str, str]) -> Damage | None:
        kind, oid = item
        try:
            _check_one(store, kind, oid)
        except ObjectNotFoundError:
            return Damage(kind, oid, None, f"{kind} is missing")
        except CorruptObjectError as exc:
            return Damage(kind, oid, exc.path, exc.reason)
        except CoralError as exc:
            return Damage(kind, oid, store.where(kind, oid), exc.message)
        return None

    found = []
    for damage in store.pool.map(check, objects):
        if damage is not None:
            found.append(damage)
        if advance is not None:
            advance(1)
    return found


def _check_one(store: PackStore, kind: str, object_id: str) -> None:
    """Packed chunks against their record checksum, loose ones in full; blobs by name."""
    if kind != CHUNK:
        store.get_blob(kind, object_id)
    elif store.index.get(object_id) is not None:
        store.read_record(CHUNK, object_id)
    else:
        store.verify(CHUNK, object_id)

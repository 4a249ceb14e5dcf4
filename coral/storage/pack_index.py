"""`PackIndex`: which pack holds each object, read from the packs' own trailers.

Packs are self-describing (each ends in its index), so the repository-wide index is derived
state: it is rebuilt from the trailers of the packs present, and a pack that appears or
disappears (another process committed, a repack ran) is picked up by `refresh()`. When two
packs hold the same object (a repack was interrupted before it deleted what it superseded),
the newer pack's record wins; both decode to the same bytes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from coral.errors import CorruptObjectError
from coral.storage.backend import Backend, KeyNotFoundError
from coral.storage.pack import (
    INDEX_PIECE,
    PACK_DIR,
    PACK_SUFFIX,
    TAIL_SIZE,
    PackContents,
    PackEntry,
    PackFormatError,
    check_index_block,
    index_length,
    pack_key,
    parse_trailer,
)

_TICK = 0.05  # seconds: more than the coarsest file-time granularity of local filesystems


class Location(NamedTuple):
    """An object's record: the pack, where it sits, and (for chunks) its delta references."""

    pack_id: str
    sequence: int
    entry: PackEntry

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def offset(self) -> int:
        return self.entry.offset

    @property
    def length(self) -> int:
        return self.entry.length

    @property
    def encoding(self) -> int:
        return self.entry.encoding

    @property
    def refs(self) -> tuple[str, ...]:
        return self.entry.refs


@dataclass(frozen=True)
class PackInfo:
    pack_id: str
    sequence: int
    size: int
    data_end: int
    entries: tuple[PackEntry, ...]
    hints: tuple[tuple[str, str], ...]


class PackIndex:
    """Thread-safe map of object id -> Location over every pack of a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.RLock()
        self._packs: dict[str, PackInfo] = {}
        self._objects: dict[str, Location] = {}
        self._by_kind: dict[str, set[str]] = defaultdict(set)
        self.damaged: dict[str, CorruptObjectError] = {}  # packs whose index cannot be read
        self._listed: tuple[float | None, float] | None = None  # (folder mtime, listing time)

    # -- loading ------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Pick up packs written or removed since the last look.

        The listing is taken under the lock that `add_pack` / `remove_pack` take, so a pack this
        process publishes meanwhile is never dropped for missing from an older listing. On local
        files an unchanged folder is not listed again (see `_unchanged`).
        """
        with self._lock:
            stamp = self._folder_stamp()
            if not force and self._unchanged(stamp):
                return
            for _ in range(8):
                listed_at = time.time()
                if not self._list_once():
                    break
                stamp = self._folder_stamp()  # a repack ran meanwhile: list what it wrote
            self._listed = (stamp, listed_at)

    def _list_once(self) -> bool:
        """Add listed packs not known yet, drop known ones not listed; whether a listed pack
        was deleted before it could be read (a repack elsewhere, whose new pack the listing
        may have missed)."""
        present = {}
        for info in self.backend.list(PACK_DIR + "/"):
            name = info.key.rsplit("/", 1)[-1]
            if name.endswith(PACK_SUFFIX):
                present[name[: -len(PACK_SUFFIX)]] = info.size
        for pack_id in [p for p in self._packs if p not in present]:
            self._drop(pack_id)
        vanished = False
        for pack_id, size in present.items():
            if pack_id in self._packs:
                continue
            try:
                self._add(self.read_pack(pack_id, size))
            except KeyNotFoundError:
                vanished = True
            except CorruptObjectError as exc:
                self.damaged[pack_id] = exc  # its objects are missing; fsck reports it
            else:
                self.damaged.pop(pack_id, None)
        return vanished

    def _folder_stamp(self) -> float | None:
        if not self.backend.capabilities.local_path:
            return None
        try:
            return self.backend.path(PACK_DIR).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _unchanged(self, stamp: float | None) -> bool:
        """Whether the packs folder cannot have changed since the last listing: same mtime, and
        that listing was taken well after the mtime (file times advance in coarse ticks)."""
        if stamp is None or self._listed is None:
            return False
        last_stamp, listed_at = self._listed
        return stamp == last_stamp and listed_at > stamp + _TICK

    def read_pack(self, pack_id: str, size: int | None = None) -> PackInfo:
        """Parse one pack's trailer (CorruptObjectError naming the pack when it is damaged);
        its counts are checked against the file before the index block is read."""
        key = pack_key(pack_id)
        try:
            if size is None:
                size = self.backend.stat(key).size
            tail = self.backend.get(key, max(0, size - TAIL_SIZE), TAIL_SIZE)
            length = index_length(tail, size)
            if length > INDEX_PIECE:  # checked before a block of the claimed size is read
                check_index_block(lambda at, n: self.backend.get(key, at, n), size, tail, length)
            block = self.backend.get(key, size - length, length)
            contents = parse_trailer(pack_id, block, size)
        except PackFormatError as exc:
            where = f"{self.backend.describe()}/{key}"
            at = f" at offset {exc.offset}" if exc.offset is not None else ""
            raise CorruptObjectError(
                pack_id,
                where,
                f"damaged pack index{at}: {exc}",
                hint="run `coral fsck`; objects of this pack that other packs also hold are safe",
            ) from None
        return _info(contents, size)

    def add_pack(self, contents: PackContents, size: int | None = None) -> None:
        """Register a pack this process just wrote."""
        with self._lock:
            self._add(_info(contents, size if size is not None else contents.data_end))

    def remove_pack(self, pack_id: str) -> None:
        with self._lock:
            self._drop(pack_id)

    def _add(self, info: PackInfo) -> None:
        self._packs[info.pack_id] = info
        objects, by_kind, sequence = self._objects, self._by_kind, info.sequence
        where = (info.pack_id, sequence)
        make = tuple.__new__  # Location(...) without its Python-level __new__ (hot: every open)
        for entry in info.entries:
            oid = entry.object_id
            current = objects.get(oid)
            if current is None or current.sequence < sequence:
                objects[oid] = make(Location, (*where, entry))
                by_kind[entry.kind].add(oid)

    def _drop(self, pack_id: str) -> None:
        info = self._packs.pop(pack_id, None)
        if info is None:
            return
        orphans = {
            e.object_id: e
            for e in info.entries
            if (loc := self._objects.get(e.object_id)) is not None and loc.pack_id == pack_id
        }
        if not orphans:
            return
        best: dict[str, Location] = {}  # one pass over the other packs, not one per object
        for other in self._packs.values():
            for entry in other.entries:
                if entry.object_id in orphans:
                    found = best.get(entry.object_id)
                    if found is None or found.sequence < other.sequence:
                        best[entry.object_id] = Location(other.pack_id, other.sequence, entry)
        for oid, entry in orphans.items():
            if oid in best:
                self._objects[oid] = best[oid]
            else:
                del self._objects[oid]
                self._by_kind[entry.kind].discard(oid)

    # -- queries ------------------------------------------------------------------------------
    def get(self, object_id: str) -> Location | None:
        return self._objects.get(object_id)

    def __contains__(self, object_id: str) -> bool:
        return object_id in self._objects

    def ids(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(self._by_kind.get(kind, ()))

    def packs(self) -> list[PackInfo]:
        with self._lock:
            return sorted(self._packs.values(), key=lambda p: p.sequence)

    def pack(self, pack_id: str) -> PackInfo | None:
        return self._packs.get(pack_id)

    def hints(self) -> Iterator[tuple[str, str]]:
        """(older, newer) chunk pairs, oldest pack first."""
        for info in self.packs():
            yield from info.hints

    def live_bytes(self, pack_id: str) -> int:
        """Bytes of the pack's records that the index still points at."""
        info = self._packs.get(pack_id)
        if info is None:
            return 0
        total = 0
        for e in info.entries:
            loc = self._objects.get(e.object_id)
            if loc is not None and loc.pack_id == pack_id:
                total += e.length
        return total

    def chain_depth(self, chunk_id: str, limit: int = 1 << 10) -> int:
        """Delta steps from a chunk down to FULL (longest path), from the index alone."""
        depth = 0
        frontier = {chunk_id}
        while True:
            refs: set[str] = set()
            for cid in frontier:
                loc = self._objects.get(cid)
                if loc is not None:
                    refs.update(loc.refs)
            if not refs:
                return depth
            depth += 1
            if depth > limit:
                return depth  # a cycle (damage): deeper than any chain is allowed
            frontier = refs

    def missing_pack(self, pack_id: str) -> bool:
        try:
            self.backend.stat(pack_key(pack_id))
        except KeyNotFoundError:
            return True
        return False


def _info(contents: PackContents, size: int) -> PackInfo:
    return PackInfo(
        contents.pack_id,
        contents.sequence,
        size,
        contents.data_end,
        contents.entries,
        contents.hints,
    )

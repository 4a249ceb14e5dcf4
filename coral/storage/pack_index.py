"""`PackIndex`: which pack holds each object, read from the packs' own trailers.

Packs are self-describing (each ends in its index), so the repository-wide index is derived
state: it is rebuilt from the trailers of the packs present, and a pack that appears or
disappears (another process committed, a repack ran) is picked up by `refresh()`. When two
packs hold the same object (a repack was interrupted before it deleted what it superseded),
the newer pack's record wins; both decode to the same bytes.

Opening reads each pack's index block and checks its checksum, nothing more: an object is
looked up pack by pack, newest first, in a map of raw ids that each pack builds on its first
lookup (see `PackTable`), and the answer is remembered until the set of packs changes. A
command that reads a handful of objects (`coral log -n 20`, `status`) pays for the packs it
touches, not for every object of the repository.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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
    PackTable,
    check_index_block,
    index_length,
    pack_key,
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


class PackInfo:
    """One pack: its id, order, size and (decoded on demand) index."""

    __slots__ = ("data_end", "pack_id", "sequence", "size", "table")

    def __init__(self, table: PackTable, size: int) -> None:
        self.pack_id = table.pack_id
        self.sequence = table.sequence
        self.size = size
        self.data_end = table.data_end
        self.table = table

    @property
    def entries(self) -> tuple[PackEntry, ...]:
        return self.table.entries

    @property
    def hints(self) -> tuple[tuple[str, str], ...]:
        return self.table.hints


class PackIndex:
    """Thread-safe map of object id -> Location over every pack of a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.RLock()
        self._packs: dict[str, PackInfo] = {}
        self._newest_first: list[PackInfo] = []  # replaced, never changed in place
        self._found: dict[str, Location] = {}  # answers of `get`, replaced when packs change
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
            table = PackTable(pack_id, block, size)
        except PackFormatError as exc:
            raise self._damaged(pack_id, exc) from None
        return PackInfo(table, size)

    def _damaged(self, pack_id: str, exc: PackFormatError) -> CorruptObjectError:
        where = f"{self.backend.describe()}/{pack_key(pack_id)}"
        at = f" at offset {exc.offset}" if exc.offset is not None else ""
        return CorruptObjectError(
            pack_id,
            where,
            f"damaged pack index{at}: {exc}",
            hint="run `coral fsck`; objects of this pack that other packs also hold are safe",
        )

    def add_pack(self, contents: PackContents, size: int | None = None) -> None:
        """Register a pack this process just wrote."""
        with self._lock:
            self._add(
                PackInfo(PackTable.of(contents), size if size is not None else contents.data_end)
            )

    def remove_pack(self, pack_id: str) -> None:
        with self._lock:
            self._drop(pack_id)

    def _add(self, info: PackInfo) -> None:
        self._packs[info.pack_id] = info
        self._changed()

    def _drop(self, pack_id: str) -> None:
        if self._packs.pop(pack_id, None) is not None:
            self._changed()

    def _changed(self) -> None:
        """The set of packs changed: the search order is rebuilt, remembered answers dropped."""
        self._newest_first = sorted(self._packs.values(), key=lambda p: p.sequence, reverse=True)
        self._found = {}

    # -- queries ------------------------------------------------------------------------------
    def get(self, object_id: str) -> Location | None:
        """Where `object_id` is stored (the newest pack holding it), or None.

        Lock-free: the answer goes into the map of answers taken at the start, so one found
        in a pack that a concurrent `refresh` drops is not remembered past that change."""
        found = self._found
        loc = found.get(object_id)
        if loc is not None:
            return loc
        try:
            raw = bytes.fromhex(object_id)
        except ValueError:
            return None
        for info in self._newest_first:
            i = info.table.find(raw)
            if i is not None:
                try:
                    entry = info.table.entry(i)
                except PackFormatError as exc:
                    raise self._damaged(info.pack_id, exc) from None
                loc = found[object_id] = tuple.__new__(
                    Location, (info.pack_id, info.sequence, entry)
                )
                return loc
        return None

    def __contains__(self, object_id: str) -> bool:
        return self.get(object_id) is not None

    def ids(self, kind: str) -> list[str]:
        with self._lock:
            packs = list(self._packs.values())
        ids: set[str] = set()
        for info in packs:
            ids.update(info.table.ids_of(kind))
        return sorted(ids)

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
            loc = self.get(e.object_id)
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
                loc = self.get(cid)
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

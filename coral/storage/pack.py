"""Pack files: immutable containers of object records, each ending in its own index.

    record* | entry* | hint* | u64 sequence | u32 entry count | u32 hint count
    | 16-byte XXH3-128 of (entries .. hint count) | magic "CRPK" | u8 version

entry = u8 kind code | 32-byte object id | u64 offset | u64 length | 8-byte XXH3-64 of the
record | u8 chunk encoding (255: not a chunk) | u8 reference count | 2 x 32-byte reference
chunk ids (zeros when unused), so the delta graph is known without reading records.
hint = 32-byte older chunk id | 32-byte newer chunk id: the newer version of a chunk, that a
repack may turn the older one into a reverse delta against.

A pack is written to a temporary file, fsynced and renamed into place: it is never modified
afterwards. `sequence` orders packs (newer wins when two hold the same object). See
docs/FORMAT.md, "Packs".
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import xxhash

from coral.storage.backend import Backend, PutMode, fsync_dir, os_error

PACK_MAGIC = b"CRPK"
PACK_VERSION = 1
PACK_SUFFIX = ".pack"
PACK_DIR = "packs"

# Kind codes are append-only: a kind's code is its index here.
KINDS = ("chunk", "tensor", "tree", "commit", "tag", "file")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}

_ENTRY = struct.Struct("<B32sQQ8sBB32s32s")
NOT_A_CHUNK = 255
_NO_REF = bytes(32)
_HINT = struct.Struct("<32s32s")
_COUNTS = struct.Struct("<QII")  # sequence, entry count, hint count
_TAIL = struct.Struct("<QII16s4sB")  # the counts, checksum, magic, version
TAIL_SIZE = _TAIL.size
MAX_ENTRIES = 1 << 24  # a sane bound on any count read from a pack
INDEX_PIECE = 8 << 20  # an index block larger than this is checksummed piece by piece first


class PackFormatError(ValueError):
    """A pack's trailer or index is damaged; `offset` says where."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class PackEntry(NamedTuple):
    """Where one object's record sits in a pack (a tuple: packs hold thousands)."""

    kind: str
    object_id: str
    offset: int
    length: int
    checksum: bytes  # XXH3-64 of the record's stored bytes
    encoding: int = NOT_A_CHUNK  # a chunk's ChunkEncoding value
    refs: tuple[str, ...] = ()  # a chunk's delta references


@dataclass(frozen=True)
class PackContents:
    """What a pack's trailer says."""

    pack_id: str
    sequence: int
    entries: tuple[PackEntry, ...]
    hints: tuple[tuple[str, str], ...]
    data_end: int  # records occupy [0, data_end)


def kind_code(kind: str) -> int:
    try:
        return _KIND_CODE[kind]
    except KeyError:
        raise ValueError(f"unknown object kind {kind!r} (known: {', '.join(KINDS)})") from None


def record_checksum(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_64_digest(data)


def pack_key(pack_id: str) -> str:
    return f"{PACK_DIR}/{pack_id}{PACK_SUFFIX}"


def new_pack_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


def encode_trailer(
    entries: Iterable[PackEntry], hints: Iterable[tuple[str, str]], sequence: int
) -> bytes:
    """The index block that ends a pack."""
    body = bytearray()
    count = 0
    for e in entries:
        refs = [bytes.fromhex(r) for r in e.refs] + [_NO_REF, _NO_REF]
        body += _ENTRY.pack(
            kind_code(e.kind),
            bytes.fromhex(e.object_id),
            e.offset,
            e.length,
            e.checksum,
            e.encoding,
            len(e.refs),
            refs[0],
            refs[1],
        )
        count += 1
    hint_list = list(hints)
    for older, newer in hint_list:
        body += _HINT.pack(bytes.fromhex(older), bytes.fromhex(newer))
    body += _COUNTS.pack(sequence, count, len(hint_list))
    return bytes(body) + xxhash.xxh3_128_digest(bytes(body)) + PACK_MAGIC + bytes([PACK_VERSION])


def index_length(tail: bytes, file_size: int) -> int:
    """Length of a pack's index block, from its last TAIL_SIZE bytes (checked against the file)."""
    if len(tail) < TAIL_SIZE or file_size < TAIL_SIZE:
        raise PackFormatError("pack is shorter than its trailer", 0)
    _, count, hints, _, magic, version = _TAIL.unpack_from(tail, len(tail) - TAIL_SIZE)
    if magic != PACK_MAGIC:
        raise PackFormatError("not a pack (bad magic at the end)", file_size - 5)
    if version != PACK_VERSION:
        raise PackFormatError(f"unknown pack version {version}", file_size - 1)
    length = count * _ENTRY.size + hints * _HINT.size + TAIL_SIZE
    if count > MAX_ENTRIES or hints > MAX_ENTRIES or length > file_size:
        raise PackFormatError(
            f"pack index claims {count} entries and {hints} hints, more than the file holds",
            file_size - TAIL_SIZE,
        )
    return length


def check_index_block(
    read: Callable[[int, int], bytes], file_size: int, tail: bytes, length: int
) -> None:
    """Verify an index block's checksum reading it `INDEX_PIECE` bytes at a time (`read(offset,
    size)`), so that a damaged count costs no allocation of the size it claims."""
    _, _, _, checksum, _, _ = _TAIL.unpack_from(tail, len(tail) - TAIL_SIZE)
    hasher = xxhash.xxh3_128()
    start, end = file_size - length, file_size - TAIL_SIZE
    for pos in range(start, end, INDEX_PIECE):
        hasher.update(read(pos, min(INDEX_PIECE, end - pos)))
    counts = len(tail) - TAIL_SIZE
    hasher.update(tail[counts : counts + _COUNTS.size])
    if hasher.digest() != checksum:
        raise PackFormatError("pack index checksum mismatch", start)


def parse_trailer(pack_id: str, block: bytes, file_size: int) -> PackContents:
    """Parse a pack's index block (its last `index_length` bytes); PackFormatError if damaged.

    Every count and offset is checked against the file before it is used.
    """
    return PackTable(pack_id, block, file_size).contents()


class PackTable:
    """A pack's index block, decoded on demand.

    Opening a repository reads every pack's index; decoding all of them up front (10^4+
    entries each) would cost more than most commands do. The block's checksum and counts are
    checked here; an object is found by a map of raw ids built on the first lookup, and an
    entry is decoded (its bounds checked) when it is asked for. `entries` decodes them all.
    """

    def __init__(self, pack_id: str, block: bytes, file_size: int) -> None:
        length = index_length(block, file_size)
        if len(block) < length:
            raise PackFormatError("pack index is truncated", file_size - len(block))
        block = block[len(block) - length :]
        self.pack_id = pack_id
        self.data_end = file_size - length
        sequence, count, hints, checksum, _, _ = _TAIL.unpack_from(block, length - TAIL_SIZE)
        if xxhash.xxh3_128_digest(block[: length - TAIL_SIZE + _COUNTS.size]) != checksum:
            raise PackFormatError("pack index checksum mismatch", self.data_end)
        self.sequence: int = sequence
        self.count: int = count
        self._block = block[: count * _ENTRY.size + hints * _HINT.size]
        self._hint_count: int = hints
        self._positions: dict[bytes, int] | None = None
        self._entries: tuple[PackEntry, ...] | None = None
        self._hints: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def of(cls, contents: PackContents) -> PackTable:
        """The table of a pack this process wrote (its entries already decoded)."""
        table = cls.__new__(cls)
        table.pack_id, table.data_end = contents.pack_id, contents.data_end
        table.sequence, table.count = contents.sequence, len(contents.entries)
        table._block, table._hint_count = b"", len(contents.hints)
        table._entries, table._hints = contents.entries, contents.hints
        table._positions = {bytes.fromhex(e.object_id): i for i, e in enumerate(contents.entries)}
        return table

    @property
    def indexed(self) -> bool:
        """Whether the map of ids has been built (a lookup reached this pack)."""
        return self._positions is not None

    @property
    def decoded(self) -> bool:
        """Whether every entry has been decoded."""
        return self._entries is not None

    def find(self, raw_id: bytes) -> int | None:
        """The position of the entry for `raw_id` (an object id's 32 bytes), or None."""
        positions = self._positions
        if positions is None:
            block, step = self._block, _ENTRY.size
            ids = [block[at : at + 32] for at in range(1, self.count * step, step)]
            positions = self._positions = dict(zip(ids, range(len(ids)), strict=True))
        return positions.get(raw_id)

    def entry(self, i: int) -> PackEntry:
        """Entry `i`, its offset, length, kind and reference count checked (PackFormatError)."""
        if self._entries is not None:
            return self._entries[i]
        fields = _ENTRY.unpack_from(self._block, i * _ENTRY.size)
        return self._decode(i, *fields)

    def _decode(
        self, i: int, code: int, oid: bytes, offset: int, size: int, rsum: bytes, enc: int,
        nrefs: int, r0: bytes, r1: bytes,
    ) -> PackEntry:  # fmt: skip
        if code >= len(KINDS) or offset + size > self.data_end or nrefs > 2:
            raise PackFormatError(f"pack index entry {i} is out of bounds", self.data_end)
        refs = () if nrefs == 0 else (r0.hex(),) if nrefs == 1 else (r0.hex(), r1.hex())
        # PackEntry(...) without its Python-level __new__: packs hold 10^4+ entries
        return tuple.__new__(PackEntry, (KINDS[code], oid.hex(), offset, size, rsum, enc, refs))

    @property
    def entries(self) -> tuple[PackEntry, ...]:
        """Every entry, decoded and checked (kept once decoded)."""
        if self._entries is None:
            decode = self._decode
            self._entries = tuple(
                decode(i, *fields)
                for i, fields in enumerate(
                    _ENTRY.iter_unpack(self._block[: self.count * _ENTRY.size])
                )
            )
        return self._entries

    def ids_of(self, kind: str) -> list[str]:
        """The ids of this pack's objects of `kind`, read without decoding entries."""
        code, block, step = kind_code(kind), self._block, _ENTRY.size
        if self._entries is not None:
            return [e.object_id for e in self._entries if e.kind == kind]
        return [
            block[at + 1 : at + 33].hex()
            for at in range(0, self.count * step, step)
            if block[at] == code
        ]

    @property
    def hints(self) -> tuple[tuple[str, str], ...]:
        """(older, newer) chunk pairs this pack records."""
        cached = self._hints
        if cached is None:
            start = self.count * _ENTRY.size
            cached = tuple(
                (older.hex(), newer.hex())
                for older, newer in _HINT.iter_unpack(
                    self._block[start : start + self._hint_count * _HINT.size]
                )
            )
            self._hints = cached
        return cached

    def contents(self) -> PackContents:
        """Everything the table says, every entry checked."""
        return PackContents(self.pack_id, self.sequence, self.entries, self.hints, self.data_end)


class PackWriter:
    """Appends records to a new pack; `finish()` writes the trailer and publishes it durably.

    On a backend with local files the records stream into a temporary file as they come; on
    others they are buffered and uploaded whole.
    """

    def __init__(self, backend: Backend, *, fsync: bool = True) -> None:
        self.backend = backend
        self.fsync = fsync
        self.pack_id = new_pack_id()
        self.entries: list[PackEntry] = []
        self.hints: list[tuple[str, str]] = []
        self.size = 0
        self._ids: dict[str, PackEntry] = {}
        self._local = backend.capabilities.local_path
        self._tmp: Path | None = None
        self._fh = None
        self._buffer = bytearray()
        if self._local:
            tmp_dir = backend.path("tmp")
            tmp_dir.mkdir(parents=True, exist_ok=True)
            self._tmp = tmp_dir / f"{self.pack_id[:16]}.{uuid.uuid4().hex}.tmp"
            try:
                self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed by finish/abort
            except OSError as exc:
                raise os_error(exc, self._tmp) from None

    def __contains__(self, object_id: str) -> bool:
        return object_id in self._ids

    def __len__(self) -> int:
        return len(self.entries)

    def add(
        self,
        kind: str,
        object_id: str,
        data: bytes | memoryview,
        encoding: int = NOT_A_CHUNK,
        refs: tuple[str, ...] = (),
    ) -> PackEntry:
        """Append one record (an id already added is not written twice)."""
        kind_code(kind)
        if object_id in self._ids:
            return self._ids[object_id]
        entry = PackEntry(
            kind, object_id, self.size, len(data), record_checksum(data), encoding, refs
        )
        if self._fh is not None and self._tmp is not None:
            try:
                self._fh.write(data)
            except OSError as exc:  # a full disk: the caller aborts, which removes the file
                raise os_error(exc, self._tmp) from None
        else:
            self._buffer += data
        self.size += len(data)
        self.entries.append(entry)
        self._ids[object_id] = entry
        return entry

    def hint(self, older: str, newer: str) -> None:
        self.hints.append((older, newer))

    def finish(self) -> PackContents:
        """Write the trailer, make the pack durable and visible; returns what it holds."""
        sequence = time.time_ns()
        trailer = encode_trailer(self.entries, self.hints, sequence)
        key = pack_key(self.pack_id)
        if self._fh is not None and self._tmp is not None:
            try:
                self._fh.write(trailer)
                self._fh.flush()
                if self.fsync:
                    os.fsync(self._fh.fileno())
                self._fh.close()
                target = self.backend.path(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._tmp, target)
                if self.fsync:
                    fsync_dir(target.parent)
            except OSError as exc:
                self.abort()
                raise os_error(exc, self._tmp) from None
        else:
            self.backend.put(key, bytes(self._buffer) + trailer, PutMode.CREATE)
        return PackContents(
            self.pack_id, sequence, tuple(self.entries), tuple(self.hints), self.size
        )

    def abort(self) -> None:
        """Throw the unfinished pack away."""
        if self._fh is not None and not self._fh.closed:
            with contextlib.suppress(OSError):  # the flush of close() fails on a full disk
                self._fh.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._buffer = bytearray()

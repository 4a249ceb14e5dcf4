"""Opening the repository database without writing a byte (a full disk, a read-only mount).

A WAL database needs its `-shm` index to be writable, even to read; when that write fails,
`open_read_only` reads the file as it stands instead: with SQLite's `immutable` flag when the
`-wal` file is empty or absent, else from an in-memory image of the file with the committed
frames of the `-wal` applied (read here: checksums and salts as SQLite's WAL format defines
them, https://sqlite.org/fileformat.html#the_write_ahead_log), so the latest commits are seen.
Either connection refuses every write to the file (an authorizer denies it: `SQLITE_AUTH`);
TEMP tables, in memory, stand in for a component's tables that do not exist yet.
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from coral.version_control.db_errors import CheckedConnection

WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums little- / big-endian
WAL_HEADER = 32
FRAME_HEADER = 24
_WRITES = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_REINDEX,
    }
)


def open_read_only(path: Path, timeout: float, reason: str) -> CheckedConnection:
    """A read-only connection to the database at `path` that creates no file beside it."""
    wal = path.with_name(path.name + "-wal")
    try:
        wal_size = wal.stat().st_size
    except OSError:
        wal_size = 0
    if wal_size == 0:
        uri = f"{path.absolute().as_uri()}?immutable=1"
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=CheckedConnection,
        )
    else:
        image = database_image(path.read_bytes(), wal.read_bytes())
        conn = sqlite3.connect(
            ":memory:", isolation_level=None, check_same_thread=False, factory=CheckedConnection
        )
        conn.db_path = path
        conn.checked(lambda: conn.deserialize(image))
    conn.db_path = path
    conn.read_only = reason
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.set_authorizer(_deny_writes_to_main)
    return conn


def _deny_writes_to_main(action: int, arg1: object, arg2: object, db: str | None, _: object) -> int:
    return sqlite3.SQLITE_DENY if action in _WRITES and db == "main" else sqlite3.SQLITE_OK


def database_image(db: bytes, wal: bytes) -> bytes:
    """The database's bytes with the committed frames of its write-ahead log applied."""
    frames = committed_frames(wal)
    image = bytearray(db)
    if frames is not None:
        page_size, pages, size_pages = frames
        image = image[: size_pages * page_size].ljust(size_pages * page_size, b"\0")
        for number, data in pages.items():
            if number <= size_pages:
                image[(number - 1) * page_size : number * page_size] = data
    if len(image) >= 20:
        image[18:20] = b"\1\1"  # rollback-journal format: an in-memory database has no WAL
    return bytes(image)


def committed_frames(wal: bytes) -> tuple[int, dict[int, bytes], int] | None:
    """(page size, page number -> latest committed content, database size in pages) from a
    WAL file, or None when it holds no valid committed transaction."""
    if len(wal) < WAL_HEADER:
        return None
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", wal[:32])
    if magic not in WAL_MAGIC or page_size < 512 or page_size & (page_size - 1):
        return None
    order = ">" if magic & 1 else "<"
    s = _checksum(wal[:24], (0, 0), order)
    if s != (c1, c2):
        return None
    pending: dict[int, bytes] = {}
    committed: dict[int, bytes] = {}
    size_pages = 0
    offset = WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(wal):
        header = wal[offset : offset + FRAME_HEADER]
        number, commit_size, f_salt1, f_salt2, f1, f2 = struct.unpack(">6I", header)
        data = wal[offset + FRAME_HEADER : offset + FRAME_HEADER + page_size]
        if (f_salt1, f_salt2) != (salt1, salt2) or number == 0:
            break
        s = _checksum(header[:8] + data, s, order)
        if s != (f1, f2):
            break
        pending[number] = data
        if commit_size:
            committed.update(pending)
            pending.clear()
            size_pages = commit_size
        offset += FRAME_HEADER + page_size
    if not size_pages:
        return None
    return page_size, committed, size_pages


def _checksum(data: bytes, seed: tuple[int, int], order: str) -> tuple[int, int]:
    s0, s1 = seed
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1

"""Reading what can still be read from a damaged SQLite file, row by row (`coral fsck --repair`).

The damaged file is never written: it (and its `-wal`) is copied to a temporary folder first and
read there. A file whose 100-byte header is gone (zeroed, overwritten) is read with a rebuilt
header, trying each page size SQLite allows. Each table is read in rowid order; a row that
cannot be read (a damaged page, text that is not UTF-8) is skipped, and reading resumes at the
next rowid that can be found, so one bad page costs the rows on it, not the table.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"SQLite format 3\0"
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
MAX_SKIPS = 10_000  # unreadable stretches tried per table before giving up on the rest
MAX_JUMP_BITS = 40  # a skip looks for the next row up to 2**40 rowids ahead


@dataclass
class SalvagedTable:
    """What was read from one table: its SQL, column names, rows, and how many were lost."""

    name: str
    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    lost: int = 0  # rows (or stretches of rows) that could not be read
    complete: bool = True  # False when reading stopped early


@dataclass
class Salvage:
    """Everything read from a damaged database: tables, index definitions, what failed."""

    tables: dict[str, SalvagedTable] = field(default_factory=dict)
    indexes: list[str] = field(default_factory=list)  # CREATE INDEX statements
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.notes and all(t.complete and not t.lost for t in self.tables.values())


def salvage(path: Path) -> Salvage:
    """Read every table of the SQLite file at `path` (with its `-wal`, if any) that can be read."""
    result = Salvage()
    if not path.is_file():
        result.notes.append(f"{path} does not exist")
        return result
    with _working_copy(path) as copy:
        conn = _open_readable(copy, result)
        if conn is None:
            return result
        with closing(conn):
            for name, sql in _schema(conn, result):
                result.tables[name] = _read_table(conn, name, sql)
    return result


@contextmanager
def _working_copy(path: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="coral-salvage-") as tmp:
        copy = Path(tmp) / "damaged.db"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        yield copy


def _open_readable(copy: Path, result: Salvage) -> sqlite3.Connection | None:
    """A connection to the copy whose schema can be read, rebuilding the header if need be."""
    conn = _try_open(copy)
    if conn is not None:
        return conn
    original = copy.read_bytes()
    if len(original) < 512:
        result.notes.append("the file is too short to hold a database")
        return None
    for page_size in PAGE_SIZES:
        if len(original) % page_size:
            continue
        wal = copy.with_name(copy.name + "-wal").is_file()
        copy.write_bytes(rebuilt_header(original, page_size, wal) + original[100:])
        conn = _try_open(copy)
        if conn is not None:
            result.notes.append(
                f"the file header was damaged; read with a rebuilt one ({page_size} B pages)"
            )
            return conn
    copy.write_bytes(original)
    result.notes.append("no table could be read: the file's schema is unreadable")
    return None


def _try_open(copy: Path) -> sqlite3.Connection | None:
    try:
        conn = sqlite3.connect(copy, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        conn.execute("SELECT name, sql FROM sqlite_master").fetchall()
    except (sqlite3.Error, UnicodeDecodeError):
        conn.close()
        return None
    return conn


def rebuilt_header(data: bytes, page_size: int, wal: bool = False) -> bytes:
    """A 100-byte SQLite header for `data`: UTF-8, `page_size` pages, the page count taken from
    the file size, WAL or rollback journal (fields a damaged header may have lost)."""
    counter = 1
    header = bytearray(100)
    header[0:16] = MAGIC
    struct.pack_into(">H", header, 16, 1 if page_size == 65536 else page_size)
    version = 2 if wal else 1
    header[18:24] = bytes([version, version, 0, 64, 32, 32])
    struct.pack_into(">I", header, 24, counter)  # file change counter
    struct.pack_into(">I", header, 28, len(data) // page_size)  # pages
    struct.pack_into(">I", header, 40, 1)  # schema cookie
    struct.pack_into(">I", header, 44, 4)  # schema format
    struct.pack_into(">I", header, 56, 1)  # UTF-8
    struct.pack_into(">I", header, 92, counter)  # version-valid-for
    struct.pack_into(">I", header, 96, 3_040_001)
    return bytes(header)


def _schema(conn: sqlite3.Connection, result: Salvage) -> list[tuple[str, str]]:
    tables: list[tuple[str, str]] = []
    for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall():
        if not sql or str(name).startswith("sqlite_"):
            continue
        if kind == "table":
            tables.append((str(name), str(sql)))
        elif kind == "index":
            result.indexes.append(str(sql))
    return tables


def _read_table(conn: sqlite3.Connection, name: str, sql: str) -> SalvagedTable:
    quoted = _quote(name)
    try:
        columns = [str(r[1]) for r in conn.execute(f"PRAGMA table_info({quoted})").fetchall()]
    except sqlite3.Error:
        return SalvagedTable(name, sql, [], complete=False)
    table = SalvagedTable(name, sql, columns)
    if "WITHOUT ROWID" in sql.upper():
        _read_plain(conn, table)
        return table
    after: int | None = None  # the last rowid read or skipped
    skips = 0
    select = f"SELECT rowid, * FROM {quoted} WHERE rowid > ? ORDER BY rowid"
    while True:
        try:
            for row in conn.execute(select, (after if after is not None else -(1 << 63),)):
                after = int(row[0])
                table.rows.append(tuple(row[1:]))
            return table
        except (sqlite3.Error, UnicodeDecodeError, ValueError):
            table.lost += 1
            skips += 1
            nxt = _next_rowid(conn, quoted, after)
            if nxt is None or skips > MAX_SKIPS:
                table.complete = nxt is None and skips <= MAX_SKIPS
                return table
            after = nxt  # the row at `nxt` is the unreadable one: resume after it


def _next_rowid(conn: sqlite3.Connection, quoted: str, after: int | None) -> int | None:
    """The rowid of the first row after `after` whose rowid can be read; None at the end (or
    when nothing further can be found)."""
    base = after if after is not None else -(1 << 63)
    query = f"SELECT rowid FROM {quoted} WHERE rowid > ? ORDER BY rowid LIMIT 1"
    with suppress(sqlite3.Error):
        row = conn.execute(query, (base,)).fetchone()
        return None if row is None else int(row[0])
    base = max(base, 0)  # rowids Coral's tables get are positive
    for bits in range(MAX_JUMP_BITS):  # the page holding the next rowid is unreadable: jump
        start = base + (1 << bits)
        with suppress(sqlite3.Error, OverflowError):
            row = conn.execute(query, (start,)).fetchone()
            if row is not None:
                return start  # rows in (base, start] are lost; resume after `start`
    return None


def _read_plain(conn: sqlite3.Connection, table: SalvagedTable) -> None:
    try:
        for row in conn.execute(f"SELECT * FROM {_quote(table.name)}"):
            table.rows.append(tuple(row))
    except (sqlite3.Error, UnicodeDecodeError, ValueError):
        table.lost += 1
        table.complete = False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

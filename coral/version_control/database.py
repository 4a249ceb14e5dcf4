"""`Database`: the repository's SQLite file (`.coral/coral.db`, WAL) holding all mutable state.

Refs, HEAD, the staging area and the reflog live here (tables below); other components
(experiments, fingerprints, ...) add their own tables and record their schema version in
`schema_versions` through `ensure_component`. Writes go through `transaction()`, a
`BEGIN IMMEDIATE` transaction, so read-check-write sequences (compare-and-swap of refs) are
atomic across processes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from coral.errors import FormatVersionError

FORMAT_VERSION = 1  # the repository format this Coral writes and reads
COMPONENT = "version_control"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS branches (
    name       TEXT PRIMARY KEY,
    commit_id  TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name        TEXT PRIMARY KEY,
    commit_id   TEXT NOT NULL,
    tag_id      TEXT NOT NULL,
    description TEXT,
    metrics     TEXT NOT NULL DEFAULT '{}',
    tagger      TEXT,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    branch    TEXT,
    commit_id TEXT
);
CREATE TABLE IF NOT EXISTS staging (
    name      TEXT PRIMARY KEY,
    tensor_id TEXT,
    metadata  TEXT NOT NULL,
    staged_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reflog (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ref        TEXT NOT NULL,
    old_id     TEXT,
    new_id     TEXT,
    message    TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reflog_by_ref ON reflog(ref, id);
"""


class Database:
    """One SQLite database, one connection per thread, WAL journal, FULL sync."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- connections --------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use `transaction()` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: holds the write lock, commits or rolls back."""
        with immediate_transaction(self.connection()) as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every read inside sees the same consistent state."""
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row | tuple]:
        return self.connection().execute(sql, params).fetchall()

    # -- schema -------------------------------------------------------------------------------
    def create(self, default_branch: str) -> None:
        """Create the schema in a new database."""
        self.connection().executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        with self.transaction() as tx:
            now = time.time()
            tx.execute(
                "INSERT OR REPLACE INTO schema_versions VALUES (?, ?, ?)",
                (COMPONENT, SCHEMA_VERSION, now),
            )
            tx.execute(
                "INSERT OR REPLACE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),)
            )
            tx.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (repr(now),))
            tx.execute("INSERT OR IGNORE INTO meta VALUES ('default_branch', ?)", (default_branch,))
            tx.execute(
                "INSERT OR IGNORE INTO head (id, branch, commit_id) VALUES (1, ?, NULL)",
                (default_branch,),
            )

    def check_format(self) -> None:
        """Raise FormatVersionError if this database was written by a newer Coral."""
        rows = self.query("SELECT value FROM meta WHERE key='format_version'")
        if not rows:
            raise FormatVersionError(
                f"{self.path} has no format version; it is not a Coral database"
            )
        found = int(rows[0][0])
        if found > FORMAT_VERSION:
            raise FormatVersionError(
                f"repository format {found} is newer than this Coral supports ({FORMAT_VERSION})"
            )
        rows = self.query("SELECT version FROM schema_versions WHERE component=?", (COMPONENT,))
        if rows and int(rows[0][0]) > SCHEMA_VERSION:
            raise FormatVersionError(
                f"database schema {rows[0][0]} of {COMPONENT} is newer than this Coral supports "
                f"({SCHEMA_VERSION})"
            )

    def ensure_component(self, component: str, version: int, schema_sql: str) -> None:
        """Create a component's tables (idempotent) and record its schema version.

        Raises FormatVersionError when the database holds a newer schema of that component.
        """
        rows = self.query("SELECT version FROM schema_versions WHERE component=?", (component,))
        if rows and int(rows[0][0]) > version:
            raise FormatVersionError(
                f"database schema {rows[0][0]} of {component} is newer than this Coral "
                f"supports ({version})"
            )
        if rows and int(rows[0][0]) == version:
            return
        self.connection().executescript(f"BEGIN IMMEDIATE;\n{schema_sql}\nCOMMIT;")
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO schema_versions VALUES (?, ?, ?)",
                (component, version, time.time()),
            )

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` on `conn`, committed on success and rolled back on error; a call made
    inside a transaction already open on `conn` joins it."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")

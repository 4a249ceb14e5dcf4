"""`Database`: the repository's SQLite file (`.coral/coral.db`, WAL) holding all mutable state.

Refs, HEAD, the staging area and the reflog live here (tables below); other components
(experiments, fingerprints, ...) add their own tables and record their schema version in
`schema_versions` through `ensure_component`. Writes go through `transaction()`, a
`BEGIN IMMEDIATE` transaction, so read-check-write sequences (compare-and-swap of refs) are
atomic across processes.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from coral.errors import FormatVersionError
from coral.version_control.db_errors import (
    SQLITE_CANTOPEN,
    SQLITE_FULL,
    SQLITE_IOERR,
    SQLITE_READONLY,
    CheckedConnection,
    MissingTableError,
    damaged,
    primary_code,
    translate,
)
from coral.version_control.db_readonly import open_read_only

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
CORE_TABLES = ("schema_versions", "meta", "branches", "tags", "head", "staging", "reflog")
SQLITE_MAGIC = b"SQLite format 3\0"
# opening read-write fails with these when the disk is full or the file is read-only
_NO_WRITE = (SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY, SQLITE_CANTOPEN)
_TABLE_NAME = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)
_INDEX_ON = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+.*?\sON\s+(\w+)", re.IGNORECASE | re.DOTALL)


class Database:
    """One SQLite database, one connection per thread, WAL journal, FULL sync.

    Where the database cannot be opened for writing (the disk is full, the file or its folder
    is read-only) it is opened read-only (`db_readonly.py`): reads work, writes raise a Coral
    error saying why. A damaged file raises `DatabaseDamagedError` (`db_errors.py`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.read_only: str | None = None  # why it was opened read-only, when it was
        self._temp_schemas: list[str] = []  # read-only: stand-ins for tables not in the file

    # -- connections --------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use `transaction()` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        check_header(self.path)
        if self.read_only is None:
            try:
                return self._open_writable()
            except sqlite3.OperationalError as exc:
                if primary_code(exc) not in _NO_WRITE:
                    raise
                self.read_only = f"{exc} opening it for writing"
        try:
            conn = open_read_only(self.path, BUSY_TIMEOUT_MS / 1000, self.read_only)
        except (sqlite3.Error, OSError) as exc:
            new = translate(exc, self.path, self.read_only)
            if new is None:
                raise
            raise new from exc
        for script in self._temp_schemas:
            conn.executescript(script)
        return conn

    def _open_writable(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=CheckedConnection,
        )
        conn.db_path = self.path
        try:
            # raw statements: a failure to write here means "open read-only", not an error
            setup = super(CheckedConnection, conn).execute
            setup(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            setup("PRAGMA journal_mode=WAL").fetchall()
            setup("PRAGMA synchronous=FULL")
            setup("PRAGMA foreign_keys=ON")
        except sqlite3.OperationalError as exc:
            conn.close()
            if primary_code(exc) in _NO_WRITE:
                raise
            new = translate(exc, self.path)
            raise (new or exc) from exc
        except sqlite3.Error as exc:
            conn.close()
            new = translate(exc, self.path)
            raise (new or exc) from exc
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

    def tables(self) -> set[str]:
        """The names of the tables in the database."""
        return {str(r[0]) for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}

    def missing_tables(self) -> list[str]:
        """Tables Coral needs that are gone: its own, and those each component recorded making
        (`meta` key `tables:<component>`)."""
        have = self.tables()
        missing = [t for t in CORE_TABLES if t not in have]
        if "meta" in have:
            for (value,) in self.query("SELECT value FROM meta WHERE key LIKE 'tables:%'"):
                missing += [t for t in str(value).split(",") if t and t not in have]
        return list(dict.fromkeys(missing))

    def check_format(self) -> None:
        """Raise DatabaseDamagedError if a table Coral needs is gone, FormatVersionError if
        this database was written by a newer Coral."""
        missing = self.missing_tables()
        if missing:
            raise MissingTableError(
                f"the repository database {self.path} is damaged: "
                f"table{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing"
            )
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
        tables = _TABLE_NAME.findall(schema_sql)
        if rows and int(rows[0][0]) == version:
            missing = [t for t in tables if t not in self.tables()]
            if missing:
                raise MissingTableError(
                    f"the repository database {self.path} is damaged: table "
                    f"{', '.join(missing)} of {component} missing"
                )
            self._record_tables(component, tables)  # for a database made before they were
            return
        self.connection()
        if self.read_only is not None:
            self._add_temp_schema(schema_sql)  # nothing can be written: in memory, for now
            return
        conn = self.connection()
        if conn.in_transaction:  # join the caller's (executescript would commit it first)
            for statement in sql_statements(schema_sql):
                conn.execute(statement)
        else:
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema_sql}\nCOMMIT;")
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO schema_versions VALUES (?, ?, ?)",
                (component, version, time.time()),
            )
            tx.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"tables:{component}", ",".join(tables)),
            )

    def _record_tables(self, component: str, tables: list[str]) -> None:
        """Note which tables `component` made, if not noted yet (best effort: never inside
        another transaction, never on a read-only database)."""
        key = f"tables:{component}"
        conn = self.connection()
        if self.read_only is not None or conn.in_transaction or self.meta(key) is not None:
            return
        with suppress(sqlite3.Error), self.transaction() as tx:
            tx.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, ",".join(tables)))

    def _add_temp_schema(self, schema_sql: str) -> None:
        """Stand in for a component's tables that the read-only file lacks with empty TEMP
        tables (every connection of this object gets them: `_open`)."""
        script = temp_schema(schema_sql, self.tables())
        if script:
            self._temp_schemas.append(script)
            self.connection().executescript(script)

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


def check_header(path: Path) -> None:
    """Raise DatabaseDamagedError when the file at `path` exists but is empty (SQLite would
    take it for a new database and write to it; any other non-database it refuses itself:
    SQLITE_NOTADB). Only stat: opening and closing another descriptor of the file would drop
    the POSIX locks this process's SQLite connections hold on it, and with them WAL safety."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise damaged(path, f"cannot be read: {exc.strerror or exc}") from None
    if size == 0:
        raise damaged(path, "the file is empty")


def sql_statements(script: str) -> list[str]:
    """The complete statements of an SQL script, in order."""
    out: list[str] = []
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            out.append(statement.strip())
            statement = ""
    return out


def temp_schema(schema_sql: str, existing: set[str]) -> str:
    """`schema_sql` rewritten to create as TEMP tables those of its tables not in `existing`
    (statements about existing tables are left out: a TEMP table would hide the real one)."""
    out: list[str] = []
    for text in sql_statements(schema_sql):
        table = _TABLE_NAME.search(text)
        index = _INDEX_ON.search(text)
        if table and table.group(1) not in existing:
            out.append(_TABLE_NAME.sub(r"CREATE TEMP TABLE IF NOT EXISTS \1", text, count=1))
        elif index and index.group(1) not in existing:
            out.append(text)
    return "\n".join(out)


class ComponentTables:
    """Base of a component's store: its tables in a repository database, made on first use
    (`_ensure()`), with the component's name, layout version and schema as class attributes."""

    component: str
    schema_version: int
    schema_sql: str

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            self.db.ensure_component(self.component, self.schema_version, self.schema_sql)
            self._ready = True

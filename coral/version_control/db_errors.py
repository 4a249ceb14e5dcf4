"""SQLite failures as Coral errors: a damaged file, a full disk, a read-only fallback.

`CheckedConnection` (the connection class `Database` opens) turns the SQLite errors a user can
act on into `CoralError`s that name the database file, wherever they surface: on `execute`, or
later while rows are fetched (a damaged page, text that is not UTF-8). Each translated class
also derives from the SQLite class it replaces, so code catching `sqlite3.OperationalError`
(a component's table not created yet) behaves as before. Other errors (busy, constraint
violations) pass through unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from coral.errors import CoralError, DatabaseDamagedError, DiskFullError
from coral.storage.backend import free_bytes

T = TypeVar("T")

# primary result codes (https://sqlite.org/rescode.html)
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_AUTH = 23  # what the read-only connection's authorizer answers a write
SQLITE_NOTADB = 26
LOW_SPACE = 1 << 20  # below this much free space an I/O error is taken for a full disk


class DamagedDatabaseError(DatabaseDamagedError, sqlite3.DatabaseError):
    """The file is damaged (malformed pages, bad header) or not a database."""


class MissingTableError(DatabaseDamagedError, sqlite3.OperationalError):
    """A table the repository needs is gone."""


class DatabaseFullError(DiskFullError, sqlite3.OperationalError):
    """A write to the database failed for lack of disk space."""


class DatabaseWriteError(CoralError, sqlite3.OperationalError):
    """A write to the database failed: the file is read-only, or the disk failed."""


def primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def disk_full(path: Path, what: str = "writing") -> DatabaseFullError:
    return DatabaseFullError(
        f"no space left on the device {what} {path} ({free_bytes(path)} bytes free)"
    )


def damage_reason(exc: DatabaseDamagedError) -> str:
    """What is wrong, without the "the repository database PATH is damaged:" preamble."""
    return exc.message.split(" is damaged: ", 1)[-1]


def damaged(path: Path, reason: str) -> DamagedDatabaseError:
    return DamagedDatabaseError(f"the repository database {path} is damaged: {reason}")


def translate(exc: BaseException, path: Path, read_only: str | None = None) -> Exception | None:
    """The Coral error for `exc` raised on the database at `path`, or None to re-raise it.

    `read_only` is why the database was opened read-only (a write then fails for that reason).
    """
    if isinstance(exc, UnicodeDecodeError):
        return damaged(path, f"text that is not UTF-8 ({exc.reason})")
    if not isinstance(exc, sqlite3.Error) or isinstance(exc, CoralError):
        return None
    code = primary_code(exc)
    text = str(exc)
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return _tagged(damaged(path, text), exc)
    if "could not decode to utf-8" in text.lower():
        return _tagged(damaged(path, "text that is not UTF-8"), exc)
    if text.startswith(("no such table", "no such column")):
        return _tagged(MissingTableError(f"the repository database {path} is damaged: {text}"), exc)
    if code == SQLITE_FULL or (code == SQLITE_IOERR and free_bytes(path) < LOW_SPACE):
        return _tagged(disk_full(path), exc)
    if code in (SQLITE_READONLY, SQLITE_AUTH) and read_only is not None:
        if free_bytes(path) < LOW_SPACE:
            return _tagged(disk_full(path), exc)
        return _tagged(
            DatabaseWriteError(
                f"cannot write {path}: it was opened read-only ({read_only})",
                hint="make the file and its folder writable, then retry",
            ),
            exc,
        )
    if code == SQLITE_READONLY:
        return _tagged(
            DatabaseWriteError(
                f"cannot write {path}: {text}",
                hint="make the file, its folder and its -wal / -shm files writable, then retry",
            ),
            exc,
        )
    if code in (SQLITE_IOERR, SQLITE_CANTOPEN):
        return _tagged(
            DatabaseWriteError(
                f"cannot use {path}: {text}",
                hint="check the file's permissions and the disk it is on",
            ),
            exc,
        )
    return None


def _tagged(new: Exception, old: sqlite3.Error) -> Exception:
    """Keep SQLite's error code on the translated error."""
    new.sqlite_errorcode = getattr(old, "sqlite_errorcode", None)  # type: ignore[attr-defined]
    new.sqlite_errorname = getattr(old, "sqlite_errorname", None)  # type: ignore[attr-defined]
    return new


class CheckedConnection(sqlite3.Connection):
    """A connection whose statements and fetched rows raise Coral errors for damage and full
    disks. `db_path` names the repository database (also for an in-memory image of it)."""

    db_path: Path = Path("coral.db")
    read_only: str | None = None  # why it was opened read-only, when it was

    def checked(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            new = translate(exc, self.db_path, self.read_only)
            if new is None:
                raise
            raise new from exc

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or CheckedCursor)

    # sqlite3.Connection.execute makes its cursor in C, bypassing `cursor()`: go through ours
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> Any:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        self.checked(super().commit)


class CheckedCursor(sqlite3.Cursor):
    """Rows fetched through a `CheckedConnection`: damage found while reading is translated."""

    def _checked(self, call: Callable[[], T]) -> T:
        conn = self.connection
        if isinstance(conn, CheckedConnection):
            return conn.checked(call)
        return call()

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self._checked(lambda: super(CheckedCursor, self).execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self._checked(lambda: super(CheckedCursor, self).executemany(sql, parameters))

    def executescript(self, script: str, /) -> Any:
        return self._checked(lambda: super(CheckedCursor, self).executescript(script))

    def fetchone(self) -> Any:
        return self._checked(super().fetchone)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        return self._checked(lambda: super(CheckedCursor, self).fetchmany(n))

    def fetchall(self) -> list[Any]:
        return self._checked(super().fetchall)

    def __next__(self) -> Any:
        return self._checked(super().__next__)

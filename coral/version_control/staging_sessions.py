"""Private staging sessions: their tables, who owns each, and dropping those whose owner is gone.

A `Repository` opened from the API stages into a session of its own (rows of `session_staging`
/ `session_staged_files` under one session id), so processes and objects sharing a repository
never commit each other's tensors; the CLI stages into the shared area (`staging` /
`staged_files`). `staging_sessions` records each session's owner: pid, host and the process's
start time (a reused pid is not mistaken for the owner). `reap` drops the sessions whose
process is gone on this host, and this process's sessions that no live object holds; their
tensors become garbage for gc. Sessions of other hosts are kept.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
import weakref
from contextlib import suppress
from functools import cache

from coral.version_control.database import Database

COMPONENT = "staging_sessions"
VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS staging_sessions (
    session    TEXT PRIMARY KEY,
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL,
    proc_start TEXT,               -- the owner's start (/proc/PID/stat field 22); NULL: unknown
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_staging (
    session    TEXT NOT NULL,
    name       TEXT NOT NULL,
    tensor_id  TEXT,               -- NULL: the tensor is removed by the session's next commit
    metadata   TEXT NOT NULL,
    staged_at  REAL NOT NULL,
    PRIMARY KEY (session, name)
);
CREATE TABLE IF NOT EXISTS session_staged_files (
    session    TEXT NOT NULL,
    path       TEXT NOT NULL,
    blob_id    TEXT,               -- NULL: the file is removed by the session's next commit
    size       INTEGER NOT NULL,
    staged_at  REAL NOT NULL,
    PRIMARY KEY (session, path)
);
"""
_TABLES = ("session_staging", "session_staged_files", "staging_sessions")
HOST = socket.gethostname()


class Session:
    """One private staging session; a forked child gets a fresh id (its own session)."""

    def __init__(self) -> None:
        self._pid = -1
        self._id = ""

    @property
    def id(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._id = os.getpid(), uuid.uuid4().hex
            _LIVE[self._id] = self
        return self._id

    @property
    def started(self) -> bool:
        """Whether this process has used the session (it may hold rows)."""
        return self._pid == os.getpid()

    def register(self, conn: sqlite3.Connection) -> None:
        """Record this session's owner (inside the transaction that stages its rows)."""
        conn.execute(
            "INSERT OR IGNORE INTO staging_sessions VALUES (?, ?, ?, ?, ?)",
            (self.id, os.getpid(), HOST, process_start(os.getpid()), time.time()),
        )


_LIVE: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()


def drop(conn: sqlite3.Connection, session: str) -> None:
    """Delete a session and its staged rows (inside the caller's transaction)."""
    for table in _TABLES:
        conn.execute(f"DELETE FROM {table} WHERE session=?", (session,))


def reap(db: Database) -> int:
    """Drop the sessions whose owner is gone (see the module docstring); how many went.

    Housekeeping: a database that cannot be written (a full disk) leaves them for later."""
    rows = db.query("SELECT session, pid, host, proc_start FROM staging_sessions")
    dead = [str(s) for s, pid, host, start in rows if not _alive(str(s), int(pid), host, start)]
    if dead:
        with suppress(Exception), db.transaction() as tx:
            for session in dead:
                drop(tx, session)
    return len(dead)


def _alive(session: str, pid: int, host: str, start: str | None) -> bool:
    if host != HOST:
        return True  # another machine's process: nothing here can tell
    if pid == os.getpid() and start == process_start(pid):
        return session in _LIVE
    return pid_alive(pid, start)


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` runs on this host (and, when `start` is given, is the process
    that started then rather than a later one given the same pid)."""
    if pid <= 0:
        return False
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # EPERM: it exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: existence is all we know
    state, ticks = stat
    return state != "Z" and (start is None or ticks == start)


@cache
def process_start(pid: int) -> str | None:
    """When this process (`pid`, cached per pid) started: clock ticks after boot from /proc,
    None where unknown."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of process `pid` from /proc/PID/stat, None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b") ", 1)[1].split()
        return fields[0].decode("ascii"), fields[19].decode("ascii")  # fields 3 and 22
    except (OSError, IndexError, UnicodeDecodeError):
        return None

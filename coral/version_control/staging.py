"""`StagingArea`: what the next commit will change, kept in the database (survives restarts):
the shared area the CLI uses, or one `Repository` object's private session.

A row is either an entry to write (tensor id + metadata: shape, dtype, layer type, ...) or a
removal (tensor_id NULL). Tensors are stored in the object store *before* their rows are
written, so a staged tensor id always names a durable object.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from coral.version_control import staging_sessions as sessions
from coral.version_control.database import Database
from coral.version_control.objects import FileEntry, Tree, TreeEntry, canonical_json
from coral.version_control.refs import HeadState
from coral.version_control.staging_sessions import Session

FILES_COMPONENT = "staged_files"
FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged_files (
    path       TEXT PRIMARY KEY,
    blob_id    TEXT,              -- NULL: the file is removed by the next commit
    size       INTEGER NOT NULL,
    staged_at  REAL NOT NULL
);
"""


@dataclass(frozen=True)
class StagedChange:
    """One staged change: `entry` to write, or a removal of `name` when `entry` is None."""

    name: str
    entry: TreeEntry | None
    staged_at: float

    @property
    def is_removal(self) -> bool:
        return self.entry is None

    def _key(self) -> tuple[str, str | None, str]:
        meta = canonical_json(self.entry.to_dict()).decode() if self.entry else "{}"
        return self.name, self.entry.tensor_id if self.entry else None, meta


class StagingArea:
    """Staged changes, by tensor name (and model files, by path): the shared area when
    `shared` (what the CLI's `coral add` and `coral commit` use), else a private session of
    this object (see `staging_sessions`): what another object or process stages is never seen
    here, and a private session keeps a change equal to HEAD's (a commit made onto a branch
    that moved meanwhile must still hold it)."""

    def __init__(self, db: Database, *, shared: bool = False) -> None:
        self.db = db
        self.shared = shared
        self._session = None if shared else Session()
        self._tensors = "staging" if shared else "session_staging"
        self._file_table = "staged_files" if shared else "session_staged_files"
        # outside any transaction: a first open creates the tables
        db.ensure_component(FILES_COMPONENT, 1, FILES_SCHEMA)
        db.ensure_component(sessions.COMPONENT, sessions.VERSION, sessions.SCHEMA)
        sessions.reap(db)

    # -- rows of this area ---------------------------------------------------------------------
    def _where(self) -> tuple[str, tuple[str, ...]]:
        return ("session=?", (self._session.id,)) if self._session else ("1=1", ())

    def _rows(self, conn: sqlite3.Connection | None, columns: str, table: str) -> list[Any]:
        cond, params = self._where()
        sql = f"SELECT {columns} FROM {table} WHERE {cond} ORDER BY 1"
        return (conn or self.db.connection()).execute(sql, params).fetchall()

    def _put(self, conn: sqlite3.Connection, table: str, row: tuple[Any, ...]) -> None:
        if self._session is not None:
            self._session.register(conn)
            row = (self._session.id, *row)
        conn.execute(f"INSERT OR REPLACE INTO {table} VALUES ({', '.join('?' * len(row))})", row)

    def _delete(self, conn: sqlite3.Connection, table: str, key: str | None = None) -> int:
        """Delete this area's row `key` of `table` (every row when None); how many went."""
        cond, params = self._where()
        column = "name" if table == self._tensors else "path"
        if key is not None:
            cond, params = f"{cond} AND {column}=?", (*params, key)
        return int(conn.execute(f"DELETE FROM {table} WHERE {cond}", params).rowcount)

    def _end_if_empty(self, conn: sqlite3.Connection) -> None:
        """Drop this private session's owner row once it stages nothing."""
        if self._session is not None and self.is_empty(conn):
            sessions.drop(conn, self._session.id)

    def close(self) -> None:
        """Drop a private session's rows (nothing else can reach them)."""
        session = self._session
        if session is None or not session.started:
            return
        if self.db.query("SELECT 1 FROM staging_sessions WHERE session=?", (session.id,)):
            with suppress(Exception), self.db.transaction() as tx:
                sessions.drop(tx, session.id)

    # -- model files ---------------------------------------------------------------------------
    def file_changes(self, conn: sqlite3.Connection | None = None) -> dict[str, FileEntry | None]:
        """Staged model files by path (None: removed)."""
        rows = self._rows(conn, "path, blob_id, size", self._file_table)
        return {p: FileEntry(p, b, n) if b is not None else None for p, b, n in rows}

    def stage_files(self, conn: sqlite3.Connection, files: list[FileEntry], base: Tree) -> None:
        """Stage model files; in the shared area one identical to `base`'s only drops its
        staged change."""
        now = time.time()
        for f in files:
            if self.shared and base.files.get(f.path) == f:
                self._delete(conn, self._file_table, f.path)
            else:
                self._put(conn, self._file_table, (f.path, f.blob_id, f.size, now))

    def stage_file_removal(self, conn: sqlite3.Connection, path: str, base: Tree) -> None:
        if path in base.files or not self.shared:
            self._put(conn, self._file_table, (path, None, 0, time.time()))
        else:
            self._delete(conn, self._file_table, path)

    def unstage_files(self, conn: sqlite3.Connection, paths: list[str] | None = None) -> int:
        keys: list[str | None] = [None] if paths is None else list(paths)
        dropped = sum(self._delete(conn, self._file_table, p) for p in keys)
        self._end_if_empty(conn)
        return dropped

    # -- tensors -------------------------------------------------------------------------------
    def changes(self, conn: sqlite3.Connection | None = None) -> dict[str, StagedChange]:
        rows = self._rows(conn, "name, tensor_id, metadata, staged_at", self._tensors)
        return {name: _change(name, tid, meta, at) for name, tid, meta, at in rows}

    def is_empty(self, conn: sqlite3.Connection | None = None) -> bool:
        cond, params = self._where()
        c = conn or self.db.connection()
        return not any(
            c.execute(f"SELECT 1 FROM {table} WHERE {cond} LIMIT 1", params).fetchone()
            for table in (self._tensors, self._file_table)
        )

    def drop_if_unchanged(self, base: Tree) -> bool:
        """Whether nothing staged here differs from `base` (HEAD's tree); if so, what is staged
        (changes equal to `base`) is dropped, so it does not follow HEAD elsewhere."""
        changes, files = self.changes(), self.file_changes()
        if apply_changes(base, changes, files).encode() != base.encode():
            return False
        if changes or files:
            with self.db.transaction() as tx:
                self.clear_committed(tx, changes, files)
        return True

    def stage(self, conn: sqlite3.Connection, entries: list[TreeEntry], base: Tree) -> None:
        """Stage `entries`; in the shared area one identical to `base` (HEAD's tree) only drops
        its staged change."""
        now = time.time()
        for e in entries:
            if self.shared and e.same_content(base.entries.get(e.name)):
                self._delete(conn, self._tensors, e.name)
            else:
                meta = canonical_json(e.to_dict()).decode()
                self._put(conn, self._tensors, (e.name, e.tensor_id, meta, now))

    def stage_removal(self, conn: sqlite3.Connection, name: str, base: Tree) -> None:
        """Stage the removal of `name` (in the shared area, just drop its staged addition if
        `base` lacks it)."""
        if name in base.entries or not self.shared:
            self._put(conn, self._tensors, (name, None, "{}", time.time()))
        else:
            self._delete(conn, self._tensors, name)

    def unstage(self, conn: sqlite3.Connection, names: list[str] | None = None) -> int:
        """Forget staged changes of `names` (all when None); returns how many were dropped."""
        keys: list[str | None] = [None] if names is None else list(names)
        dropped = sum(self._delete(conn, self._tensors, n) for n in keys)
        self._end_if_empty(conn)
        return dropped

    def clear_committed(
        self,
        conn: sqlite3.Connection,
        committed: dict[str, StagedChange],
        committed_files: dict[str, FileEntry | None],
    ) -> None:
        """Drop the rows a commit consumed, unless they were re-staged since it read them."""
        current = self.changes(conn)
        for name, change in committed.items():
            now = current.get(name)
            if now is not None and now._key() == change._key():
                self._delete(conn, self._tensors, name)
        files = self.file_changes(conn)
        for path, entry in committed_files.items():
            if path in files and files[path] == entry:
                self._delete(conn, self._file_table, path)
        self._end_if_empty(conn)

    def status(self, head: HeadState, base: Tree) -> RepositoryStatus:
        """Where `head` is and what this area stages relative to `base` (HEAD's tree)."""
        with self.db.snapshot() as conn:
            changes, files = self.changes(conn), self.file_changes(conn)
        st = RepositoryStatus(head.branch, head.commit, head.detached)
        for name, change in changes.items():
            old = base.entries.get(name)
            if change.entry is None:
                if old is not None:
                    st.removed.append(name)
            elif old is None:
                st.added.append(name)
            elif not change.entry.same_content(old):
                st.modified.append(name)
        for path, entry in files.items():
            before = base.files.get(path)
            kind = "removed" if entry is None else "added" if before is None else "modified"
            if entry is not None or before is not None:
                st.files[path] = kind
        return st

    # -- every area (gc, fsck) -----------------------------------------------------------------
    def roots(self) -> tuple[set[str], set[str]]:
        """Tensor ids and model-file blob ids staged in the shared area or any session whose
        owner may still commit them (what gc keeps); sessions of dead processes go first."""
        sessions.reap(self.db)
        with self.db.snapshot() as c:
            tensors = c.execute(
                "SELECT tensor_id FROM staging WHERE tensor_id IS NOT NULL UNION "
                "SELECT tensor_id FROM session_staging WHERE tensor_id IS NOT NULL"
            ).fetchall()
            blobs = c.execute(
                "SELECT blob_id FROM staged_files WHERE blob_id IS NOT NULL UNION "
                "SELECT blob_id FROM session_staged_files WHERE blob_id IS NOT NULL"
            ).fetchall()
        return {r[0] for r in tensors}, {r[0] for r in blobs}

    def all_changes(self) -> list[StagedChange]:
        """The staged tensor changes of the shared area and of every session (fsck)."""
        rows = self.db.query(
            "SELECT name, tensor_id, metadata, staged_at FROM staging UNION ALL "
            "SELECT name, tensor_id, metadata, staged_at FROM session_staging"
        )
        return [_change(*row) for row in rows]


def _change(name: str, tensor_id: str | None, metadata: str, staged_at: float) -> StagedChange:
    entry = TreeEntry.from_dict(json.loads(metadata)) if tensor_id is not None else None
    return StagedChange(name, entry, staged_at)


@dataclass
class RepositoryStatus:
    """Where HEAD is and what is staged relative to it."""

    branch: str | None
    head: str | None
    detached: bool
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # model file path: added/modified/removed

    @property
    def is_clean(self) -> bool:
        return not (self.added or self.modified or self.removed or self.files)

    @property
    def staged(self) -> dict[str, list[str]]:
        return {"added": self.added, "modified": self.modified, "removed": self.removed}

    @property
    def unborn(self) -> bool:
        return self.head is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "head": self.head,
            "detached": self.detached,
            "staged": self.staged,
            "files": dict(self.files),
            "clean": self.is_clean,
        }


def apply_changes(
    base: Tree,
    changes: dict[str, StagedChange],
    file_changes: dict[str, FileEntry | None] | None = None,
) -> Tree:
    """The tree that results from applying staged `changes` (and file changes) to `base`;
    files not staged are carried over from `base`."""
    entries = dict(base.entries)
    for name, change in changes.items():
        if change.entry is None:
            entries.pop(name, None)
        else:
            entries[name] = change.entry
    files = dict(base.files)
    for path, entry in (file_changes or {}).items():
        if entry is None:
            files.pop(path, None)
        else:
            files[path] = entry
    return Tree(entries, files)

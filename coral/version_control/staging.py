"""`StagingArea`: what the next commit will change, kept in the database (survives restarts).

A row is either an entry to write (tensor id + metadata: shape, dtype, layer type, ...) or a
removal (tensor_id NULL). Tensors are stored in the object store *before* their rows are
written, so a staged tensor id always names a durable object.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from coral.version_control.database import Database
from coral.version_control.objects import FileEntry, Tree, TreeEntry, canonical_json

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
    """Staged changes, by tensor name."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._files_ready = False
        self._files()  # outside any transaction: a first open creates the table

    def _files(self) -> None:
        if not self._files_ready:
            self.db.ensure_component(FILES_COMPONENT, 1, FILES_SCHEMA)
            self._files_ready = True

    # -- model files ---------------------------------------------------------------------------
    def file_changes(self, conn: sqlite3.Connection | None = None) -> dict[str, FileEntry | None]:
        """Staged model files by path (None: removed)."""
        self._files()
        c = conn or self.db.connection()
        rows = c.execute("SELECT path, blob_id, size FROM staged_files ORDER BY path").fetchall()
        return {p: FileEntry(p, b, n) if b is not None else None for p, b, n in rows}

    def stage_files(self, conn: sqlite3.Connection, files: list[FileEntry], base: Tree) -> None:
        """Stage model files; one identical to `base`'s only drops its staged change."""
        self._files()
        now = time.time()
        for f in files:
            if base.files.get(f.path) == f:
                conn.execute("DELETE FROM staged_files WHERE path=?", (f.path,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO staged_files VALUES (?, ?, ?, ?)",
                    (f.path, f.blob_id, f.size, now),
                )

    def stage_file_removal(self, conn: sqlite3.Connection, path: str, base: Tree) -> None:
        self._files()
        if path in base.files:
            conn.execute(
                "INSERT OR REPLACE INTO staged_files VALUES (?, NULL, 0, ?)", (path, time.time())
            )
        else:
            conn.execute("DELETE FROM staged_files WHERE path=?", (path,))

    def clear_committed_files(
        self, conn: sqlite3.Connection, committed: dict[str, FileEntry | None]
    ) -> None:
        current = self.file_changes(conn)
        for path, entry in committed.items():
            if path in current and current[path] == entry:
                conn.execute("DELETE FROM staged_files WHERE path=?", (path,))

    def unstage_files(self, conn: sqlite3.Connection, paths: list[str] | None = None) -> int:
        self._files()
        if paths is None:
            return conn.execute("DELETE FROM staged_files").rowcount
        return sum(
            conn.execute("DELETE FROM staged_files WHERE path=?", (p,)).rowcount for p in paths
        )

    # -- tensors -------------------------------------------------------------------------------

    def changes(self, conn: sqlite3.Connection | None = None) -> dict[str, StagedChange]:
        c = conn or self.db.connection()
        rows = c.execute(
            "SELECT name, tensor_id, metadata, staged_at FROM staging ORDER BY name"
        ).fetchall()
        out: dict[str, StagedChange] = {}
        for name, tensor_id, metadata, staged_at in rows:
            entry = TreeEntry.from_dict(json.loads(metadata)) if tensor_id is not None else None
            out[name] = StagedChange(name, entry, staged_at)
        return out

    def is_empty(self) -> bool:
        self._files()
        return (
            self.db.query("SELECT 1 FROM staging LIMIT 1") == []
            and self.db.query("SELECT 1 FROM staged_files LIMIT 1") == []
        )

    def tensor_ids(self) -> set[str]:
        return {
            r[0] for r in self.db.query("SELECT tensor_id FROM staging WHERE tensor_id IS NOT NULL")
        }

    def stage(self, conn: sqlite3.Connection, entries: list[TreeEntry], base: Tree) -> None:
        """Stage `entries`; one identical to `base` (HEAD's tree) only drops its staged change."""
        now = time.time()
        for e in entries:
            if e.same_content(base.entries.get(e.name)):
                conn.execute("DELETE FROM staging WHERE name=?", (e.name,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO staging VALUES (?, ?, ?, ?)",
                    (e.name, e.tensor_id, canonical_json(e.to_dict()).decode(), now),
                )

    def stage_removal(self, conn: sqlite3.Connection, name: str, base: Tree) -> None:
        """Stage the removal of `name` (or just drop its staged addition if `base` lacks it)."""
        if name in base.entries:
            conn.execute(
                "INSERT OR REPLACE INTO staging VALUES (?, NULL, '{}', ?)", (name, time.time())
            )
        else:
            conn.execute("DELETE FROM staging WHERE name=?", (name,))

    def unstage(self, conn: sqlite3.Connection, names: list[str] | None = None) -> int:
        """Forget staged changes of `names` (all when None); returns how many were dropped."""
        if names is None:
            return conn.execute("DELETE FROM staging").rowcount
        return sum(conn.execute("DELETE FROM staging WHERE name=?", (n,)).rowcount for n in names)

    def clear_committed(self, conn: sqlite3.Connection, committed: dict[str, StagedChange]) -> None:
        """Drop the rows a commit consumed, unless they were re-staged since it read them."""
        current = self.changes(conn)
        for name, change in committed.items():
            now = current.get(name)
            if now is not None and now._key() == change._key():
                conn.execute("DELETE FROM staging WHERE name=?", (name,))


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

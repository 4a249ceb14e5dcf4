"""The stash: staged changes put aside, kept in the repository database (component `stash`).

An entry holds what a staging area held when it was stashed — tensor changes (name -> tree
entry, or a removal) and model-file changes (path -> file entry, or a removal) — with a message,
the branch and the commit HEAD was at. Entries are numbered as git numbers them: `stash@{0}` is
the newest. Moving changes between the staging area and the stash happens in one transaction
(`conn`), so a change is always in one of them; the tensors, blobs and base commits of every
entry are gc roots (`roots`).

>>> store = StashStore(repo.database)
>>> with repo.database.transaction() as tx:
...     entry_id = store.save(tx, "wip", "main", head, changes, file_changes)
>>> [e.ref for e in store.entries()]
['stash@{0}']
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from coral.version_control.database import Database
from coral.version_control.objects import FileEntry, TreeEntry, canonical_json

COMPONENT = "stash"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS stash_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message    TEXT NOT NULL,
    branch     TEXT,               -- the branch HEAD was on (NULL: detached)
    head       TEXT,               -- HEAD's commit when stashed (NULL: no commits yet)
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stash_tensors (
    stash      INTEGER NOT NULL,
    name       TEXT NOT NULL,
    tensor_id  TEXT,               -- NULL: a staged removal
    metadata   TEXT NOT NULL,
    PRIMARY KEY (stash, name)
);
CREATE TABLE IF NOT EXISTS stash_files (
    stash      INTEGER NOT NULL,
    path       TEXT NOT NULL,
    blob_id    TEXT,               -- NULL: a staged removal
    size       INTEGER NOT NULL,
    PRIMARY KEY (stash, path)
);
"""


@dataclass
class StashEntry:
    """One stashed set of changes; `index` is its place in the list (0 = newest)."""

    id: int
    index: int
    message: str
    branch: str | None
    head: str | None
    created_at: float
    tensors: dict[str, TreeEntry | None] = field(default_factory=dict)
    files: dict[str, FileEntry | None] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"stash@{{{self.index}}}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stash": self.ref,
            "index": self.index,
            "id": self.id,
            "message": self.message,
            "branch": self.branch,
            "head": self.head,
            "created_at": self.created_at,
            "tensors": {n: e.to_dict() if e else None for n, e in sorted(self.tensors.items())},
            "files": {p: f.to_dict() if f else None for p, f in sorted(self.files.items())},
        }


@dataclass(frozen=True)
class StashRoots:
    """What the stash keeps alive for gc."""

    commits: set[str]
    tensors: set[str]
    files: set[str]


class StashStore:
    """Save, read and delete stash entries of one repository database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)  # outside any transaction

    def save(
        self,
        conn: sqlite3.Connection,
        message: str,
        branch: str | None,
        head: str | None,
        tensors: dict[str, TreeEntry | None],
        files: dict[str, FileEntry | None],
    ) -> int:
        """Record a new newest entry (inside the caller's transaction); its id."""
        cur = conn.execute(
            "INSERT INTO stash_entries (message, branch, head, created_at) VALUES (?, ?, ?, ?)",
            (message, branch, head, time.time()),
        )
        entry_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO stash_tensors VALUES (?, ?, ?, ?)",
            [
                (entry_id, n, e.tensor_id if e else None, _meta(e))
                for n, e in sorted(tensors.items())
            ],
        )
        conn.executemany(
            "INSERT INTO stash_files VALUES (?, ?, ?, ?)",
            [
                (entry_id, p, f.blob_id if f else None, f.size if f else 0)
                for p, f in sorted(files.items())
            ],
        )
        return entry_id

    def entries(self, conn: sqlite3.Connection | None = None) -> list[StashEntry]:
        """Every entry, newest first (without their changes: see `entry`)."""
        c = conn or self.db.connection()
        rows = c.execute(
            "SELECT id, message, branch, head, created_at FROM stash_entries ORDER BY id DESC"
        ).fetchall()
        return [StashEntry(int(r[0]), i, r[1], r[2], r[3], float(r[4])) for i, r in enumerate(rows)]

    def counts(self, conn: sqlite3.Connection | None = None) -> dict[int, tuple[int, int]]:
        """entry id -> (tensor changes, file changes)."""
        c = conn or self.db.connection()
        out: dict[int, tuple[int, int]] = {}
        for table, pos in (("stash_tensors", 0), ("stash_files", 1)):
            for sid, n in c.execute(f"SELECT stash, COUNT(*) FROM {table} GROUP BY stash"):
                pair = list(out.get(int(sid), (0, 0)))
                pair[pos] = int(n)
                out[int(sid)] = (pair[0], pair[1])
        return out

    def entry(self, index: int, conn: sqlite3.Connection | None = None) -> StashEntry | None:
        """Entry number `index` (0 = newest) with its changes; None when there is none."""
        listed = self.entries(conn)
        if not 0 <= index < len(listed):
            return None
        entry = listed[index]
        c = conn or self.db.connection()
        for name, tid, meta in c.execute(
            "SELECT name, tensor_id, metadata FROM stash_tensors WHERE stash=?", (entry.id,)
        ):
            entry.tensors[name] = TreeEntry.from_dict(json.loads(meta)) if tid else None
        for path, blob, size in c.execute(
            "SELECT path, blob_id, size FROM stash_files WHERE stash=?", (entry.id,)
        ):
            entry.files[path] = FileEntry(path, blob, int(size)) if blob else None
        return entry

    def delete(self, conn: sqlite3.Connection, entry_id: int) -> None:
        """Forget an entry (inside the caller's transaction); its objects become garbage."""
        for table, column in (
            ("stash_tensors", "stash"),
            ("stash_files", "stash"),
            ("stash_entries", "id"),
        ):
            conn.execute(f"DELETE FROM {table} WHERE {column}=?", (entry_id,))

    def roots(self) -> StashRoots:
        """The base commits, tensors and model-file blobs of every entry (what gc keeps)."""
        with self.db.snapshot() as c:
            commits = c.execute("SELECT head FROM stash_entries WHERE head IS NOT NULL")
            heads = {str(r[0]) for r in commits}
            tensors = c.execute("SELECT tensor_id FROM stash_tensors WHERE tensor_id IS NOT NULL")
            tids = {str(r[0]) for r in tensors}
            blobs = c.execute("SELECT blob_id FROM stash_files WHERE blob_id IS NOT NULL")
            bids = {str(r[0]) for r in blobs}
        return StashRoots(heads, tids, bids)


def _meta(entry: TreeEntry | None) -> str:
    return canonical_json(entry.to_dict()).decode() if entry else "{}"

"""Comments on commits, kept in the repository database (component `comments`, schema 1).

Table `comments`: `(id, commit_id, author, at, text)`, one row per comment, numbered in the order
they were made. Adding and deleting a comment is audited (`comment.add`, `comment.delete`) in the
same transaction.

>>> store = CommentStore(repo.database)
>>> c = store.add(commit_hash, "looks good", author="ana")
>>> [x.text for x in store.for_commit(commit_hash)]
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from coral.version_control.audit import record_safely
from coral.version_control.database import ComponentTables

COMPONENT = "comments"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL,
    author TEXT NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_by_commit ON comments (commit_id, id);
"""
_COLUMNS = "SELECT id, commit_id, author, at, text FROM comments"


@dataclass(frozen=True)
class Comment:
    """One comment on a commit."""

    id: int
    commit_hash: str
    author: str
    at: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "commit_hash": self.commit_hash,
            "author": self.author,
            "at": self.at,
            "text": self.text,
        }


class CommentStore(ComponentTables):
    """Add, list and delete the comments of a repository's commits."""

    component, schema_version, schema_sql = COMPONENT, SCHEMA_VERSION, _SCHEMA

    def add(self, commit_hash: str, text: str, *, author: str) -> Comment:
        """Append a comment to `commit_hash` (a full commit id)."""
        self._ensure()
        at = time.time()
        with self.db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO comments (commit_id, author, at, text) VALUES (?, ?, ?, ?)",
                (commit_hash, author, at, text),
            )
            comment = Comment(int(cur.lastrowid or 0), commit_hash, author, at, text)
            record_safely(
                self.db,
                "comment.add",
                actor=author,
                target=commit_hash,
                detail={"id": comment.id},
                conn=tx,
            )
        return comment

    def get(self, comment_id: int) -> Comment | None:
        rows = self._query(_COLUMNS + " WHERE id=?", (comment_id,))
        return rows[0] if rows else None

    def for_commit(self, commit_hash: str) -> list[Comment]:
        """The comments on `commit_hash`, oldest first."""
        return self._query(_COLUMNS + " WHERE commit_id=? ORDER BY id", (commit_hash,))

    def delete(self, comment_id: int, *, actor: str) -> Comment | None:
        """Delete comment `comment_id`; returns it (None when there is no such comment)."""
        self._ensure()
        with self.db.transaction() as tx:
            row = tx.execute(_COLUMNS + " WHERE id=?", (comment_id,)).fetchone()
            if row is None:
                return None
            tx.execute("DELETE FROM comments WHERE id=?", (comment_id,))
            comment = _comment(row)
            record_safely(
                self.db,
                "comment.delete",
                actor=actor,
                target=comment.commit_hash,
                detail={"id": comment.id, "author": comment.author},
                conn=tx,
            )
        return comment

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Comment]:
        try:
            return [_comment(r) for r in self.db.query(sql, params)]
        except sqlite3.OperationalError:  # no table yet: nobody commented
            return []


def _comment(row: Any) -> Comment:
    return Comment(int(row[0]), str(row[1]), str(row[2]), float(row[3]), str(row[4]))

"""`RefStore`: branches, tags, HEAD and the reflog, kept in the repository database.

Every ref move is a compare-and-swap inside a `BEGIN IMMEDIATE` transaction: the caller says
what it expects the ref to hold, and a mismatch raises ConcurrentUpdateError instead of
overwriting another process's commit. Each move appends to the reflog in the same transaction,
and to the audit log (`ref.create`, `ref.update`, `ref.delete`, with the old and new commit).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from coral.errors import ConcurrentUpdateError, RefNotFoundError
from coral.version_control.audit import record_safely
from coral.version_control.database import Database
from coral.version_control.errors import RefExistsError
from coral.version_control.objects import Tag
from coral.version_control.refnames import check_name

HEAD_REF = "HEAD"
_TAG_COLUMNS = "SELECT name, commit_id, tag_id, description, metrics, tagger, created_at FROM tags"


@dataclass(frozen=True)
class HeadState:
    """Where HEAD is: on `branch` (tip `commit`, None while unborn), or detached at `commit`."""

    branch: str | None
    commit: str | None

    @property
    def detached(self) -> bool:
        return self.branch is None


@dataclass(frozen=True)
class Branch:
    name: str
    commit_hash: str
    is_current: bool = False

    @property
    def commit(self) -> str:
        return self.commit_hash

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "commit_hash": self.commit_hash, "is_current": self.is_current}


@dataclass(frozen=True)
class ReflogEntry:
    ref: str
    old: str | None
    new: str | None
    message: str
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "old": self.old,
            "new": self.new,
            "message": self.message,
            "timestamp": self.timestamp,
        }


class RefStore:
    """Reads and compare-and-swap writes of refs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- HEAD ---------------------------------------------------------------------------------
    def head(self, conn: sqlite3.Connection | None = None) -> HeadState:
        c = conn or self.db.connection()
        row = c.execute("SELECT branch, commit_id FROM head WHERE id=1").fetchone()
        if row is None:
            return HeadState("main", None)
        branch, commit = row
        if branch is not None:
            tip = c.execute("SELECT commit_id FROM branches WHERE name=?", (branch,)).fetchone()
            return HeadState(branch, tip[0] if tip else None)
        return HeadState(None, commit)

    def set_head(
        self,
        conn: sqlite3.Connection,
        *,
        branch: str | None = None,
        commit: str | None = None,
        message: str = "checkout",
    ) -> None:
        """Attach HEAD to `branch`, or detach it at `commit` (inside the caller's transaction)."""
        old = self.head(conn)
        if branch is not None:
            conn.execute("UPDATE head SET branch=?, commit_id=NULL WHERE id=1", (branch,))
            new_commit = self.branch_tip(branch, conn)
        else:
            conn.execute("UPDATE head SET branch=NULL, commit_id=? WHERE id=1", (commit,))
            new_commit = commit
        self._log(conn, HEAD_REF, old.commit, new_commit, message)

    def update_head(
        self, conn: sqlite3.Connection, new: str, expected: HeadState, message: str
    ) -> None:
        """Move what HEAD points at (its branch, or itself when detached) from expected to new."""
        current = self.head(conn)
        if current != expected:
            raise _moved(
                "HEAD" if expected.detached else f"branch {expected.branch!r}", expected, current
            )
        if current.branch is not None:
            self._set_branch(conn, current.branch, new, expected.commit, message)
        else:
            conn.execute("UPDATE head SET commit_id=? WHERE id=1", (new,))
        # on a branch, the branch's move is the one audited
        self._log(conn, HEAD_REF, expected.commit, new, message, audit=current.branch is None)

    # -- branches -----------------------------------------------------------------------------
    def branch_tip(self, name: str, conn: sqlite3.Connection | None = None) -> str | None:
        c = conn or self.db.connection()
        row = c.execute("SELECT commit_id FROM branches WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def list_branches(self) -> list[Branch]:
        head = self.head()
        rows = self.db.query("SELECT name, commit_id FROM branches ORDER BY name")
        return [Branch(n, c, n == head.branch) for n, c in rows]

    def create_branch(self, conn: sqlite3.Connection, name: str, commit: str, message: str) -> None:
        check_name(name, "branch")
        if self.branch_tip(name, conn) is not None:
            raise RefExistsError(f"branch {name!r} already exists")
        self._set_branch(conn, name, commit, None, message)

    def update_branch(
        self, conn: sqlite3.Connection, name: str, new: str, expected: str | None, message: str
    ) -> None:
        """Compare-and-swap branch `name` from `expected` (None = must not exist) to `new`."""
        self._set_branch(conn, name, new, expected, message)
        head = self.head(conn)
        if head.branch == name:
            self._log(conn, HEAD_REF, expected, new, message, audit=False)

    def delete_branch(
        self, conn: sqlite3.Connection, name: str, message: str = "delete branch"
    ) -> str:
        tip = self.branch_tip(name, conn)
        if tip is None:
            raise RefNotFoundError(f"branch {name!r} not found")
        conn.execute("DELETE FROM branches WHERE name=?", (name,))
        self._log(conn, f"refs/heads/{name}", tip, None, message)
        return tip

    def _set_branch(
        self, conn: sqlite3.Connection, name: str, new: str, expected: str | None, message: str
    ) -> None:
        current = self.branch_tip(name, conn)
        if current != expected:
            raise _moved(f"branch {name!r}", expected, current)
        now = time.time()
        if current is None:
            conn.execute("INSERT INTO branches VALUES (?, ?, ?, ?)", (name, new, now, now))
        else:
            conn.execute(
                "UPDATE branches SET commit_id=?, updated_at=? WHERE name=? AND commit_id=?",
                (new, now, name, expected),
            )
        self._log(conn, f"refs/heads/{name}", current, new, message)

    # -- tags ---------------------------------------------------------------------------------
    def get_tag(self, name: str, conn: sqlite3.Connection | None = None) -> Tag | None:
        c = conn or self.db.connection()
        row = c.execute(
            _TAG_COLUMNS + " WHERE name=?",
            (name,),
        ).fetchone()
        return _tag_from_row(row) if row else None

    def list_tags(self) -> list[Tag]:
        rows = self.db.query(_TAG_COLUMNS + " ORDER BY name")
        return [_tag_from_row(r) for r in rows]

    def create_tag(self, conn: sqlite3.Connection, tag: Tag, force: bool = False) -> None:
        check_name(tag.name, "tag")
        old = self.get_tag(tag.name, conn)
        if old is not None and not force:
            raise RefExistsError(f"tag {tag.name!r} already exists (at {old.commit_hash[:10]})")
        conn.execute(
            "INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                tag.name,
                tag.commit_hash,
                tag.tag_id,
                tag.description,
                json.dumps(tag.metrics or {}, sort_keys=True),
                tag.tagger,
                tag.created_at,
            ),
        )
        self._log(
            conn,
            f"refs/tags/{tag.name}",
            old.commit_hash if old else None,
            tag.commit_hash,
            f"tag: {tag.description or tag.name}",
        )

    def delete_tag(self, conn: sqlite3.Connection, name: str) -> Tag:
        old = self.get_tag(name, conn)
        if old is None:
            raise RefNotFoundError(f"tag {name!r} not found")
        conn.execute("DELETE FROM tags WHERE name=?", (name,))
        self._log(conn, f"refs/tags/{name}", old.commit_hash, None, "delete tag")
        return old

    # -- reflog -------------------------------------------------------------------------------
    def _log(
        self,
        conn: sqlite3.Connection,
        ref: str,
        old: str | None,
        new: str | None,
        message: str,
        *,
        audit: bool = True,
    ) -> None:
        if old == new and not message.startswith("checkout"):
            return
        conn.execute(
            "INSERT INTO reflog (ref, old_id, new_id, message, created_at) VALUES (?, ?, ?, ?, ?)",
            (ref, old, new, message, time.time()),
        )
        if audit:
            action = "ref.create" if old is None else "ref.delete" if new is None else "ref.update"
            if ref == HEAD_REF:  # HEAD itself is never created or deleted
                action = "ref.update"
            detail = {"old": old, "new": new, "message": message}
            record_safely(self.db, action, target=ref, detail=detail, conn=conn)

    def reflog(self, ref: str = HEAD_REF, limit: int | None = None) -> list[ReflogEntry]:
        """Reflog entries of `ref` ("HEAD", "refs/heads/NAME" or a branch name), newest first."""
        if ref != HEAD_REF and not ref.startswith("refs/"):
            ref = f"refs/heads/{ref}"
        sql = (
            "SELECT ref, old_id, new_id, message, created_at FROM reflog WHERE ref=? "
            "ORDER BY id DESC"
        )
        params: list[Any] = [ref]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [ReflogEntry(*r) for r in self.db.query(sql, params)]

    def reflog_commits(self) -> set[str]:
        """Every commit id any reflog entry mentions (kept alive by gc)."""
        out: set[str] = set()
        for old, new in self.db.query("SELECT old_id, new_id FROM reflog"):
            if old:
                out.add(old)
            if new:
                out.add(new)
        return out

    def expire_reflog(self, before: float) -> int:
        """Drop reflog entries older than `before` (epoch seconds); returns how many."""
        with self.db.transaction() as tx:
            cur = tx.execute("DELETE FROM reflog WHERE created_at < ?", (before,))
            return cur.rowcount

    def all_ref_targets(self) -> dict[str, str]:
        """name -> commit for every branch ("refs/heads/...") and tag ("refs/tags/...")."""
        out = {
            f"refs/heads/{n}": c for n, c in self.db.query("SELECT name, commit_id FROM branches")
        }
        out.update(
            {f"refs/tags/{n}": c for n, c in self.db.query("SELECT name, commit_id FROM tags")}
        )
        return out


def _tag_from_row(row: Any) -> Tag:
    name, commit_id, tag_id, description, metrics, tagger, created_at = row
    return Tag(
        name, commit_id, description, json.loads(metrics or "{}"), tagger, created_at, tag_id
    )


def _moved(what: str, expected: object, current: object) -> ConcurrentUpdateError:
    def show(v: object) -> str:
        if isinstance(v, HeadState):
            return f"{v.branch or 'detached'}@{(v.commit or 'unborn')[:10]}"
        return (str(v)[:10]) if v else "nothing"

    return ConcurrentUpdateError(
        f"{what} moved while this operation ran: expected {show(expected)}, found {show(current)}; "
        "nothing was changed",
        hint="another process updated it first; your staged changes are still staged — run the "
        "command again to apply them on top of the new tip",
    )

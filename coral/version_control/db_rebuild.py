"""Filling a new repository database from a salvage and the object store (`repair.py`).

`copy_salvage` writes every row read from the damaged file into the new database (tables other
components own included, created from their stored SQL). `rebuild_refs` then makes the refs
true to the objects: rows naming a missing commit, tag object or staged tensor are dropped;
branches lost from the database come back from the reflog, tags from the tag objects in the
store; each head of history (a commit no other commit names as parent) that no branch reaches
and that the reflog does not show was abandoned (a deleted branch, a reset) becomes a branch:
the default branch, if it was lost, at the newest; `recovered-<short hash>` for the others.
HEAD goes back where it was when that still exists, else to the default branch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from coral.errors import CoralError
from coral.storage.pack_store import PackStore
from coral.version_control.database import FORMAT_VERSION, Database
from coral.version_control.db_salvage import Salvage
from coral.version_control.objects import COMMIT, FILE, TAG, Tag
from coral.version_control.refnames import check_name
from coral.version_control.refs import RefStore

NOT_COPIED = {"schema_versions"}  # components record their versions again on first use
RECOVERED_PREFIX = "recovered-"


@dataclass
class RecoveredRef:
    """A branch or tag of the rebuilt database and where it came from."""

    name: str
    commit: str
    source: str  # "database", "reflog", "tag object" or "commits"

    def __str__(self) -> str:
        return f"{self.name} -> {self.commit[:10]} ({self.source})"


@dataclass
class Rebuilt:
    """What the new database holds, and what was left out."""

    rows: dict[str, int] = field(default_factory=dict)  # rows copied per table
    branches: list[RecoveredRef] = field(default_factory=list)
    tags: list[RecoveredRef] = field(default_factory=list)
    head: str = ""
    dropped: list[str] = field(default_factory=list)  # rows that named missing objects
    notes: list[str] = field(default_factory=list)


@dataclass
class History:
    """The commits in the store: their parents and times (unreadable ones left out)."""

    ids: set[str]
    parents: dict[str, list[str]]
    times: dict[str, float]

    @classmethod
    def read(cls, store: PackStore, notes: list[str]) -> History:
        from coral.version_control.objects import Commit

        ids = set(store.list_blobs(COMMIT))
        parents: dict[str, list[str]] = {}
        times: dict[str, float] = {}
        for cid in sorted(ids):
            try:
                commit = Commit.decode(store.get_blob(COMMIT, cid), cid)
            except CoralError as exc:
                notes.append(f"commit {cid[:10]} cannot be read: {exc.message}")
                continue
            parents[cid] = commit.parent_hashes
            times[cid] = commit.timestamp
        return cls(ids, parents, times)

    def heads(self) -> list[str]:
        """Commits no other commit names as parent, newest first."""
        named = {p for ps in self.parents.values() for p in ps}
        return sorted(
            (c for c in self.parents if c not in named), key=lambda c: -self.times.get(c, 0.0)
        )

    def ancestry(self, tips: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(tips)
        while stack:
            cid = stack.pop()
            if cid not in seen:
                seen.add(cid)
                stack.extend(self.parents.get(cid, ()))
        return seen


def copy_salvage(db: Database, salvage: Salvage, out: Rebuilt) -> None:
    """Write the salvaged rows into `db` (freshly created), table by table."""
    with db.transaction() as tx:
        existing = db.tables()
        for name, table in salvage.tables.items():
            if name in NOT_COPIED or not table.columns:
                continue
            if name not in existing:
                try:
                    tx.execute(table.sql)
                except sqlite3.Error as exc:
                    out.notes.append(f"table {name} cannot be recreated: {exc}")
                    continue
            have = {str(r[1]) for r in tx.execute(f"PRAGMA table_info({_quote(name)})")}
            keep = [i for i, c in enumerate(table.columns) if c in have]
            cols = ", ".join(_quote(table.columns[i]) for i in keep)
            marks = ", ".join("?" * len(keep))
            sql = f"INSERT OR REPLACE INTO {_quote(name)} ({cols}) VALUES ({marks})"
            copied = 0
            for row in table.rows:
                try:
                    tx.execute(sql, [row[i] for i in keep])
                    copied += 1
                except sqlite3.Error:
                    table.lost += 1
            out.rows[name] = copied
        for statement in salvage.indexes:
            with suppress(sqlite3.Error):  # it exists already, or its table could not be made
                tx.execute(statement)
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),)
        )
        # components record their tables again on first use (a lost one is then made anew)
        tx.execute("DELETE FROM meta WHERE key LIKE 'tables:%'")


def rebuild_refs(db: Database, store: PackStore, default_branch: str, out: Rebuilt) -> None:
    """Make branches, tags, HEAD, the reflog and the staging area true to the objects."""
    history = History.read(store, out.notes)
    refs = RefStore(db)
    with db.transaction() as tx:
        _drop_bad_reflog(tx, history, out)
        _keep_good_branches(tx, history, out)
        _branches_from_reflog(tx, refs, history, out)
        _keep_good_tags(tx, store, history, out)
        _tags_from_objects(tx, refs, store, history, out)
        _branches_from_heads(tx, refs, history, default_branch, out)
        _restore_head(tx, refs, history, default_branch, out)
        _drop_bad_staging(tx, db, store, out)


def _drop_bad_reflog(tx: sqlite3.Connection, history: History, out: Rebuilt) -> None:
    bad = [
        rid
        for rid, old, new in tx.execute("SELECT id, old_id, new_id FROM reflog").fetchall()
        if (old and old not in history.ids) or (new and new not in history.ids)
    ]
    tx.executemany("DELETE FROM reflog WHERE id=?", [(rid,) for rid in bad])
    if bad:
        out.dropped.append(f"{len(bad)} reflog entries naming missing commits")


def _valid_name(name: object, kind: str) -> bool:
    try:
        check_name(name, kind)  # type: ignore[arg-type]
    except CoralError:
        return False
    return True


def _keep_good_branches(tx: sqlite3.Connection, history: History, out: Rebuilt) -> None:
    for name, cid in tx.execute("SELECT name, commit_id FROM branches").fetchall():
        if _valid_name(name, "branch") and cid in history.ids:
            out.branches.append(RecoveredRef(name, cid, "database"))
        else:
            tx.execute("DELETE FROM branches WHERE name=?", (name,))
            out.dropped.append(f"branch {name!r}: commit {str(cid)[:10]} is missing")


def _branches_from_reflog(
    tx: sqlite3.Connection, refs: RefStore, history: History, out: Rebuilt
) -> None:
    latest: dict[str, str | None] = {}
    rows = tx.execute("SELECT ref, new_id FROM reflog ORDER BY id").fetchall()
    for ref, new in rows:
        if isinstance(ref, str) and ref.startswith("refs/heads/"):
            latest[ref[len("refs/heads/") :]] = new
    have = {b.name for b in out.branches}
    for name, cid in sorted(latest.items()):
        if name in have or cid is None or cid not in history.ids:
            continue  # known, or deleted last
        if _valid_name(name, "branch"):
            refs.create_branch(tx, name, cid, "repair: branch recovered from the reflog")
            out.branches.append(RecoveredRef(name, cid, "reflog"))


def _keep_good_tags(
    tx: sqlite3.Connection, store: PackStore, history: History, out: Rebuilt
) -> None:
    for name, cid, tag_id in tx.execute("SELECT name, commit_id, tag_id FROM tags").fetchall():
        tag = _read_tag(store, tag_id)
        if tag is not None and tag.name == name and tag.commit_hash == cid and cid in history.ids:
            out.tags.append(RecoveredRef(name, cid, "database"))
        else:
            tx.execute("DELETE FROM tags WHERE name=?", (name,))
            out.dropped.append(f"tag {name!r}: its tag object or commit is missing")


def _read_tag(store: PackStore, tag_id: object) -> Tag | None:
    if not isinstance(tag_id, str) or not tag_id:
        return None
    try:
        tag = Tag.decode(store.get_blob(TAG, tag_id), tag_id)
    except CoralError:
        return None
    tag.tag_id = tag_id
    return tag


def _tags_from_objects(
    tx: sqlite3.Connection, refs: RefStore, store: PackStore, history: History, out: Rebuilt
) -> None:
    """Tags the database lost, from their tag objects; not one deleted after it was made."""
    deleted: dict[str, float] = {}
    for ref, new, at in tx.execute("SELECT ref, new_id, created_at FROM reflog").fetchall():
        if isinstance(ref, str) and ref.startswith("refs/tags/") and new is None:
            name = ref[len("refs/tags/") :]
            deleted[name] = max(deleted.get(name, 0.0), float(at or 0.0))
    newest: dict[str, Tag] = {}
    for tag_id in store.list_blobs(TAG):
        tag = _read_tag(store, tag_id)
        if tag is None or tag.commit_hash not in history.ids:
            continue
        if tag.created_at <= deleted.get(tag.name, float("-inf")):
            continue
        if tag.name not in newest or tag.created_at > newest[tag.name].created_at:
            newest[tag.name] = tag
    have = {t.name for t in out.tags}
    for name, tag in sorted(newest.items()):
        if name not in have and _valid_name(name, "tag"):
            refs.create_tag(tx, tag)
            out.tags.append(RecoveredRef(name, tag.commit_hash, "tag object"))


def _branches_from_heads(
    tx: sqlite3.Connection, refs: RefStore, history: History, default: str, out: Rebuilt
) -> None:
    """A branch for each head of history that no recovered branch reaches and the reflog does
    not show was left on purpose (a deleted branch, a reset): the default branch, when it was
    lost, at the newest; `recovered-<short>` for the others (their names are lost)."""
    reached = history.ancestry([b.commit for b in out.branches])
    left = _abandoned(tx, history)
    heads = [c for c in history.heads() if c not in reached and c not in left]
    if default not in {b.name for b in out.branches} and (heads or out.branches):
        tip = heads.pop(0) if heads else _newest(history, [b.commit for b in out.branches])
        refs.create_branch(tx, default, tip, "repair: default branch at the newest head")
        out.branches.append(RecoveredRef(default, tip, "commits: the newest head"))
        out.notes.append(f"branch {default!r} was lost: recreated at the newest head {tip[:10]}")
    for cid in heads:
        name = f"{RECOVERED_PREFIX}{cid[:10]}"
        if refs.branch_tip(name, tx) is None:
            refs.create_branch(tx, name, cid, "repair: branch recovered from the commits")
            out.branches.append(RecoveredRef(name, cid, "commits"))


def _abandoned(tx: sqlite3.Connection, history: History) -> set[str]:
    """Commits a branch or tag moved away from, per the reflog: the old tip of a deletion, or of
    a move to a commit that does not descend from it."""
    out: set[str] = set()
    rows = tx.execute("SELECT ref, old_id, new_id FROM reflog WHERE ref != 'HEAD'").fetchall()
    for _, old, new in rows:
        if not old or old in out:
            continue
        if new is None or (
            old not in history.parents.get(new, ()) and old not in history.ancestry([new])
        ):
            out.add(old)
    return out


def _newest(history: History, commits: list[str]) -> str:
    return max(commits, key=lambda c: history.times.get(c, 0.0))


def _restore_head(
    tx: sqlite3.Connection, refs: RefStore, history: History, default: str, out: Rebuilt
) -> None:
    """HEAD where the salvaged row put it, when that still exists; else the default branch."""
    row = tx.execute("SELECT branch, commit_id FROM head WHERE id=1").fetchone()
    branches = {b.name for b in out.branches}
    branch, commit = (row[0], row[1]) if row else (None, None)
    if branch is not None and (branch in branches or not history.ids):
        out.head = f"branch {branch}"
    elif branch is None and commit in history.ids:
        out.head = f"detached at {commit[:10]}"
    else:
        refs.set_head(tx, branch=default, message="repair: HEAD to the default branch")
        out.head = f"branch {default}"


def _drop_bad_staging(tx: sqlite3.Connection, db: Database, store: PackStore, out: Rebuilt) -> None:
    """Staged rows (shared area and sessions) whose tensor or model file is missing, or whose
    metadata cannot be read."""
    for table in sorted(db.tables()):
        columns = {str(r[1]) for r in tx.execute(f"PRAGMA table_info({_quote(table)})")}
        if table.endswith("staging") and {"tensor_id", "metadata"} <= columns:
            rows = tx.execute(f"SELECT rowid, tensor_id, metadata FROM {_quote(table)}").fetchall()
            bad = [r for r, tid, meta in rows if not _staged_ok(store, tid, meta)]
        elif table.endswith("staged_files") and "blob_id" in columns:
            rows = tx.execute(f"SELECT rowid, blob_id FROM {_quote(table)}").fetchall()
            bad = [r for r, bid in rows if bid is not None and not store.has_blob(FILE, bid)]
        else:
            continue
        tx.executemany(f"DELETE FROM {_quote(table)} WHERE rowid=?", [(r,) for r in bad])
        if bad:
            out.dropped.append(f"{len(bad)} staged row(s) of {table} naming missing objects")


def _staged_ok(store: PackStore, tensor_id: Any, metadata: Any) -> bool:
    if tensor_id is None:
        return True
    try:
        json.loads(metadata)
    except (TypeError, ValueError):
        return False
    return isinstance(tensor_id, str) and store.exists(tensor_id)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

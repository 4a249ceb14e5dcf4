"""Pruned commits: history keeps them, `gc` may take their weights.

A pruned commit (training retention prunes old checkpoints; anything may prune) stays in the
history — `log` shows it, its parents stay connected, the commit object is never deleted while
something reaches it — but `gc` no longer counts its tree as live. Its tree and the tensors only
it needed are deleted by the next `gc`, unless the commit is named directly by a branch, a tag
or HEAD. A pruned commit reachable only through the reflog loses its weights too (the reflog
keeps commit objects, not weights). Tensors another live commit, the staging area or a delta
chain still needs are kept by the usual reachability.

Until `gc` runs a pruned commit reads as before and `unprune` brings it back. After `gc`,
reading its weights raises `PrunedCommitError` and `fsck` reports it as expected, not as damage.

The list lives in the `pruned_commits` table (component `pruning`), created on first use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from coral.errors import CorruptObjectError, FormatVersionError, ObjectNotFoundError
from coral.version_control.database import Database
from coral.version_control.errors import PrunedCommitError
from coral.version_control.objects import TREE

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

COMPONENT = "pruning"
SCHEMA_VERSION = 1
TABLE = "pruned_commits"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pruned_commits (
    commit_hash TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    pruned_at   REAL NOT NULL
);
"""


def ensure_table(db: Database) -> None:
    """Create the table (idempotent), also from inside an open transaction."""
    conn = db.connection()
    if not conn.in_transaction:
        db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)
        return
    # executescript() would commit the caller's transaction: create it statement by statement
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component=?", (COMPONENT,)
    ).fetchone()
    if row and int(row[0]) > SCHEMA_VERSION:
        raise FormatVersionError(
            f"database schema {row[0]} of {COMPONENT} is newer than this Coral supports "
            f"({SCHEMA_VERSION})"
        )
    if row and int(row[0]) == SCHEMA_VERSION:
        return
    conn.execute(_SCHEMA)
    conn.execute(
        "INSERT OR REPLACE INTO schema_versions VALUES (?, ?, ?)",
        (COMPONENT, SCHEMA_VERSION, time.time()),
    )


def _exists(db: Database) -> bool:
    return bool(db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)))


def add(db: Database, hashes: Iterable[str], reason: str) -> int:
    """Mark full commit hashes pruned; returns how many were not pruned before."""
    hashes = list(dict.fromkeys(hashes))
    ensure_table(db)
    now = time.time()
    with db.transaction() as tx:
        return sum(
            tx.execute(
                "INSERT OR IGNORE INTO pruned_commits VALUES (?, ?, ?)", (h, reason, now)
            ).rowcount
            for h in hashes
        )


def remove(db: Database, hashes: Iterable[str]) -> int:
    """Unmark commits; returns how many were pruned."""
    hashes = list(dict.fromkeys(hashes))
    if not hashes or not _exists(db):
        return 0
    with db.transaction() as tx:
        return sum(
            tx.execute("DELETE FROM pruned_commits WHERE commit_hash=?", (h,)).rowcount
            for h in hashes
        )


def pruned(db: Database) -> set[str]:
    """Every pruned commit's hash (empty when nothing was ever pruned)."""
    if not _exists(db):
        return set()
    return {r[0] for r in db.query("SELECT commit_hash FROM pruned_commits")}


def reason(db: Database, commit_hash: str) -> str | None:
    """Why `commit_hash` was pruned (None when it is not)."""
    if not _exists(db):
        return None
    rows = db.query("SELECT reason FROM pruned_commits WHERE commit_hash=?", (commit_hash,))
    return str(rows[0][0]) if rows else None


def weights_collected(repo: Repository, commit_hash: str) -> bool:
    """Whether gc deleted the commit's tree or any tensor of it."""
    commit = repo.read_commit(commit_hash)
    if not repo.store.has_blob(TREE, commit.tree_id):
        return True
    try:
        tree = repo.read_tree(commit.tree_id)
    except ObjectNotFoundError:
        return True
    except CorruptObjectError:
        return False  # damage, not collection: fsck reports it
    return any(not repo.store.exists(e.tensor_id) for e in tree.entries.values())


def collected_error(repo: Repository, commit_hash: str) -> PrunedCommitError | None:
    """The error to raise when reading `commit_hash` failed, if it is a pruned commit."""
    why = reason(repo.database, commit_hash)
    if why is None:
        return None
    return PrunedCommitError(
        f"commit {commit_hash[:10]} was pruned ({why}) and garbage-collected: its weights "
        "are gone (the commit stays in the history)"
    )


def raise_if_collected(repo: Repository, commit_hash: str, exc: ObjectNotFoundError) -> None:
    """Raise PrunedCommitError (from `exc`) when reading a pruned commit failed."""
    err = collected_error(repo, commit_hash)
    if err is not None:
        raise err from exc

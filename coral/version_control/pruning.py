"""Pruned commits: history keeps them, `gc` may take their weights.

Pruning marks a commit whose weights `gc` may delete (training retention prunes the checkpoints
it no longer keeps; anything may prune). The commit stays in the history — `log` shows it, its
parents stay connected, the commit object is never deleted while something reaches it — and
until `gc` runs it reads as before, by its hash, and `unprune` brings it back. `gc` then deletes
its tree and the tensors only it needed, unless a branch, a tag or HEAD names the commit itself
(being reachable through a descendant or the reflog is not enough: the reflog keeps commit
objects, not weights). Tensors another live commit, the staging area or a delta chain still
needs are kept by the usual reachability.

After `gc`, every read of its weights (`get_all_weights`, `get_tree`, `read_tree` of its tree,
`checkout`) raises `PrunedCommitError` — "pruned", with a hint — instead of a missing-object
error, and `fsck` reports it as expected, not as damage. `status()` says which of the two states
a commit is in.

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
    from coral.version_control.repo_protocol import StoredHistory

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


def weights_collected(repo: StoredHistory, commit_hash: str) -> bool:
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


PRUNED = "pruned"  # marked: gc may delete its weights; they are still there
COLLECTED = "collected"  # marked, and gc deleted (some of) its weights


def status(repo: StoredHistory, commit_hash: str) -> str | None:
    """None for a commit that is not pruned, else PRUNED or COLLECTED."""
    if reason(repo.database, commit_hash) is None:
        return None
    try:
        return COLLECTED if weights_collected(repo, commit_hash) else PRUNED
    except ObjectNotFoundError:  # the commit object itself is gone
        return COLLECTED


def collected_error(repo: StoredHistory, commit_hash: str) -> PrunedCommitError | None:
    """The error to raise when reading `commit_hash` failed, if it is a pruned commit."""
    why = reason(repo.database, commit_hash)
    if why is None:
        return None
    return PrunedCommitError(
        f"commit {commit_hash[:10]} was pruned ({why}) and garbage-collected: its weights "
        "are gone (the commit stays in the history)",
        hint="a clone or backup made before that gc still has them; `coral checkpoints` lists "
        "the checkpoints that were kept. To keep a pruned commit, unprune it "
        "(Repository.unprune_commits, CheckpointManager.unprune) or tag it before `coral gc`",
    )


def check_readable(repo: StoredHistory, commit_hash: str) -> None:
    """Raise PrunedCommitError when gc deleted the weights of pruned `commit_hash`."""
    if status(repo, commit_hash) == COLLECTED:
        err = collected_error(repo, commit_hash)
        if err is not None:
            raise err


def raise_if_tree_collected(repo: StoredHistory, tree_id: str, exc: ObjectNotFoundError) -> None:
    """Raise PrunedCommitError (from `exc`) when the missing tree `tree_id` is the tree of a
    pruned commit gc collected (reading a tree by its id, as `coral show` does)."""
    for commit_hash in sorted(pruned(repo.database)):
        try:
            tree_of = repo.read_commit(commit_hash).tree_id
        except (ObjectNotFoundError, CorruptObjectError):
            continue
        if tree_of == tree_id:
            raise_if_collected(repo, commit_hash, exc)


def raise_if_collected(repo: StoredHistory, commit_hash: str, exc: ObjectNotFoundError) -> None:
    """Raise PrunedCommitError (from `exc`) when reading a pruned commit failed."""
    err = collected_error(repo, commit_hash)
    if err is not None:
        raise err from exc

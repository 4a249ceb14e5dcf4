"""Committing a whole snapshot onto a branch, leaving the staging area and HEAD alone.

A training checkpoint is a complete state: its tree is exactly the snapshot's tensors (not HEAD's
tree plus changes), and it goes onto the run's branch whether or not HEAD is on it, so a user
can keep staging and committing by hand while a run checkpoints in the background. The branch
moves by compare-and-swap; when another writer moved it first, the commit is re-parented onto
the new tip and tried again (a checkpoint's content does not depend on its parent).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from coral.core.weight_tensor import WeightTensor, as_weight_tensor
from coral.errors import ConcurrentUpdateError, CoralError, NothingToCommitError
from coral.training.state import TRAINING_KEY
from coral.version_control.objects import COMMIT, TREE, Commit, Tree, TreeEntry
from coral.version_control.refnames import check_name

_CAS_RETRIES = 20


def branch_for(repo: Any, branch: str | None) -> str:
    """The branch checkpoints go to: `branch`, else the one HEAD is on."""
    if branch is not None:
        check_name(branch, "branch")
        return branch
    head = repo.refs.head()
    if head.branch is None:
        raise CoralError(
            "HEAD is detached: there is no branch to put checkpoints on",
            hint="pass branch=NAME, or check out a branch first",
        )
    return str(head.branch)


def commit_weights(
    repo: Any,
    weights: Mapping[str, Any],
    message: str,
    *,
    branch: str,
    author: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    if_changed: bool = False,
) -> str:
    """Store `weights` and commit exactly them as the new tip of `branch`; returns the hash.

    A branch that does not exist yet starts from HEAD's commit (or as a root commit in an empty
    repository). Tensors are delta-encoded against the same-named tensors of the branch tip.
    With `if_changed`, weights identical to the tip's raise NothingToCommitError instead.
    """
    tensors: list[WeightTensor] = []
    for name, value in weights.items():
        w = as_weight_tensor(value, name)
        if w.is_loaded:
            w.compute_hash(force=True)
        tensors.append(w)
    with repo.write_lock():
        tip = repo.refs.branch_tip(branch)
        start = tip if tip is not None else repo.refs.head().commit
        base = repo.read_tree(repo.read_commit(start).tree_id) if start else Tree()
        references = []
        for w in tensors:
            entry = base.entries.get(w.name)
            same = (
                entry is not None
                and entry.shape == w.shape
                and entry.dtype == w.metadata.dtype_name
            )
            references.append(entry.tensor_id if same and entry is not None else None)
        ids = repo.store.store_many(list(zip(tensors, references, strict=True)))
        tree = Tree(
            {
                w.name: TreeEntry.from_metadata(w.metadata, tid)
                for w, tid in zip(tensors, ids, strict=True)
            }
        )
        if if_changed and start is not None and tree.encode() == base.encode():
            raise NothingToCommitError(f"the weights are those of {branch!r} already")
        tree_id = repo.store.put_blob(TREE, tree.encode())
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        expected = tip
        parent = start
        for _ in range(_CAS_RETRIES):
            commit = Commit(
                tree_id=tree_id,
                parent_hashes=[parent] if parent else [],
                author=author or repo.default_author(),
                timestamp=time.time(),
                message=message,
                metadata=dict(metadata or {}),
            )
            commit.commit_hash = repo.store.put_blob(COMMIT, commit.encode())
            try:
                with repo.database.transaction() as tx:
                    repo.refs.update_branch(
                        tx,
                        branch,
                        commit.commit_hash,
                        expected,
                        f"commit (checkpoint): {first_line}",
                    )
            except ConcurrentUpdateError:
                expected = repo.refs.branch_tip(branch)
                parent = expected
                continue
            return str(commit.commit_hash)
    raise ConcurrentUpdateError(f"branch {branch!r} kept moving; the checkpoint was not committed")


def commit_snapshot(
    repo: Any,
    snapshot: Any,
    message: str,
    *,
    author: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    branch: str | None = None,
) -> str:
    """Commit a `Snapshot` (weights plus training record) onto `branch` (default: HEAD's)."""
    meta = dict(metadata or {})
    meta[TRAINING_KEY] = snapshot.record
    if snapshot.record.get("metrics"):
        meta.setdefault("metrics", dict(snapshot.record["metrics"]))
    return commit_weights(
        repo,
        snapshot.to_weights(),
        message,
        branch=branch_for(repo, branch),
        author=author,
        metadata=meta,
    )


def read_checkpoint(
    repo: Any,
    ref: str = "HEAD",
    lazy: bool = False,
) -> tuple[dict[str, WeightTensor], dict[str, Any] | None, str]:
    """(weights, training record or None, commit hash) of the commit `ref` names."""
    commit_hash = repo.resolve_ref(ref)
    commit = repo.read_commit(commit_hash)
    weights = repo.get_all_weights(commit_hash, lazy=lazy)
    record = commit.metadata.get(TRAINING_KEY)
    return weights, dict(record) if isinstance(record, Mapping) else None, commit_hash

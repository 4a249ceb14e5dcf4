"""Committing a whole snapshot onto a branch, leaving the staging area and HEAD alone.

A training checkpoint is a complete state: its tree is exactly the snapshot's tensors (not HEAD's
tree plus changes), and it goes onto the run's branch whether or not HEAD is on it, so a user
can keep staging and committing by hand while a run checkpoints in the background. The branch
moves by compare-and-swap; when another writer moved it first, the commit is re-parented onto
the new tip and tried again (a checkpoint's content does not depend on its parent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError
from coral.training.state import TRAINING_KEY
from coral.version_control.refnames import check_name

_CAS_RETRIES = 20

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


def branch_for(repo: Repository, branch: str | None) -> str:
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
    repo: Repository,
    weights: Mapping[str, Any],
    message: str,
    *,
    branch: str,
    author: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    if_changed: bool = False,
    files: Mapping[str, Any] | None = None,
) -> str:
    """Store `weights` and commit exactly them as the new tip of `branch`; returns the hash.

    Goes through the repository's one commit pipeline (`CommitWriter.commit_onto`): references
    and fingerprints as for `coral add`, the tip's model files carried over (`files` adds or
    replaces some). With `if_changed`, weights identical to the tip's raise NothingToCommitError.
    """
    return str(
        repo.writer.commit_onto(
            branch,
            weights,
            message,
            files=files,
            author=author,
            metadata=metadata,
            if_changed=if_changed,
        )
    )


def commit_snapshot(
    repo: Repository,
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
    repo: Repository,
    ref: str = "HEAD",
    lazy: bool = False,
) -> tuple[dict[str, WeightTensor], dict[str, Any] | None, str]:
    """(weights, training record or None, commit hash) of the commit `ref` names."""
    commit_hash = repo.resolve_ref(ref)
    commit = repo.read_commit(commit_hash)
    weights = repo.get_all_weights(commit_hash, lazy=lazy)
    record = commit.metadata.get(TRAINING_KEY)
    return weights, dict(record) if isinstance(record, Mapping) else None, commit_hash

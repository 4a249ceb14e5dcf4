"""`coral rollback REF`: a new commit on the current branch whose model is REF's.

History is kept: the rollback commit's parent is HEAD, its tree (tensors and model files) is
REF's, its metadata records `rollback_of` (REF's commit) and carries REF's metrics — the model
is the same, so they still describe it. `dry_run` only reports the change (HEAD to REF).

>>> r = rollback(repo, "v1")
>>> repo.get_commit().metadata["rollback_of"] == repo.resolve_ref("v1")
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.preview import preview_checkout
from coral.version_control import pruning
from coral.version_control.diff import DiffResult
from coral.version_control.errors import DirtyStagingError
from coral.version_control.repository import Repository


@dataclass
class RollbackResult:
    """The rollback commit (None with dry_run), where it went, and what it changes."""

    ref: str
    target: str  # the commit whose model the rollback restores
    head: str  # HEAD's commit before: the rollback commit's parent
    branch: str | None  # None: HEAD is detached
    message: str
    diff: DiffResult
    files: dict[str, str] = field(default_factory=dict)
    commit: str | None = None
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "target": self.target,
            "head": self.head,
            "branch": self.branch,
            "message": self.message,
            "commit": self.commit,
            "dry_run": self.dry_run,
            "diff": self.diff.to_dict(),
            "files": dict(self.files),
        }


def default_message(target: str, ref: str) -> str:
    return f"Rollback to {target[:10]} ({ref})"


def rollback(
    repo: Repository,
    ref: str,
    *,
    message: str | None = None,
    author: str | None = None,
    dry_run: bool = False,
    include_training_state: bool = False,
) -> RollbackResult:
    """Commit REF's model onto HEAD (its branch, or HEAD itself when detached).

    Refuses with nothing staged only (DirtyStagingError otherwise: the staged changes would be
    left out of the rollback), with no commits yet, and when HEAD's model is REF's already.
    The reported change leaves training state out unless `include_training_state`; the
    commit restores all of it."""
    head = repo.head()
    if head.commit is None:
        raise CoralError(
            "nothing to roll back: no commits yet", hint="commit a model first with `coral commit`"
        )
    target = repo.resolve_ref(ref)
    pruning.check_readable(repo, target)  # gc took its weights: PrunedCommitError
    if not repo.staging.drop_if_unchanged(repo.get_tree(head.commit)):
        raise DirtyStagingError(
            "cannot roll back while changes are staged",
            hint="commit them, put them aside with `coral stash`, or drop them with `coral reset`",
        )
    tree = repo.get_tree(target)
    if tree.encode() == repo.get_tree(head.commit).encode():
        raise NothingToCommitError(
            f"nothing to roll back: the model of HEAD is that of {ref} already",
            hint="pick an older commit: `coral log` lists them",
        )
    preview = preview_checkout(repo, target, include_training_state=include_training_state)
    text = message if message and message.strip() else default_message(target, ref)
    result = RollbackResult(
        ref, target, head.commit, head.branch, text, preview.diff, preview.files, dry_run=dry_run
    )
    result.diff.from_ref, result.diff.to_ref = "HEAD", ref
    if dry_run:
        return result
    metadata: dict[str, Any] = {
        "rollback_of": target,
        "rollback": {"ref": ref, "from": head.commit},
    }
    metrics = repo.read_commit(target).metrics
    if metrics:
        metadata["metrics"] = metrics
    with repo.write_lock():
        commit = repo.writer.write_commit(tree, [head.commit], text, author, metadata)
        with repo.database.transaction() as tx:
            short = target[:10]
            repo.refs.update_head(tx, commit.commit_hash, head, f"rollback: to {short} ({ref})")
    result.commit = commit.commit_hash
    return result

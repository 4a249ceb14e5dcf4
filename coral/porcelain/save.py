"""`coral save`: stage checkpoint files and commit them, in one step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.add import AddResult, Advance, LoadedCheckpoint, add_paths, load_paths
from coral.version_control.repository import Repository


@dataclass
class SaveResult:
    commit_hash: str
    message: str
    added: AddResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_hash": self.commit_hash,
            "message": self.message,
            "tensors": self.added.tensors,
            "files": self.added.files,
            **self.added.counts,
        }


def save_paths(
    repo: Repository,
    paths: Sequence[Path],
    message: str,
    *,
    author: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    prefix: str = "",
    replace: bool = False,
    progress: Advance | None = None,
    loaded: list[LoadedCheckpoint] | None = None,
) -> SaveResult:
    """Stage `paths` (as `coral add` does) and commit everything staged with `message`.
    NothingToCommitError when that changes nothing."""
    checkpoints = loaded if loaded is not None else load_paths(paths, prefix)
    if not any(c.weights for c in checkpoints):
        raise CoralError(
            f"no tensors found in {', '.join(map(str, paths))}",
            hint="check that the checkpoint holds tensors (a state_dict)",
        )
    added = add_paths(
        repo, paths, prefix=prefix, replace=replace, progress=progress, loaded=checkpoints
    )
    try:
        commit_hash = repo.commit(message, author=author, metadata=metadata, allow_empty=False)
    except NothingToCommitError:
        where = repo.current_branch or "detached HEAD"
        raise NothingToCommitError(
            f"{', '.join(map(str, paths))}: the same tensors as {where}, nothing to commit",
            hint="HEAD already holds them (`coral show HEAD` lists them)",
        ) from None
    return SaveResult(commit_hash, message, added)

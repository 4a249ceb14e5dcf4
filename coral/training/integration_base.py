"""What every framework integration does at repository level: commit a snapshot of the model
(and training state), and load a commit back into it.

A framework's integration subclasses `SnapshotIntegration` and provides `snapshot()` (the
model and optimizer state as a `Snapshot`) and `restore()` (weights and record back into the
live objects); `save` and `load` are the same for every framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coral.training.commit import commit_snapshot, read_checkpoint
from coral.training.snapshot import Snapshot
from coral.training.state import TrainingState

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


class SnapshotIntegration(ABC):
    """`save` / `load` over a framework's `snapshot` and `restore`."""

    @abstractmethod
    def snapshot(
        self,
        state: TrainingState | None = None,
        save_optimizer: bool = True,
        save_rng: bool = True,
    ) -> Snapshot:
        """Copy the model (and optimizer state, RNG) out of the live run."""

    @abstractmethod
    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Put a checkpoint's weights (and training state) back into the live objects."""

    def save(
        self,
        repo: Repository,
        message: str | None = None,
        state: TrainingState | None = None,
        save_optimizer: bool = True,
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        branch: str | None = None,
    ) -> str:
        """Commit the model (and training state) synchronously; returns the commit hash."""
        snap = self.snapshot(state, save_optimizer=save_optimizer)
        msg = message or f"checkpoint step {snap.record['step']}"
        return commit_snapshot(repo, snap, msg, author=author, metadata=metadata, branch=branch)

    def load(
        self,
        repo: Repository,
        ref: str = "HEAD",
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Load commit `ref` into the model (and optimizer state, RNG); its TrainingState."""
        weights, record, commit_hash = read_checkpoint(repo, ref)
        state = self.restore(
            weights,
            record,
            strict=strict,
            restore_optimizer=restore_optimizer,
            restore_rng=restore_rng,
        )
        state.commit = commit_hash
        return state

"""Checkpoints while training: `CheckpointManager`, `CheckpointConfig`, `TrainingState`.

The names below are imported on first use: the CLI reads the light `training.watch` settings
at start-up without importing numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_exports

if TYPE_CHECKING:
    from coral.training.async_writer import BackgroundCommitError
    from coral.training.checkpoint_index import CheckpointInfo
    from coral.training.config import CheckpointConfig
    from coral.training.manager import CheckpointManager, NoCheckpointError
    from coral.training.snapshot import Snapshot
    from coral.training.state import TrainingState

_MODULES = {
    "BackgroundCommitError": "async_writer",
    "CheckpointInfo": "checkpoint_index",
    "CheckpointConfig": "config",
    "CheckpointManager": "manager",
    "NoCheckpointError": "manager",
    "Snapshot": "snapshot",
    "TrainingState": "state",
}
__all__ = [
    "BackgroundCommitError",
    "CheckpointConfig",
    "CheckpointInfo",
    "CheckpointManager",
    "NoCheckpointError",
    "Snapshot",
    "TrainingState",
]
__getattr__ = lazy_exports(__name__, _MODULES)

"""Checkpoints while training: `CheckpointManager`, `CheckpointConfig`, `TrainingState`."""

from coral.training.async_writer import BackgroundCommitError
from coral.training.checkpoint_index import CheckpointInfo
from coral.training.config import CheckpointConfig
from coral.training.manager import CheckpointManager, NoCheckpointError
from coral.training.snapshot import Snapshot
from coral.training.state import TrainingState

__all__ = [
    "BackgroundCommitError",
    "CheckpointConfig",
    "CheckpointInfo",
    "CheckpointManager",
    "NoCheckpointError",
    "Snapshot",
    "TrainingState",
]

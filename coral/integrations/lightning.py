"""PyTorch Lightning: `CoralCheckpoint`, a callback that commits checkpoints to Coral.

>>> ckpt = CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1, keep_last_n=3))
>>> trainer = Trainer(callbacks=[ckpt], enable_checkpointing=False)
>>> trainer.fit(model, ckpt_path=ckpt.resume_path())   # None on a fresh run

Each checkpoint is the complete dictionary Lightning itself would write (`trainer.save_checkpoint`):
model weights under their own names, optimizer and scheduler state under `__optim__/` and
`__sched__/`, loop progress, callback and precision states and hyper-parameters in the commit's
training record, plus the RNG states Lightning does not keep. `resume_path()` names a commit as
`coral:<hash>`; the callback installs a CheckpointIO that reads such paths, so Lightning's own
restore logic (loops, optimizers, schedulers, callbacks) runs on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.pytorch.callbacks import Callback

from coral.integrations.pytorch import build_snapshot, load_into_model, unpack_checkpoint
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for, read_checkpoint
from coral.training.config import CheckpointConfig
from coral.training.manager import CheckpointManager
from coral.training.snapshot import Snapshot
from coral.training.state import TrainingState, restore_rng_state

PATH_PREFIX = "coral:"
RNG_KEY = "coral_rng_states"
HOOK_KEY = "coral_captured_at"  # the callback hook a checkpoint was taken in
_MAIN_KEYS = ("state_dict", "optimizer_states", "lr_schedulers")

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


def checkpoint_to_snapshot(checkpoint: Mapping[str, Any], state: TrainingState) -> Snapshot:
    """A Lightning checkpoint dict as a Coral snapshot (weights + training record)."""
    rest = {k: v for k, v in checkpoint.items() if k not in _MAIN_KEYS}
    return build_snapshot(
        checkpoint["state_dict"],
        state,
        framework="lightning",
        optimizer_states=checkpoint.get("optimizer_states") or (),
        scheduler_states=checkpoint.get("lr_schedulers") or (),
        sections={"lightning": rest},
        strict=False,  # hyper-parameters may hold objects JSON cannot: kept as a marker
    )


def snapshot_to_checkpoint(
    weights: Mapping[str, Any], record: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The Lightning checkpoint dict a Coral checkpoint commit holds (inverse of the above)."""
    from coral.integrations.torch_convert import numpy_to_torch

    parts = unpack_checkpoint(weights, record)
    checkpoint: dict[str, Any] = dict(parts.sections.get("lightning") or {})
    checkpoint["state_dict"] = {
        n: (numpy_to_torch(v.data) if hasattr(v, "compute_hash") else v)
        for n, v in parts.model_state.items()
    }
    for alias, stored in parts.aliases.items():  # keep ties as ties
        if stored in checkpoint["state_dict"]:
            checkpoint["state_dict"][alias] = checkpoint["state_dict"][stored]
    # always present, empty without a scheduler: Lightning refuses a checkpoint that lacks
    # either key as "weights only"
    checkpoint["optimizer_states"] = list(parts.optimizer_states or ())
    checkpoint["lr_schedulers"] = list(parts.scheduler_states or ())
    checkpoint.setdefault("epoch", parts.state.epoch or 0)
    checkpoint.setdefault("global_step", parts.state.step)
    if parts.state.rng:
        checkpoint[RNG_KEY] = parts.state.rng
    return checkpoint


class LightningIntegration:
    """Snapshots of a running Trainer (what `trainer.save_checkpoint` would write)."""

    framework = "lightning"

    def __init__(self, trainer: pl.Trainer) -> None:
        self.trainer = trainer
        self.hook: str | None = None  # set by CoralCheckpoint before it asks for a snapshot

    def snapshot(
        self, state: TrainingState | None = None, save_optimizer: bool = True, save_rng: bool = True
    ) -> Snapshot:
        state = state or TrainingState.capture(rng=save_rng)
        if not save_rng:
            state.rng = None
        checkpoint = self.trainer._checkpoint_connector.dump_checkpoint(
            weights_only=not save_optimizer
        )
        if self.hook:
            checkpoint[HOOK_KEY] = self.hook
        return checkpoint_to_snapshot(checkpoint, state)

    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Weights (and RNG) only: a full resume goes through `trainer.fit(ckpt_path=...)`."""
        parts = unpack_checkpoint(weights, record)
        load_into_model(
            self.trainer.lightning_module, parts.model_state, strict=strict, aliases=parts.aliases
        )
        if restore_rng:
            parts.state.restore_rng()
        return parts.state


class CoralCheckpointIO(CheckpointIO):
    """Reads `coral:<ref>` checkpoint paths from a repository; other paths go to `inner`."""

    def __init__(self, repo: Repository, inner: CheckpointIO | None = None) -> None:
        self.repo = repo
        self.inner = inner

    @staticmethod
    def is_coral_path(path: Any) -> bool:
        return isinstance(path, str) and path.startswith(PATH_PREFIX)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if self.inner is None:
            raise ValueError("CoralCheckpointIO writes through CoralCheckpoint, not to file paths")
        self.inner.save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if self.is_coral_path(path):
            weights, record, _ = read_checkpoint(self.repo, path[len(PATH_PREFIX) :])
            return snapshot_to_checkpoint(weights, record)
        if self.inner is None:
            raise FileNotFoundError(f"not a coral: checkpoint path: {path}")
        if map_location is None:
            return self.inner.load_checkpoint(path, weights_only=weights_only)
        return self.inner.load_checkpoint(
            path, map_location=map_location, weights_only=weights_only
        )

    def remove_checkpoint(self, path: Any) -> None:
        if self.inner is not None and not self.is_coral_path(path):
            self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        if self.inner is not None:
            self.inner.teardown()


def _metrics(trainer: pl.Trainer) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in trainer.callback_metrics.items():
        try:
            out[k] = float(v.item() if hasattr(v, "item") else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


def run_config(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """What a checkpoint records as the run's config: the module's hyper-parameters
    (`save_hyperparameters`) and the trainer's main settings."""
    settings = ("max_epochs", "max_steps", "accumulate_grad_batches", "precision")
    return {
        "hparams": dict(getattr(pl_module, "hparams", None) or {}),
        "trainer": {k: getattr(trainer, k, None) for k in settings},
    }


class CoralCheckpoint(Callback):
    """Commits Lightning checkpoints to a Coral branch by the rules of a `CheckpointConfig`.

    Steps are `trainer.global_step` (optimizer steps); epochs `trainer.current_epoch`.
    `on_improvement` metrics are read from `trainer.callback_metrics` after validation.
    """

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        config: CheckpointConfig | None = None,
        branch: str | None = None,
    ) -> None:
        from coral.training.manager import _open_repo

        self.repo = _open_repo(repo)
        self.config = config or CheckpointConfig(every_n_epochs=1)
        self.branch = branch
        self.manager: CheckpointManager | None = None
        self._integration: LightningIntegration | None = None
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return f"CoralCheckpoint[{self.branch or ''}]"

    # -- wiring -----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        strategy = trainer.strategy
        if not isinstance(strategy.checkpoint_io, CoralCheckpointIO):
            strategy.checkpoint_io = CoralCheckpointIO(self.repo, strategy.checkpoint_io)
        if self.manager is None:
            self._integration = LightningIntegration(trainer)
            self.manager = CheckpointManager(
                self.repo,
                config=self.config,
                branch=self.branch,
                integration=self._integration,
                run_config=run_config(trainer, pl_module),
            )

    def _at(self, hook: str) -> CheckpointManager | None:
        if self._integration is not None:
            self._integration.hook = hook
        return self.manager

    def _restore_pending_rng(self) -> None:
        if self._pending_rng is not None:
            rng, self._pending_rng = self._pending_rng, None
            restore_rng_state(rng)

    def resume_path(self, ref: str | None = None) -> str | None:
        """`coral:<commit>` of `ref` (default: the branch's newest checkpoint); None if none."""
        if ref is not None:
            return PATH_PREFIX + self.repo.resolve_ref(ref)
        infos = self.list_checkpoints()
        return PATH_PREFIX + infos[-1].commit if infos else None

    # -- saving -----------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._restore_pending_rng()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_pending_rng()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        manager = self._at("train_batch_end")
        if manager is not None and self.config.every_n_steps:
            manager.step(trainer.global_step, trainer.current_epoch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        manager = self._at("validation_end")
        if manager is not None and not trainer.sanity_checking and self.config.on_improvement:
            manager.report(_metrics(trainer), step=trainer.global_step, epoch=trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_pending_rng()
        manager = self._at("train_epoch_end")
        if manager is not None and self.config.every_n_epochs:
            manager.epoch_end(trainer.current_epoch, trainer.global_step, _metrics(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.manager is not None:
            self.manager.wait()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.close()

    # -- restoring --------------------------------------------------------------------------
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Put back the RNG states where the uninterrupted run had them.

        A checkpoint taken at an epoch's end resumes at the next epoch's start: restore now. One
        taken mid-epoch or after validation resumes with Lightning finishing that epoch first
        (re-creating its data iterator, which draws random numbers the original run drew before
        the checkpoint): restore at the next batch, validation or epoch end instead.
        """
        rng = checkpoint.pop(RNG_KEY, None)
        hook = checkpoint.pop(HOOK_KEY, None)
        if not rng:
            return
        if hook in (None, "train_epoch_end"):
            restore_rng_state(rng)
        else:
            self._pending_rng = rng

    def list_checkpoints(self) -> list[CheckpointInfo]:
        """The branch's (not pruned) checkpoints, oldest first."""
        if self.manager is not None:
            return self.manager.list_checkpoints()
        return CheckpointIndex(self.repo).list(branch_for(self.repo, self.branch))

"""Hugging Face `Trainer`: `CoralTrainerCallback` commits checkpoints to Coral while it trains.

>>> cb = CoralTrainerCallback(repo, CheckpointConfig(every_n_steps=50, keep_last_n=3))
>>> trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])
>>> trainer.train()
>>> # later, or in a new process: resume exactly where the newest checkpoint left off
>>> trainer.train(resume_from_checkpoint=cb.resume_folder())

Each commit holds the model (tied weights once), the optimizer and scheduler state, the RNG
states and Hugging Face's `TrainerState` (global step, log history, best metric). With a config
that sets no step/epoch rule, the callback commits whenever the Trainer itself saves (`on_save`).
`resume_folder()` writes the newest checkpoint (or any commit) out as the checkpoint folder
`Trainer.train(resume_from_checkpoint=...)` reads, so Hugging Face's own resume logic — data
skipping, RNG, optimizer and scheduler loading — runs unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import TrainerCallback

from coral.integrations.pytorch import PyTorchIntegration, build_snapshot, unpack_checkpoint
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for, read_checkpoint
from coral.training.config import CheckpointConfig
from coral.training.manager import CheckpointManager, NoCheckpointError, _open_repo
from coral.training.snapshot import Snapshot
from coral.training.state import TrainingState

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

SECTION = "hf_trainer_state"


class HFTrainerIntegration(PyTorchIntegration):
    """PyTorchIntegration plus the Trainer's `TrainerState` in each checkpoint."""

    framework = "hf_trainer"

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, trainer_state: Any) -> None:
        super().__init__(model, optimizer, scheduler)
        self.trainer_state = trainer_state

    def snapshot(
        self, state: TrainingState | None = None, save_optimizer: bool = True, save_rng: bool = True
    ) -> Snapshot:
        state = state or TrainingState.capture(rng=save_rng)
        if not save_rng:
            state.rng = None
        sections = (
            {SECTION: _trainer_state_dict(self.trainer_state)}
            if self.trainer_state is not None
            else None
        )
        return build_snapshot(
            self.model.state_dict(),
            state,
            framework=self.framework,
            optimizer_states=[o.state_dict() for o in self.optimizers] if save_optimizer else (),
            scheduler_states=[s.state_dict() for s in self.schedulers] if save_optimizer else (),
            sections=sections,
            layer_types=self._types,
            model_class=f"{type(self.model).__module__}.{type(self.model).__qualname__}",
        )


def _trainer_state_dict(trainer_state: Any) -> dict[str, Any]:
    """A TrainerState as the JSON object Hugging Face writes to trainer_state.json."""
    return json.loads(json.dumps(dataclasses.asdict(trainer_state), sort_keys=True))


def _epoch_index(epoch: float | None) -> int | None:
    """0-based index of the epoch a TrainerState's fractional `epoch` is in (or just finished)."""
    if epoch is None:
        return None
    return max(0, math.ceil(epoch) - 1)


class CoralTrainerCallback(TrainerCallback):
    """Commits the Trainer's model, optimizer, scheduler, RNG and TrainerState to Coral."""

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        config: CheckpointConfig | None = None,
        branch: str | None = None,
        commit_on_save: bool | None = None,
    ) -> None:
        self.repo = _open_repo(repo)
        self.config = config or CheckpointConfig()
        self.branch = branch
        rules = (self.config.every_n_steps, self.config.every_n_epochs, self.config.on_improvement)
        self.commit_on_save = (
            all(r is None for r in rules) if commit_on_save is None else commit_on_save
        )
        self.manager: CheckpointManager | None = None

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.manager is not None:
            self.manager.close()
        integration = HFTrainerIntegration(model, optimizer, lr_scheduler, state)
        to_dict = getattr(args, "to_sanitized_dict", None) or getattr(args, "to_dict", None)
        self.manager = CheckpointManager(
            self.repo,
            config=self.config,
            branch=self.branch,
            integration=integration,
            run_config=to_dict() if callable(to_dict) else None,  # the TrainingArguments
            base_model=getattr(getattr(model, "config", None), "_name_or_path", None) or None,
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.manager is not None and self.config.every_n_steps:
            self.manager.step(state.global_step, _epoch_index(state.epoch))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.manager is not None and self.config.every_n_epochs:
            self.manager.epoch_end(_epoch_index(state.epoch) or 0, state.global_step)

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.manager is not None and metrics and self.config.on_improvement:
            self.manager.report(metrics, step=state.global_step, epoch=_epoch_index(state.epoch))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.manager is not None and self.commit_on_save:
            metrics = {
                k: v
                for k, v in (state.log_history[-1] if state.log_history else {}).items()
                if isinstance(v, (int, float)) and k not in ("step", "epoch")
            }
            self.manager.save(
                state.global_step, _epoch_index(state.epoch), metrics, reason="trainer_save"
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.close()

    # -- reading back -------------------------------------------------------------------------
    def list_checkpoints(self) -> list[CheckpointInfo]:
        """The branch's (not pruned) checkpoints, oldest first."""
        if self.manager is not None:
            return self.manager.list_checkpoints()
        return CheckpointIndex(self.repo).list(branch_for(self.repo, self.branch))

    def resume_folder(
        self, ref: str | None = None, directory: str | Path | None = None
    ) -> str | None:
        """A Trainer checkpoint folder of `ref` (default: the newest checkpoint; None if none)."""
        if ref is None:
            infos = self.list_checkpoints()
            if not infos:
                return None
            ref = infos[-1].commit
        return str(write_trainer_checkpoint(self.repo, ref, directory))


def write_trainer_checkpoint(
    repo: Repository, ref: str, directory: str | Path | None = None
) -> Path:
    """Write commit `ref` as a Hugging Face Trainer checkpoint folder (`checkpoint-<step>`):
    model.safetensors, optimizer.pt, scheduler.pt, rng_state.pth and trainer_state.json."""
    import torch

    from coral.integrations.formats import save_weights

    weights, record, commit = read_checkpoint(repo, ref)
    if record is None:
        raise NoCheckpointError(f"{ref} ({commit[:10]}) is not a training checkpoint")
    parts = unpack_checkpoint(weights, record)
    trainer_state = parts.sections.get(SECTION)
    if trainer_state is None:
        raise NoCheckpointError(
            f"{ref} ({commit[:10]}) holds no Hugging Face TrainerState",
            hint="it was not written by CoralTrainerCallback",
        )
    root = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="coral-hf-"))
    folder = root / f"checkpoint-{parts.state.step}"
    folder.mkdir(parents=True, exist_ok=True)
    model = {n: w for n, w in parts.model_state.items() if n not in parts.aliases}
    save_weights(model, folder / "model.safetensors", metadata={"format": "pt"})
    if parts.optimizer_states:
        torch.save(parts.optimizer_states[0], folder / "optimizer.pt")
    if parts.scheduler_states:
        torch.save(parts.scheduler_states[0], folder / "scheduler.pt")
    rng = parts.state.rng
    if rng:
        py, nps = rng["python"], rng["numpy"]
        states: dict[str, Any] = {
            "python": (
                int(py["version"]),
                tuple(int(x) for x in np.asarray(py["state"])),
                py["gauss"],
            ),
            "numpy": (
                nps["kind"],
                np.asarray(nps["keys"], dtype=np.uint32),
                int(nps["pos"]),
                int(nps["has_gauss"]),
                float(nps["cached_gaussian"]),
            ),
            "cpu": torch.from_numpy(np.array(rng["torch"], dtype=np.uint8)),
        }
        if rng.get("cuda"):
            states["cuda"] = torch.from_numpy(np.array(rng["cuda"][0], dtype=np.uint8))
        torch.save(states, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(
        json.dumps(trainer_state, indent=2, sort_keys=True) + "\n"
    )
    return folder

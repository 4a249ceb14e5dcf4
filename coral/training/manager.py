"""`CheckpointManager`: checkpoints of a training run, committed to a Coral branch.

>>> manager = CheckpointManager(repo, model, optimizer, scheduler,
...                             CheckpointConfig(every_n_steps=100, keep_last_n=3))
>>> state = manager.resume()                 # None on a fresh run
>>> for step in range(state.step + 1 if state else 1, 10_001):
...     loss = train_step()
...     manager.step(step, metrics={"loss": loss})
>>> manager.close()                           # waits for the last commits

The training thread pays only for copying the tensors (CPU clone, or an asynchronous copy into
pinned memory for CUDA); hashing, compression and disk writes run on a background thread. An
error there is raised by the manager's next call. Retention prunes old checkpoints (commits
are never rewritten): they leave `list_checkpoints` and stay loadable by hash until `gc`, which
deletes their weights (`unprune` first to keep one).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from coral.errors import CoralError
from coral.training.async_writer import BackgroundWriter
from coral.training.checkpoint_index import (
    CheckpointIndex,
    CheckpointInfo,
    best_checkpoint,
    collect_pruned,
    select_retained,
)
from coral.training.commit import branch_for, commit_snapshot, read_checkpoint
from coral.training.config import CheckpointConfig
from coral.training.snapshot import Snapshot
from coral.training.state import TrainingState
from coral.version_control.provenance import base_record, config_record, provenance_metadata

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


class StateIntegration(Protocol):
    """What the manager needs from a framework: copy a run's state out, and put it back."""

    framework: str

    def snapshot(
        self, state: TrainingState | None = None, save_optimizer: bool = True, save_rng: bool = True
    ) -> Snapshot: ...

    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState: ...


class NoCheckpointError(CoralError):
    default_hint = "save one first (CheckpointManager.save), or name a commit to load"


def integration_for(model: Any, optimizer: Any = None, scheduler: Any = None) -> StateIntegration:
    """The framework integration for `model` (PyTorch module or Keras model), or `model` itself
    when it already is one."""
    if model is None:
        raise CoralError("CheckpointManager needs a model (or an integration)")
    if hasattr(model, "snapshot") and hasattr(model, "restore"):
        return model
    if "keras" in sys.modules:
        import keras

        if isinstance(model, keras.Model):
            from coral.training.keras_state import KerasIntegration

            return KerasIntegration(model, optimizer)
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            from coral.training.torch_state import PyTorchIntegration

            return PyTorchIntegration(model, optimizer, scheduler)
    raise CoralError(
        f"no Coral integration for {type(model).__qualname__}",
        hint="pass a torch.nn.Module, a keras.Model, or an object with snapshot()/restore()",
    )


def _open_repo(repo: Repository | str | os.PathLike[str]) -> Repository:
    if isinstance(repo, (str, os.PathLike)):
        from coral.version_control.repository import Repository

        return Repository.init(repo, exist_ok=True)
    return repo


class _Formatter(dict):  # str.format_map that leaves unknown fields visible
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class CheckpointManager:
    """Saves, prunes, lists and restores the checkpoints of one run on one branch.

    Each checkpoint records its provenance (`coral provenance`): `run_config` (the run's
    hyper-parameters, hashed and kept), `base_model` (the model fine-tuned, e.g. a Hub id) and
    the commit the run started from or was last loaded from."""

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        model: Any = None,
        optimizer: Any = None,
        scheduler: Any = None,
        config: CheckpointConfig | None = None,
        branch: str | None = None,
        *,
        integration: StateIntegration | None = None,
        run_config: Mapping[str, Any] | None = None,
        base_model: str | None = None,
    ) -> None:
        self.repo = _open_repo(repo)
        self.config = config or CheckpointConfig()
        self.integration = integration or integration_for(model, optimizer, scheduler)
        self.branch = branch_for(self.repo, branch)
        # provenance of every checkpoint: the run's hyper-parameters, the model it fine-tunes
        # (`base_model`, e.g. a Hub id) and the commit it started from (or resumed, see load)
        self._run_config = config_record(run_config) if run_config is not None else None
        self.base_model = base_model
        self.start_commit = self.repo.refs.branch_tip(self.branch) or self.repo.head_commit()
        self.index = CheckpointIndex(self.repo)
        self._lock = threading.RLock()
        self._writer = (
            BackgroundWriter(self.config.max_queue, nice=self.config.background_nice)
            if self.config.async_commit
            else None
        )
        existing = self.index.list(self.branch)
        self.last_commit: str | None = existing[-1].commit if existing else None
        self._last_saved: tuple[int, int | None] | None = (
            (existing[-1].step, existing[-1].epoch) if existing else None
        )
        self._last_step: int = existing[-1].step if existing else 0
        self._best_value: float | None = None
        metric = self.config.on_improvement
        if metric:
            best = best_checkpoint(existing, metric, self.config.mode)
            if best is not None:
                self._best_value = float(best.metrics[metric])
        self.saves = 0
        self._closed = False

    # -- deciding ---------------------------------------------------------------------------
    def _improved(self, metrics: Mapping[str, Any] | None) -> bool:
        metric = self.config.on_improvement
        if not metric or not metrics or metric not in metrics:
            return False
        value = metrics[metric]
        value = float(value.item() if hasattr(value, "item") else value)
        if value != value:  # NaN never improves
            return False
        if self.config.is_better(value, self._best_value):
            self._best_value = value
            return True
        return False

    def _already_saved(self, step: int, epoch: int | None) -> bool:
        """Whether the newest checkpoint was taken at this (step, epoch): nothing changed since."""
        return self._last_saved == (int(step), None if epoch is None else int(epoch))

    def step(
        self, step: int, epoch: int | None = None, metrics: Mapping[str, Any] | None = None
    ) -> bool:
        """Call after every optimizer step; saves when a rule fires. True when it saved."""
        self.check()
        step = int(step)
        self._last_step = step
        n = self.config.every_n_steps
        reason = "step" if n and step % n == 0 else None
        if self._improved(metrics):
            reason = "improved"
        if reason is None or self._already_saved(step, epoch):
            return False
        self.save(step, epoch, metrics, reason=reason)
        return True

    def epoch_end(
        self, epoch: int, step: int | None = None, metrics: Mapping[str, Any] | None = None
    ) -> bool:
        """Call at the end of each epoch (0-based); saves when a rule fires. True when it saved."""
        self.check()
        if step is not None:
            self._last_step = int(step)
        n = self.config.every_n_epochs
        reason = "epoch" if n and (int(epoch) + 1) % n == 0 else None
        if self._improved(metrics):
            reason = "improved"
        if reason is None or self._already_saved(self._last_step, epoch):
            return False
        self.save(self._last_step, epoch, metrics, reason=reason)
        return True

    def report(
        self, metrics: Mapping[str, Any], step: int | None = None, epoch: int | None = None
    ) -> bool:
        """Hand over evaluation metrics; saves when `on_improvement`'s metric improved."""
        self.check()
        if step is not None:
            self._last_step = int(step)
        if not self._improved(metrics) or self._already_saved(self._last_step, epoch):
            return False
        self.save(self._last_step, epoch, metrics, reason="improved")
        return True

    # -- saving -----------------------------------------------------------------------------
    def save(
        self,
        step: int | None = None,
        epoch: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        *,
        reason: str = "manual",
        extra: Mapping[str, Any] | None = None,
        wait: bool = False,
    ) -> str | None:
        """Checkpoint now. Returns the commit hash when committed synchronously (`async_commit`
        off, or `wait=True`); None when queued (see `wait()` and `last_commit`)."""
        self.check()
        if self._closed:
            raise CoralError("this CheckpointManager is closed", hint="create a new one")
        step = self._last_step if step is None else int(step)
        self._last_step = step
        state = TrainingState.capture(
            step, epoch, dict(metrics or {}), dict(extra or {}), rng=self.config.save_rng
        )
        snap = self.integration.snapshot(
            state, save_optimizer=self.config.save_optimizer, save_rng=self.config.save_rng
        )
        info = CheckpointInfo(
            commit="",
            branch=self.branch,
            step=step,
            epoch=state.epoch,
            metrics=dict(state.metrics),
            reason=reason,
        )
        text = message or self._message(info)
        self._last_saved = (step, state.epoch)
        self.saves += 1
        if self._writer is not None and not wait:

            def job() -> None:
                self._commit(snap, text, info)

            self._writer.submit(job, label=f"at step {step}")
            return None
        if self._writer is not None:
            self._writer.wait()  # keep commits in order
        return self._commit(snap, text, info)

    def _message(self, info: CheckpointInfo) -> str:
        fields = _Formatter({k: v for k, v in info.metrics.items() if k.isidentifier()})
        fields.update(
            step=info.step, epoch="" if info.epoch is None else info.epoch, reason=info.reason
        )
        try:
            return self.config.message.format_map(fields)
        except (ValueError, TypeError, IndexError, AttributeError):
            return f"checkpoint step {info.step}"

    def _commit(self, snap: Snapshot, message: str, info: CheckpointInfo) -> str:
        with self._lock:
            commit = commit_snapshot(
                self.repo,
                snap,
                message,
                author=self.config.author,
                metadata=self._provenance(),
                branch=self.branch,
            )
            info.commit = commit
            info.created_at = time.time()
            self.index.record(info)
            self.last_commit = commit
            self._apply_retention()
        return commit

    def _provenance(self) -> dict[str, Any]:
        base = None
        if self.base_model or self.start_commit:
            base = base_record(self.base_model, self.start_commit, source="training")
        return provenance_metadata(base=base, config=self._run_config)

    def _apply_retention(self) -> None:
        if not self.config.has_retention:
            return
        infos = self.index.list(self.branch)
        keep = select_retained(infos, self.config)
        drop = [i.commit for i in infos if i.commit not in keep]
        if drop and self.index.mark_pruned(self.branch, drop):
            collect_pruned(self.repo, self.config)  # gc now, when config.auto_gc

    # -- loading ----------------------------------------------------------------------------
    def latest(self) -> CheckpointInfo | None:
        """The newest (not pruned) checkpoint of this branch."""
        infos = self.list_checkpoints()
        return infos[-1] if infos else None

    def load(
        self,
        ref: str | None = None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Load checkpoint `ref` (default: the newest of this branch) into the live objects."""
        self.wait()
        if ref is None:
            latest = self.latest()
            if latest is None:
                if self.repo.refs.branch_tip(self.branch) is None:
                    raise NoCheckpointError(f"branch {self.branch!r} has no checkpoints")
                ref = self.branch
            else:
                ref = latest.commit
        with self._lock:
            weights, record, commit = read_checkpoint(self.repo, ref)
        if record is None and strict:
            raise NoCheckpointError(
                f"{ref} ({commit[:10]}) is not a training checkpoint (it has no training record)",
                hint="load it with strict=False to restore the weights alone",
            )
        state = self.integration.restore(
            weights,
            record,
            strict=strict,
            restore_optimizer=restore_optimizer,
            restore_rng=restore_rng,
        )
        state.commit = commit
        self.start_commit = commit  # the run resumes from here
        self._last_step = state.step
        self._last_saved = (state.step, state.epoch)
        return state

    def resume(self, restore_rng: bool = True) -> TrainingState | None:
        """Load the newest checkpoint of this branch if there is one; None on a fresh run."""
        self.wait()
        if self.latest() is None:
            tip = self.repo.refs.branch_tip(self.branch)
            if tip is None or not isinstance(
                self.repo.read_commit(tip).metadata.get("training"), Mapping
            ):
                return None
        return self.load(restore_rng=restore_rng)

    # -- listing ----------------------------------------------------------------------------
    def list_checkpoints(self, include_pruned: bool = False) -> list[CheckpointInfo]:
        """This branch's checkpoints, oldest first (committed ones: call `wait()` for all)."""
        self.check()
        with self._lock:
            return self.index.list(self.branch, include_pruned=include_pruned)

    def best(self, metric: str | None = None, mode: str | None = None) -> CheckpointInfo | None:
        """The (not pruned) checkpoint with the best `metric` (default: the config's)."""
        metric = metric or self.config.metric_for_best
        if metric is None:
            raise CoralError("best() needs a metric", hint="pass metric=NAME or set on_improvement")
        return best_checkpoint(self.list_checkpoints(), metric, mode or self.config.mode)

    def unprune(self, commit: str) -> bool:
        """Bring a pruned checkpoint back into `list_checkpoints` (before `gc` deleted its
        weights: after, this raises PrunedCommitError)."""
        with self._lock:
            return self.index.unprune(self.branch, self.repo.resolve_ref(commit))

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Checkpoints queued or committing."""
        return self._writer.pending if self._writer is not None else 0

    def check(self) -> None:
        """Raise the error a background commit left, if any."""
        if self._writer is not None:
            self._writer.check()

    def wait(self) -> None:
        """Block until every queued checkpoint is committed (raises a background error)."""
        if self._writer is not None:
            self._writer.wait()

    def close(self) -> None:
        """Drain the queue and stop the writer thread (raises a background error)."""
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as err:  # the training error wins; keep the commit error visible
            exc.add_note(f"also, a background checkpoint failed: {err}")

"""`coral import-pytorch`: a PyTorch or Lightning checkpoint file as a training checkpoint commit.

The file is read with `torch.load(weights_only=True)` only: a pickle that would run code is
refused. What it may hold:

- a plain state dict (`torch.save(model.state_dict())`);
- a training checkpoint `{"model_state_dict" | "state_dict" | "model": ..., "optimizer": ...,
  "scheduler": ..., "epoch": ..., "step": ...}` (other keys are kept as training extras);
- a Lightning `.ckpt` (`trainer.save_checkpoint`).

The model's weights keep their own names (a LightningModule's `model.` prefix included, as
`CoralCheckpoint` stores them). Optimizer and scheduler state go under `__optim__/` and
`__sched__/` with their JSON skeletons in the training record, exactly as `CheckpointManager`
stores them, so `PyTorchIntegration(model, optimizer).load(repo)` resumes from the import, and
a Lightning one resumes with `trainer.fit(ckpt_path="coral:<hash>")` under `CoralCheckpoint`.
The commit is listed by `coral checkpoints` (reason "import").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.errors import CoralError, InvalidFileError, NothingToCommitError
from coral.integrations.formats.torch_format import load_torch_object
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for, commit_weights
from coral.training.snapshot import Snapshot
from coral.training.state import TRAINING_KEY, TrainingState
from coral.training.torch_state import build_snapshot
from coral.version_control.repository import Repository

MODEL_KEYS = ("state_dict", "model_state_dict", "model", "model_state")
OPTIMIZER_KEYS = ("optimizer_states", "optimizer", "optimizer_state_dict", "optim")
SCHEDULER_KEYS = ("lr_schedulers", "scheduler", "lr_scheduler", "scheduler_state_dict")
STEP_KEYS = ("global_step", "step", "iteration")
HPARAM_KEYS = ("hyper_parameters", "hparams", "config", "args")
# what Lightning's checkpoint keeps apart from its `sections` (see integrations.lightning)
_LIGHTNING_MAIN = ("state_dict", "optimizer_states", "lr_schedulers")


@dataclass
class TorchCheckpoint:
    """A torch checkpoint file taken apart: its snapshot and what goes into commit metadata."""

    path: Path
    kind: str  # "state_dict", "checkpoint" or "lightning"
    snapshot: Snapshot
    tensors: int  # model weights (tied ones once)
    optimizers: int
    schedulers: int
    step: int
    epoch: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    hyper_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def framework(self) -> str:
        return "lightning" if self.kind == "lightning" else "pytorch"

    def import_record(self) -> dict[str, Any]:
        """metadata["import"] of the commit."""
        return {
            "source": str(self.path),
            "format": self.framework,
            "layout": self.kind,
            "optimizers": self.optimizers,
            "schedulers": self.schedulers,
        }


@dataclass
class PyTorchImportResult:
    commit_hash: str
    branch: str
    message: str
    path: str
    kind: str
    tensors: int
    optimizers: int
    schedulers: int
    step: int
    epoch: int | None
    metrics: dict[str, float]
    hyper_parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_torch_checkpoint(path: Path) -> TorchCheckpoint:
    """Load and take apart a torch checkpoint (see the module docstring for the layouts)."""
    import torch

    obj = load_torch_object(path)
    if not isinstance(obj, Mapping) or not obj:
        raise InvalidFileError(
            f"{path}: holds a {type(obj).__name__}, not a state dict or checkpoint dict",
            hint="save the model's state_dict: torch.save(model.state_dict(), PATH)",
        )
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _build(path, "state_dict", dict(obj), TrainingState(), {})
    lightning = "pytorch-lightning_version" in obj or (
        "state_dict" in obj and ("optimizer_states" in obj or "loops" in obj)
    )
    model_key = next((k for k in MODEL_KEYS if isinstance(obj.get(k), Mapping)), None)
    if model_key is None:
        keys = ", ".join(map(repr, list(obj)[:6]))
        raise InvalidFileError(
            f"{path}: no model state dict found (top-level keys: {keys})",
            hint=f"expected a state dict or a dict with one of {', '.join(MODEL_KEYS)}; "
            "`coral import FILE` takes any tensors, flattened",
        )
    hparams: Mapping[str, Any] = next(
        (obj[k] for k in HPARAM_KEYS if isinstance(obj.get(k), Mapping)), {}
    )
    state = TrainingState(
        step=_int(next((obj[k] for k in STEP_KEYS if k in obj), 0)),
        epoch=None if obj.get("epoch") is None else _int(obj["epoch"]),
        metrics=_metrics(obj),
    )
    if lightning:
        rest = {k: v for k, v in obj.items() if k not in _LIGHTNING_MAIN}
        return _build(
            path,
            "lightning",
            obj["state_dict"],
            state,
            hparams,
            optimizers=obj.get("optimizer_states") or [],
            schedulers=obj.get("lr_schedulers") or [],
            sections={"lightning": rest},
        )
    used = {model_key, "epoch", *STEP_KEYS}
    opt_key = next((k for k in OPTIMIZER_KEYS if obj.get(k) is not None), None)
    sched_key = next((k for k in SCHEDULER_KEYS if obj.get(k) is not None), None)
    used.update(k for k in (opt_key, sched_key) if k)
    state.extra = {k: v for k, v in obj.items() if k not in used}
    return _build(
        path,
        "checkpoint",
        obj[model_key],
        state,
        hparams,
        optimizers=_states(obj.get(opt_key) if opt_key else None, path, "optimizer"),
        schedulers=_states(obj.get(sched_key) if sched_key else None, path, "scheduler"),
    )


def _build(
    path: Path,
    kind: str,
    model_state: Mapping[str, Any],
    state: TrainingState,
    hparams: Mapping[str, Any],
    *,
    optimizers: list[Any] | tuple[Any, ...] = (),
    schedulers: list[Any] | tuple[Any, ...] = (),
    sections: Mapping[str, Any] | None = None,
) -> TorchCheckpoint:
    flat = _flatten(model_state)
    snap = build_snapshot(
        flat,
        state,
        framework="lightning" if kind == "lightning" else "pytorch",
        optimizer_states=list(optimizers),
        scheduler_states=list(schedulers),
        sections=sections,
        strict=False,  # hyper-parameters may hold objects JSON cannot: kept as a marker
    )
    tensors = len(snap.tensors) - sum(1 for n in snap.tensors if n.startswith("__"))
    if not tensors:
        raise InvalidFileError(
            f"{path}: the model state dict holds no tensors",
            hint="save the model's state_dict: torch.save(model.state_dict(), PATH)",
        )
    return TorchCheckpoint(
        path,
        kind,
        snap,
        tensors,
        len(optimizers),
        len(schedulers),
        state.step,
        state.epoch,
        dict(state.metrics),
        _plain(hparams),
    )


def import_pytorch(
    repo: Repository,
    path: Path,
    *,
    message: str | None = None,
    author: str | None = None,
    branch: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    checkpoint: TorchCheckpoint | None = None,
) -> PyTorchImportResult:
    """Commit a torch checkpoint file onto `branch` (default: HEAD's) as a training checkpoint:
    its tree is exactly the checkpoint's tensors. The same weights as the tip raise
    NothingToCommitError."""
    ckpt = checkpoint if checkpoint is not None else read_torch_checkpoint(Path(path))
    name = branch_for(repo, branch)
    msg = message or f"Import {Path(path).name}"
    meta = commit_metadata(ckpt, metadata)
    try:
        commit_hash = commit_weights(
            repo,
            ckpt.snapshot.to_weights(),
            msg,
            branch=name,
            author=author,
            metadata=meta,
            if_changed=True,
        )
    except NothingToCommitError:
        raise NothingToCommitError(
            f"{path} holds the same tensors as the tip of {name!r}: nothing to commit",
            hint="the checkpoint is already committed (`coral log` shows it)",
        ) from None
    record_checkpoint(repo, commit_hash, name, ckpt.step, ckpt.epoch, ckpt.metrics)
    return PyTorchImportResult(
        commit_hash,
        name,
        msg,
        str(path),
        ckpt.kind,
        ckpt.tensors,
        ckpt.optimizers,
        ckpt.schedulers,
        ckpt.step,
        ckpt.epoch,
        ckpt.metrics,
        ckpt.hyper_parameters,
    )


def commit_metadata(
    ckpt: TorchCheckpoint, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata a checkpoint's commit gets: the import record, the training record, its
    metrics and hyper-parameters (`extra` entries on top)."""
    meta: dict[str, Any] = {"import": ckpt.import_record(), TRAINING_KEY: ckpt.snapshot.record}
    if ckpt.metrics:
        meta["metrics"] = dict(ckpt.metrics)
    if ckpt.hyper_parameters:
        meta["hyper_parameters"] = ckpt.hyper_parameters
    meta.update(extra or {})
    return meta


def record_checkpoint(
    repo: Repository,
    commit_hash: str,
    branch: str,
    step: int,
    epoch: int | None,
    metrics: Mapping[str, float],
) -> None:
    """List an imported commit among the branch's training checkpoints (`coral checkpoints`)."""
    info = CheckpointInfo(commit_hash, branch, step, epoch, dict(metrics), reason="import")
    CheckpointIndex(repo).record(info)


def _flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested model state (`{"encoder": {...}, "head": {...}}`) with "."-joined names."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _states(value: Any, path: Path, what: str) -> list[Any]:
    """An optimizer/scheduler state dict, or a list of them, as a list."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidFileError(
                f"{path}: the {what} entry holds a {type(item).__name__}, not a state dict",
                hint=f"save {what}.state_dict() in the checkpoint",
            )
    return items


def _int(value: Any) -> int:
    try:
        return int(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        raise CoralError(f"step or epoch {value!r} is not a whole number") from None


def _metrics(obj: Mapping[str, Any]) -> dict[str, float]:
    """A checkpoint's metrics: its "metrics" dict, its top-level float scores, and the score
    Lightning's ModelCheckpoint monitors."""
    given = obj.get("metrics")
    found: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    for key, value in obj.items():  # top-level scores: {"loss": 0.31, "best_acc": tensor(0.9)}
        if isinstance(value, float) or (
            getattr(value, "ndim", None) == 0 and getattr(value, "is_floating_point", bool)()
        ):
            found.setdefault(str(key), value)
    for key, cb in (obj.get("callbacks") or {}).items():
        ok = str(key).startswith("ModelCheckpoint") and isinstance(cb, Mapping)
        if ok and cb.get("monitor") and cb.get("best_model_score") is not None:
            found.setdefault(str(cb["monitor"]), cb["best_model_score"])
    return TrainingState.capture(metrics=found, rng=False).metrics


def _plain(value: Any) -> Any:
    """JSON values for hyper-parameters: a tensor becomes its number (one element) or a short
    description, tuples lists, anything else unknown its `repr` (at most 200 characters)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "item"):  # torch tensors, numpy arrays
        return _plain(value.item()) if math.prod(shape) == 1 else f"tensor{list(shape)}"
    return repr(value)[:200]

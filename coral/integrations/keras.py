"""Keras 3 (TensorFlow, PyTorch or JAX backend): checkpoints while `fit` runs, and `.keras` import.

>>> cb = CoralKerasCallback(repo, CheckpointConfig(every_n_epochs=1, keep_last_n=3))
>>> state = cb.restore(model)          # newest checkpoint into the model; None if none
>>> start = 0 if state is None else state.epoch + 1
>>> model.fit(x, y, epochs=10, initial_epoch=start, callbacks=[cb])

Weights are named by variable path within the model (`dense/kernel`); optimizer variables go
under `__optim__/0/<name>` and the states of the model's seed generators (dropout and other random
layers) under `__rng__/keras/...`, so a resumed fit draws the same random numbers.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from coral.errors import CoralError, InvalidFileError, ShapeMismatchError
from coral.integrations.pytorch import OPTIM_PREFIX, RNG_PREFIX, is_reserved_name
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for, read_checkpoint
from coral.training.config import CheckpointConfig
from coral.training.manager import CheckpointManager, _open_repo
from coral.training.snapshot import Snapshot
from coral.training.state import FORMAT, TrainingState
from coral.training.state_codec import StateEncoder, decode_state

SEED_PREFIX = f"{RNG_PREFIX}/keras"


def _to_numpy(variable: Any) -> np.ndarray:
    """A private numpy copy of a Keras variable's value (any backend)."""
    return np.array(keras.ops.convert_to_numpy(variable.value), copy=True)


def _relative(path: str, model: Any) -> str:
    """A variable or layer path without the model's own (auto-numbered) name in front."""
    prefix = f"{model.name}/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def _unique(named: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for base, v in named:
        if id(v) in seen:
            continue
        seen.add(id(v))
        name, i = base, 1
        while name in out:
            name = f"{base}#{i}"
            i += 1
        out[name] = v
    return out


def model_variables(model: Any) -> dict[str, Any]:
    """name -> variable of every model weight (trainable and not), named by path within the
    model (`enc/kernel`), so names do not depend on the model's auto-numbered name."""
    return _unique([(_relative(v.path, model), v) for v in model.weights])


def optimizer_variables(optimizer: Any, model: Any) -> dict[str, Any]:
    """name -> variable of an optimizer: `iteration`, `learning_rate` and slots named after the
    model variable they belong to (`enc_kernel_momentum`)."""
    if optimizer is None:
        return {}
    subs = sorted(
        (
            (v.path.replace("/", "_"), _relative(v.path, model).replace("/", "_"))
            for v in model.trainable_variables
        ),
        key=lambda s: -len(s[0]),
    )
    named = []
    for o in optimizer.variables:
        tail = o.path.split("/", 1)[-1]
        for full, rel in subs:
            if full in tail:
                tail = tail.replace(full, rel, 1)
                break
        named.append((tail, o))
    return _unique(named)


def seed_variables(model: Any) -> dict[str, Any]:
    """Stored name -> state variable of every seed generator in the model (dropout etc.)."""
    out: dict[str, Any] = {}
    k = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for sg in getattr(layer, "_seed_generators", []) or []:
            out[f"{SEED_PREFIX}/{k}/{type(layer).__name__}"] = sg.state
            k += 1
    return out


def _match(stored: list[str], targets: dict[str, Any], order: list[str] | None) -> dict[str, str]:
    """target name -> stored name: by name, or by position when the names differ only because
    Keras numbered the layers differently (same count and shapes, in the recorded order)."""
    if set(stored) == set(targets) or not order or len(order) != len(targets):
        return {n: n for n in targets if n in stored}
    return dict(zip(targets, order, strict=True))


def _assign(variable: Any, value: Any, name: str) -> None:
    arr = value.data if hasattr(value, "compute_hash") else np.asarray(value)
    if tuple(arr.shape) != tuple(variable.shape):
        raise ShapeMismatchError(
            f"{name}: checkpoint has shape {tuple(arr.shape)}, model {tuple(variable.shape)}"
        )
    variable.assign(arr.astype(keras.backend.standardize_dtype(variable.dtype), copy=False))


class KerasIntegration:
    """Moves a Keras model (weights, optimizer variables, seed states) in and out of Coral."""

    framework = "keras"

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        self.model = model
        self._optimizer = optimizer

    @property
    def optimizer(self) -> Any:
        return (
            self._optimizer
            if self._optimizer is not None
            else getattr(self.model, "optimizer", None)
        )

    def snapshot(
        self, state: TrainingState | None = None, save_optimizer: bool = True, save_rng: bool = True
    ) -> Snapshot:
        state = state or TrainingState.capture(rng=save_rng)
        variables = model_variables(self.model)
        tensors = {name: _to_numpy(v) for name, v in variables.items()}
        record: dict[str, Any] = {
            "format": FORMAT,
            "framework": self.framework,
            "backend": keras.backend.backend(),
            "step": state.step,
            "epoch": state.epoch,
            "metrics": dict(state.metrics),
            "aliases": {},
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "keras_order": list(variables),
        }
        opt = self.optimizer
        if save_optimizer and opt is not None and opt.variables:
            opt_vars = optimizer_variables(opt, self.model)
            for path, v in opt_vars.items():
                tensors[f"{OPTIM_PREFIX}/0/{path}"] = _to_numpy(v)
            record["optimizer_class"] = type(opt).__name__
            record["keras_optimizer_order"] = list(opt_vars)
        enc = StateEncoder()
        if save_rng:
            for name, v in seed_variables(self.model).items():
                tensors[name] = _to_numpy(v)
            if state.rng is not None:
                record["rng"] = enc.encode(state.rng, RNG_PREFIX)
        if state.extra:
            record["extra"] = enc.encode(state.extra, "__extra__/user")
        tensors.update({n: np.array(t, copy=True) for n, t in enc.tensors.items()})
        return Snapshot(tensors, record)

    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        record = dict(record or {})
        targets = model_variables(self.model)
        plain = {n: w for n, w in weights.items() if not is_reserved_name(n)}
        match = _match(list(plain), targets, record.get("keras_order"))
        missing = [n for n in targets if n not in match]
        unexpected = sorted(set(plain) - set(match.values()))
        if strict and (missing or unexpected):
            raise CoralError(
                f"checkpoint does not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}",
                hint="load with strict=False for a partial restore",
            )
        for name, var in targets.items():
            if name in match:
                _assign(var, plain[match[name]], name)
        opt = self.optimizer
        prefix = f"{OPTIM_PREFIX}/0/"
        stored_opt = {n[len(prefix) :]: w for n, w in weights.items() if n.startswith(prefix)}
        if restore_optimizer and opt is not None and stored_opt:
            if not opt.variables or not getattr(opt, "built", True):
                opt.build(self.model.trainable_variables)
            opt_vars = optimizer_variables(opt, self.model)
            opt_match = _match(list(stored_opt), opt_vars, record.get("keras_optimizer_order"))
            for path, var in opt_vars.items():
                if path in opt_match:
                    _assign(var, stored_opt[opt_match[path]], path)
                elif strict:
                    raise CoralError(f"checkpoint lacks optimizer variable {path!r}")
        rng = decode_state(record["rng"], weights) if record.get("rng") else None
        if restore_rng:
            for name, var in seed_variables(self.model).items():
                if name in weights:
                    _assign(var, weights[name], name)
        state = TrainingState(
            step=int(record.get("step") or 0),
            epoch=record.get("epoch"),
            metrics=dict(record.get("metrics") or {}),
            rng=rng,
            extra=decode_state(record["extra"], weights) if record.get("extra") else {},
        )
        if restore_rng:
            state.restore_rng()
        return state

    def load(self, repo: Any, ref: str = "HEAD", strict: bool = True) -> TrainingState:
        weights, record, commit = read_checkpoint(repo, ref)
        state = self.restore(weights, record, strict=strict)
        state.commit = commit
        return state


def _logs(logs: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


class CoralKerasCallback(keras.callbacks.Callback):
    """Commits checkpoints during `model.fit` by the rules of a `CheckpointConfig`.

    Steps are the optimizer's iteration count; epochs are Keras's 0-based epoch indices; epoch-end
    logs (including `val_*` metrics) feed `on_improvement`.
    """

    def __init__(
        self, repo: Any, config: CheckpointConfig | None = None, branch: str | None = None
    ) -> None:
        super().__init__()
        self.repo = _open_repo(repo)
        self.config = config or CheckpointConfig(every_n_epochs=1)
        self.branch = branch
        self.manager: CheckpointManager | None = None
        self._epoch = 0

    def _step(self) -> int:
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return 0
        return int(keras.ops.convert_to_numpy(opt.iterations))

    def on_train_begin(self, logs: Any = None) -> None:
        if self.manager is None:
            self.manager = CheckpointManager(
                self.repo,
                config=self.config,
                branch=self.branch,
                integration=KerasIntegration(self.model),
            )

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = int(epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.manager is not None and self.config.every_n_steps:
            self.manager.step(self._step(), self._epoch)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.manager is not None:
            self.manager.epoch_end(int(epoch), self._step(), _logs(logs))

    def on_train_end(self, logs: Any = None) -> None:
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.close()

    def list_checkpoints(self) -> list[CheckpointInfo]:
        if self.manager is not None:
            return self.manager.list_checkpoints()
        return CheckpointIndex(self.repo).list(branch_for(self.repo, self.branch))

    def restore(
        self, model: Any, ref: str | None = None, strict: bool = True
    ) -> TrainingState | None:
        """Load `ref` (default: the branch's newest checkpoint) into `model` (compiled, so its
        optimizer can be restored too). None when the branch has no checkpoint yet."""
        if ref is None:
            infos = self.list_checkpoints()
            if not infos:
                return None
            ref = infos[-1].commit
        return KerasIntegration(model).load(self.repo, ref, strict=strict)


# ----------------------------------------------------------------------------------------------
# .keras files
# ----------------------------------------------------------------------------------------------
def load_keras_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every weight of a `.keras` file, by variable path within the model (`dense/kernel`).

    The model is rebuilt with `keras.saving.load_model` (no compile); a model of custom classes
    that cannot be rebuilt falls back to the raw HDF5 names (`layers/dense/vars/0`).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    if not zipfile.is_zipfile(p):
        raise InvalidFileError(f"{p}: not a .keras archive (a zip file)")
    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=True)
    except (TypeError, ValueError, KeyError, AttributeError):
        return _read_weights_h5(p)
    return {name: _to_numpy(v) for name, v in model_variables(model).items()}


def _read_weights_h5(path: Path) -> dict[str, np.ndarray]:
    import io

    import h5py

    with zipfile.ZipFile(path) as zf:
        if "model.weights.h5" not in zf.namelist():
            raise InvalidFileError(f"{path}: no model.weights.h5 inside")
        data = zf.read("model.weights.h5")
    out: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(data), "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer/"):
                out[name] = np.array(obj[()])

        f.visititems(visit)
    return out

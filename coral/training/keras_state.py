"""Keras 3 models (TensorFlow, PyTorch or JAX backend) in and out of Coral: the state adapter
`CheckpointManager` uses for a `keras.Model` (public as `coral.integrations.keras`).

Weights are named by variable path within the model (`dense/kernel`); optimizer variables go
under `__optim__/0/<name>` and the states of the model's seed generators (dropout and other random
layers) under `__rng__/keras/...`, so a resumed fit draws the same random numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from coral.core.training_names import OPTIM_PREFIX, RNG_PREFIX, is_training_state
from coral.errors import CoralError, ShapeMismatchError
from coral.training.commit import read_checkpoint
from coral.training.snapshot import Snapshot
from coral.training.state import FORMAT, TrainingState
from coral.training.state_codec import StateEncoder, decode_state

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

SEED_PREFIX = f"{RNG_PREFIX}/keras"


def variable_to_numpy(variable: Any) -> np.ndarray:
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
        tensors = {name: variable_to_numpy(v) for name, v in variables.items()}
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
                tensors[f"{OPTIM_PREFIX}/0/{path}"] = variable_to_numpy(v)
            record["optimizer_class"] = type(opt).__name__
            record["keras_optimizer_order"] = list(opt_vars)
        enc = StateEncoder()
        if save_rng:
            for name, v in seed_variables(self.model).items():
                tensors[name] = variable_to_numpy(v)
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
        plain = {n: w for n, w in weights.items() if not is_training_state(n)}
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

    def load(self, repo: Repository, ref: str = "HEAD", strict: bool = True) -> TrainingState:
        weights, record, commit = read_checkpoint(repo, ref)
        state = self.restore(weights, record, strict=strict)
        state.commit = commit
        return state

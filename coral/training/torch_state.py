"""PyTorch models, optimizers and schedulers in and out of Coral, bit-exact: the state adapter
`CheckpointManager` uses for a `torch.nn.Module` (public as `coral.integrations.pytorch`).

A checkpoint commit written from PyTorch holds:
- the model's `state_dict` (parameters and persistent buffers) under its own names; tensors that
  share storage (tied weights) are stored once, the other names recorded as aliases;
- optimizer state tensors under `__optim__/...`, scheduler tensors (rare) under `__sched__/...`,
  RNG states under `__rng__/...`, anything else under `__extra__/...`;
- in the commit's metadata, under "training": step, epoch, metrics, the aliases and the JSON
  skeletons of the optimizer/scheduler/RNG states that say where each tensor goes back.

>>> integ = PyTorchIntegration(model, optimizer, scheduler)
>>> commit = integ.save(repo, "step 100", TrainingState.capture(step=100))
>>> state = integ.load(repo)          # model, optimizer, scheduler and RNG back; a TrainingState
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from coral.core.dtypes import dtype_name
from coral.core.tensor_convert import numpy_to_torch, torch_to_numpy
from coral.core.training_names import (
    EXTRA_PREFIX,
    OPTIM_PREFIX,
    RESERVED_PREFIXES,
    RNG_PREFIX,
    SCHED_PREFIX,
)
from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError, ShapeMismatchError
from coral.training.integration_base import SnapshotIntegration
from coral.training.snapshot import Snapshot, copy_tensors
from coral.training.state import FORMAT, TrainingState
from coral.training.state_codec import StateEncoder, decode_state, storage_key

_V = TypeVar("_V")


def is_reserved_name(name: str) -> bool:
    """Whether a weight name belongs to training state rather than to the model."""
    return name.startswith(RESERVED_PREFIXES)


def model_weights(
    weights: Mapping[str, _V], record: Mapping[str, Any] | None = None
) -> dict[str, _V]:
    """The model's own weights out of a checkpoint commit's: training state (names under
    RESERVED_PREFIXES) left out, and the tied-weight aliases the training `record` lists put
    back, each alias holding the very value of the name it is tied to (as in the state dict)."""
    model = {n: w for n, w in weights.items() if not is_reserved_name(n)}
    aliases = record.get("aliases") if isinstance(record, Mapping) else None
    for alias, stored in dict(aliases or {}).items():
        if stored in model:
            model[alias] = model[stored]
    return model


# ----------------------------------------------------------------------------------------------
# state dicts and tied weights
# ----------------------------------------------------------------------------------------------
def state_dict_with_aliases(source: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(unique tensors, aliases) of a module's or mapping's state dict.

    Names whose tensor is the same view of the same storage as an earlier name (tied weights)
    go to `aliases` as alias -> stored name instead of being stored twice.
    """
    sd = source.state_dict() if hasattr(source, "state_dict") else dict(source)
    unique: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in sd.items():
        if is_reserved_name(name):
            raise CoralError(
                f"model weight {name!r} uses a name Coral reserves for training state",
                hint=f"rename it: names starting with {', '.join(RESERVED_PREFIXES)} are reserved",
            )
        if not hasattr(tensor, "untyped_storage"):  # extra_state objects and the like
            unique[name] = tensor
            continue
        key = storage_key(tensor)
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        unique[name] = tensor
    return unique, aliases


def _layer_types(model: Any) -> dict[str, str]:
    """Parameter/buffer name prefix -> class name of the module that owns it."""
    if not hasattr(model, "named_modules"):
        return {}
    return {prefix: type(mod).__name__ for prefix, mod in model.named_modules()}


def _owner_type(name: str, types: Mapping[str, str]) -> str | None:
    prefix = name.rsplit(".", 1)[0] if "." in name else ""
    return types.get(prefix)


def model_to_weights(model: Any) -> dict[str, WeightTensor]:
    """A module's state dict as named WeightTensors (tied weights once, see
    `state_dict_with_aliases`)."""
    unique, _ = state_dict_with_aliases(model)
    types = _layer_types(model)
    out: dict[str, WeightTensor] = {}
    for name, t in unique.items():
        if not hasattr(t, "untyped_storage"):
            continue
        out[name] = WeightTensor(torch_to_numpy(t), name=name, layer_type=_owner_type(name, types))
    return out


# ----------------------------------------------------------------------------------------------
# selective / partial loading
# ----------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What `load_into_model` did: names loaded, and those it could not load."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the weights
    unexpected: list[str] = field(default_factory=list)  # in the weights, not in the model
    mismatched: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (name, model's, weights')

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)}"]
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {', '.join(self.missing[:5])}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {', '.join(self.unexpected[:5])}")
        if self.mismatched:
            parts.append(
                "mismatched: " + ", ".join(f"{n} ({a} vs {b})" for n, a, b in self.mismatched[:5])
            )
        return "; ".join(parts)


def _describe(shape: Sequence[int], dtype: str) -> str:
    return f"{dtype}{list(shape)}"


def _weight_facts(value: Any) -> tuple[tuple[int, ...], str]:
    if isinstance(value, WeightTensor):
        return tuple(value.shape), value.metadata.dtype_name
    if isinstance(value, np.ndarray):
        return tuple(value.shape), dtype_name(value.dtype)
    if hasattr(value, "untyped_storage"):
        return tuple(value.shape), str(value.dtype).removeprefix("torch.")
    arr = np.asarray(value)
    return tuple(arr.shape), dtype_name(arr.dtype)


def _as_torch(value: Any) -> Any:
    if hasattr(value, "untyped_storage"):
        return value
    arr = value.data if isinstance(value, WeightTensor) else np.asarray(value)
    return numpy_to_torch(arr)


def load_into_model(
    model: Any,
    weights: Mapping[str, Any],
    strict: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> LoadReport:
    """Load the `weights` that fit into `model` (a partial checkout when they cover only part).

    Values may be WeightTensors (lazy ones are read only when loaded), numpy arrays or torch
    tensors. A weight whose shape or dtype differs from the model's is not loaded but reported
    in `mismatched`. Reserved training-state names (`__optim__/...`) are ignored. Tied weights
    are filled through any of their names. Tensors are copied onto the model's own devices.
    With `strict=True` nothing is loaded unless everything matches (ShapeMismatchError, or
    CoralError for missing/unexpected names).
    """
    target = model.state_dict()
    weights = {n: w for n, w in weights.items() if not is_reserved_name(n)}
    _, model_aliases = state_dict_with_aliases(target)
    extra_aliases = dict(aliases or {})
    report = LoadReport()
    to_load: dict[str, Any] = {}
    for name, value in weights.items():
        if name not in target:
            report.unexpected.append(name)
            continue
        t = target[name]
        if not hasattr(t, "untyped_storage"):
            to_load[name] = value  # extra state: handed over as is
            continue
        want = (tuple(t.shape), str(t.dtype).removeprefix("torch."))
        got = _weight_facts(value)
        if want != got:
            report.mismatched.append((name, _describe(*want), _describe(*got)))
            continue
        to_load[name] = value
    # names filled through a tie: the model's own aliases and those the checkpoint recorded.
    filled = set(to_load)
    for alias, stored in {**model_aliases, **extra_aliases}.items():
        if alias in target and stored in filled:
            filled.add(alias)
    reverse: dict[str, list[str]] = {}
    for alias, stored in model_aliases.items():
        reverse.setdefault(stored, []).append(alias)
    for stored, names in reverse.items():
        if any(n in filled for n in names):
            filled.add(stored)
            filled.update(names)
    report.missing = [n for n in target if n not in filled]
    if strict and not report.ok:
        if report.mismatched:
            raise ShapeMismatchError(f"weights do not fit the model: {report}")
        raise CoralError(
            f"weights do not match the model: {report}",
            hint="load with strict=False for a partial checkout",
        )
    if to_load:
        tensors = {
            n: _as_torch(v) if hasattr(target[n], "untyped_storage") else v
            for n, v in to_load.items()
        }
        model.load_state_dict(tensors, strict=False)
    report.loaded = sorted(to_load)
    return report


# ----------------------------------------------------------------------------------------------
# snapshots: what a checkpoint copies out of a live run
# ----------------------------------------------------------------------------------------------
@dataclass
class CheckpointParts:
    """A training checkpoint taken apart: what `build_snapshot` put in, read back."""

    model_state: dict[str, Any]  # name -> WeightTensor / array (aliases filled in) or extra state
    optimizer_states: list[dict[str, Any]]
    scheduler_states: list[dict[str, Any]]
    state: TrainingState
    sections: dict[str, Any]  # framework-specific remainder (Lightning loops, HF trainer state...)
    aliases: dict[str, str]


def build_snapshot(
    model_state: Mapping[str, Any],
    state: TrainingState,
    *,
    framework: str,
    optimizer_states: Sequence[Mapping[str, Any]] = (),
    scheduler_states: Sequence[Mapping[str, Any]] = (),
    sections: Mapping[str, Any] | None = None,
    layer_types: Mapping[str, str] | None = None,
    model_class: str | None = None,
    strict: bool = True,
) -> Snapshot:
    """Copy a model state dict plus optimizer/scheduler state dicts, RNG and extras into a Snapshot.

    Tensors are copied (see `copy_tensors`); everything else becomes the JSON training record.
    `sections` holds framework-specific nested state (stored with `strict` encoding: False
    replaces objects that cannot be stored by a marker instead of raising).
    """
    unique, aliases = state_dict_with_aliases(model_state)
    model_tensors = {n: t for n, t in unique.items() if hasattr(t, "untyped_storage")}
    enc = StateEncoder(strict=True)
    record: dict[str, Any] = {
        "format": FORMAT,
        "framework": framework,
        "step": state.step,
        "epoch": state.epoch,
        "metrics": dict(state.metrics),
        "aliases": aliases,
    }
    if model_class:
        record["model_class"] = model_class
    non_tensor = {n: v for n, v in unique.items() if n not in model_tensors}
    if non_tensor:
        record["model_extra_state"] = enc.encode(non_tensor, f"{EXTRA_PREFIX}/model")
    if optimizer_states:
        record["optimizers"] = [
            enc.encode(sd, f"{OPTIM_PREFIX}/{i}") for i, sd in enumerate(optimizer_states)
        ]
    if scheduler_states:
        record["schedulers"] = [
            enc.encode(sd, f"{SCHED_PREFIX}/{i}") for i, sd in enumerate(scheduler_states)
        ]
    if state.rng is not None:
        record["rng"] = enc.encode(state.rng, RNG_PREFIX)
    if state.extra:
        record["extra"] = enc.encode(state.extra, f"{EXTRA_PREFIX}/user")
    if sections:
        enc.strict = strict
        record["sections"] = {k: enc.encode(v, f"{EXTRA_PREFIX}/{k}") for k, v in sections.items()}
        enc.strict = True
    all_tensors: dict[str, Any] = dict(model_tensors)
    all_tensors.update(enc.tensors)
    copies, ready = copy_tensors(all_tensors)
    types = {n: t for n in model_tensors if (t := (layer_types or {}).get(n))}
    return Snapshot(copies, record, types, ready)


def unpack_checkpoint(
    weights: Mapping[str, Any], record: Mapping[str, Any] | None
) -> CheckpointParts:
    """Take a checkpoint commit's weights and training record apart (inverse of `build_snapshot`).

    Optimizer, scheduler, RNG and section tensors come back as CPU torch tensors (numpy for
    those stored from numpy); model weights stay as given (WeightTensors, possibly lazy).
    """
    record = dict(record or {})
    aliases = dict(record.get("aliases") or {})
    model_state: dict[str, Any] = model_weights(weights, record)
    if record.get("model_extra_state"):
        model_state.update(decode_state(record["model_extra_state"], weights))
    rng = decode_state(record["rng"], weights) if record.get("rng") else None
    state = TrainingState(
        step=int(record.get("step") or 0),
        epoch=record.get("epoch"),
        metrics=dict(record.get("metrics") or {}),
        rng=rng,
        extra=decode_state(record["extra"], weights) if record.get("extra") else {},
    )
    return CheckpointParts(
        model_state=model_state,
        optimizer_states=[decode_state(s, weights) for s in record.get("optimizers") or []],
        scheduler_states=[decode_state(s, weights) for s in record.get("schedulers") or []],
        state=state,
        sections={k: decode_state(v, weights) for k, v in (record.get("sections") or {}).items()},
        aliases=aliases,
    )


def _as_list(obj: Any) -> list[Any]:
    if obj is None:
        return []
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


class PyTorchIntegration(SnapshotIntegration):
    """Moves a model (and optionally optimizers, schedulers, RNG) in and out of Coral."""

    framework = "pytorch"

    def __init__(self, model: Any, optimizer: Any = None, scheduler: Any = None) -> None:
        self.model = model
        self.optimizers = _as_list(optimizer)
        self.schedulers = _as_list(scheduler)
        types = _layer_types(model)
        self._types = {n: t for n in model.state_dict() if (t := _owner_type(n, types))}

    # -- capture ----------------------------------------------------------------------------
    def snapshot(
        self,
        state: TrainingState | None = None,
        save_optimizer: bool = True,
        save_rng: bool = True,
    ) -> Snapshot:
        """Copy what a checkpoint needs out of the live run (returns once copies are queued)."""
        state = state or TrainingState.capture(rng=save_rng)
        if not save_rng:
            state.rng = None
        return build_snapshot(
            self.model.state_dict(),
            state,
            framework=self.framework,
            optimizer_states=[o.state_dict() for o in self.optimizers] if save_optimizer else (),
            scheduler_states=[s.state_dict() for s in self.schedulers] if save_optimizer else (),
            layer_types=self._types,
            model_class=f"{type(self.model).__module__}.{type(self.model).__qualname__}",
        )

    # -- restore ----------------------------------------------------------------------------
    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Put a checkpoint's weights (and training state) back into the live objects."""
        parts = unpack_checkpoint(weights, record)
        if (
            strict
            and record
            and restore_optimizer
            and self.optimizers
            and not parts.optimizer_states
        ):
            raise CoralError(
                "the checkpoint holds no optimizer state",
                hint="it was saved with save_optimizer=False; load with strict=False",
            )
        load_into_model(self.model, parts.model_state, strict=strict, aliases=parts.aliases)
        if restore_optimizer:
            for opt, sd in zip(self.optimizers, parts.optimizer_states, strict=False):
                opt.load_state_dict(sd)
            for sch, sd in zip(self.schedulers, parts.scheduler_states, strict=False):
                sch.load_state_dict(sd)
        if restore_rng:
            parts.state.restore_rng()
        return parts.state

    # -- convenience ------------------------------------------------------------------------
    @staticmethod
    def model_to_weights(model: Any) -> dict[str, WeightTensor]:
        return model_to_weights(model)

    @staticmethod
    def weights_to_model(weights: Mapping[str, Any], model: Any, strict: bool = True) -> LoadReport:
        return load_into_model(model, weights, strict=strict)

"""TensorFlow models and optimizers in and out of Coral, bit-exact (bfloat16 included).

>>> integ = TensorFlowIntegration(module, optimizer)
>>> commit = integ.save(repo, "step 100", TrainingState.capture(step=100))
>>> state = integ.load(repo)                       # weights, optimizer slots and RNG back
>>> export_checkpoint(repo, "v1.0", module, "ckpt/model")     # a tf.train.Checkpoint
>>> export_saved_model(repo, "v1.0", module, "exported/")      # a SavedModel folder
>>> for name, tensor in tensor_dataset(repo, "v1.0"): ...      # tf.data, one tensor at a time

A `tf.Module` (not Keras) has its variables named by object path, as a TensorFlow checkpoint
names them (`encoder/kernel`, `blocks/0/bias`), so `coral import-tensorflow` of a checkpoint it
wrote gives the same names. Optimizer variables (a Keras optimizer's iteration count and slots)
go under `__optim__/0/...` in the optimizer's own order, and TensorFlow's global random generator
under `__rng__/tensorflow`. A `keras.Model` is handled by `KerasIntegration` (names by variable
path, `dense/kernel`), so its checkpoints are those `CoralKerasCallback` writes. TensorFlow is
imported only when one of these is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.core.dtypes import dtype_name
from coral.core.training_names import OPTIM_PREFIX, RNG_PREFIX, is_training_state
from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError, ShapeMismatchError
from coral.integrations.tensorflow_io import _tf
from coral.training.commit import read_checkpoint
from coral.training.integration_base import SnapshotIntegration
from coral.training.snapshot import Snapshot
from coral.training.state import FORMAT, TrainingState
from coral.training.state_codec import StateEncoder, decode_state
from coral.training.torch_state import LoadReport

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

TF_RNG = f"{RNG_PREFIX}/tensorflow/global"
_OPT = f"{OPTIM_PREFIX}/0/"

__all__ = [
    "TensorFlowIntegration",
    "export_checkpoint",
    "export_saved_model",
    "model_variables",
    "tensor_dataset",
]


def _is_keras(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def model_variables(model: Any) -> dict[str, Any]:
    """name -> variable of every weight of a tf.Module (by object path, each variable once) or
    a keras.Model (by variable path within the model)."""
    if _is_keras(model):
        from coral.training.keras_state import model_variables as keras_variables

        return keras_variables(model)
    tf = _tf()
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for path, var in model._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True):
        if id(var) not in seen:
            seen.add(id(var))
            out["/".join(map(str, path))] = var
    if not out:
        raise CoralError(
            f"{type(model).__qualname__} has no variables",
            hint="build the model (call it once on an input) before saving or loading it",
        )
    return out


def _to_numpy(var: Any) -> np.ndarray:
    return np.array(var.numpy(), copy=True)


def _var_dtype(var: Any) -> str:
    """A tf.Variable's or Keras variable's dtype, by Coral's name."""
    dt = var.dtype
    return dtype_name(np.dtype(dt if isinstance(dt, str) else dt.as_numpy_dtype))


def _assign(var: Any, value: Any, name: str) -> None:
    arr = _data(value)
    want = (tuple(var.shape), _var_dtype(var))
    got = (tuple(arr.shape), dtype_name(arr.dtype))
    if want != got:
        raise ShapeMismatchError(
            f"{name}: the model's variable is {want[1]}{list(want[0])}, the checkpoint's "
            f"{got[1]}{list(got[0])}",
            hint="load a commit of the same architecture and dtype",
        )
    var.assign(arr)


def load_into_model(model: Any, weights: Mapping[str, Any], strict: bool = True) -> LoadReport:
    """Assign the `weights` that fit into a tf.Module's variables; what was loaded, missing,
    unexpected or mismatched (ShapeMismatchError / CoralError instead with `strict`)."""
    targets = model_variables(model)
    plain = {n: w for n, w in weights.items() if not is_training_state(n)}
    report = LoadReport(
        missing=[n for n in targets if n not in plain],
        unexpected=sorted(n for n in plain if n not in targets),
    )
    for name in targets:
        if name not in plain:
            continue
        try:
            _assign(targets[name], plain[name], name)
        except ShapeMismatchError:
            if strict:
                raise
            var = targets[name]
            report.mismatched.append((name, str(list(var.shape)), str(list(plain[name].shape))))
            continue
        report.loaded.append(name)
    if strict and (report.missing or report.unexpected):
        raise CoralError(
            f"weights do not match the model: {report}",
            hint="load with strict=False for a partial restore",
        )
    return report


class TensorFlowIntegration(SnapshotIntegration):
    """Moves a TensorFlow model (and optionally a Keras optimizer) in and out of Coral."""

    framework = "tensorflow"

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self._keras: Any = None
        if _is_keras(model):
            from coral.training.keras_state import KerasIntegration

            self._keras = KerasIntegration(model, optimizer)

    # -- capture ----------------------------------------------------------------------------
    def snapshot(
        self,
        state: TrainingState | None = None,
        save_optimizer: bool = True,
        save_rng: bool = True,
    ) -> Snapshot:
        """Copy the model's variables (and optimizer slots, RNG states) out of the live run."""
        if self._keras is not None:
            return self._keras.snapshot(state, save_optimizer=save_optimizer, save_rng=save_rng)
        tf = _tf()
        state = state or TrainingState.capture(rng=save_rng)
        if not save_rng:
            state.rng = None
        tensors = {n: _to_numpy(v) for n, v in model_variables(self.model).items()}
        record: dict[str, Any] = {
            "format": FORMAT,
            "framework": self.framework,
            "step": state.step,
            "epoch": state.epoch,
            "metrics": dict(state.metrics),
            "aliases": {},
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
        }
        opt = self.optimizer
        if save_optimizer and opt is not None and opt.variables:
            names = [str(getattr(v, "path", None) or v.name) for v in opt.variables]
            for i, v in enumerate(opt.variables):
                tensors[f"{_OPT}{i}"] = _to_numpy(v)
            record["optimizer_class"] = type(opt).__name__
            record["tf_optimizer_variables"] = names
        if save_rng:
            tensors[TF_RNG] = np.array(tf.random.get_global_generator().state.numpy(), copy=True)
        enc = StateEncoder()
        if state.rng is not None:
            record["rng"] = enc.encode(state.rng, RNG_PREFIX)
        if state.extra:
            record["extra"] = enc.encode(state.extra, "__extra__/user")
        tensors.update({n: np.array(t, copy=True) for n, t in enc.tensors.items()})
        return Snapshot(tensors, record)

    # -- restore ----------------------------------------------------------------------------
    def restore(
        self,
        weights: Mapping[str, Any],
        record: Mapping[str, Any] | None,
        strict: bool = True,
        restore_optimizer: bool = True,
        restore_rng: bool = True,
    ) -> TrainingState:
        """Put a checkpoint's weights (and optimizer slots, RNG) back into the live objects."""
        if self._keras is not None:
            return self._keras.restore(
                weights,
                record,
                strict=strict,
                restore_optimizer=restore_optimizer,
                restore_rng=restore_rng,
            )
        tf = _tf()
        record = dict(record or {})
        load_into_model(self.model, weights, strict=strict)
        opt = self.optimizer
        stored = sorted(
            (int(n[len(_OPT) :]), w)
            for n, w in weights.items()
            if n.startswith(_OPT) and n[len(_OPT) :].isdigit()
        )
        if restore_optimizer and opt is not None and stored:
            if not opt.variables or not getattr(opt, "built", True):
                opt.build(self.model.trainable_variables)
            if strict and len(stored) != len(opt.variables):
                raise CoralError(
                    f"the checkpoint holds {len(stored)} optimizer variables, the optimizer "
                    f"{len(opt.variables)}",
                    hint="restore with the optimizer class the checkpoint was saved with "
                    f"({record.get('optimizer_class', 'unknown')})",
                )
            for (i, w), var in zip(stored, opt.variables, strict=False):
                try:
                    _assign(var, w, f"{OPTIM_PREFIX}/0/{i}")
                except ShapeMismatchError:
                    if strict:
                        raise
        if restore_rng and TF_RNG in weights:
            gen = tf.random.get_global_generator()
            gen.state.assign(np.asarray(_data(weights[TF_RNG]), dtype=np.int64))
        state = TrainingState(
            step=int(record.get("step") or 0),
            epoch=record.get("epoch"),
            metrics=dict(record.get("metrics") or {}),
            rng=decode_state(record["rng"], weights) if record.get("rng") else None,
            extra=decode_state(record["extra"], weights) if record.get("extra") else {},
        )
        if restore_rng:
            state.restore_rng()
        return state

    # -- convenience ------------------------------------------------------------------------
    @staticmethod
    def model_to_weights(model: Any) -> dict[str, WeightTensor]:
        return {n: WeightTensor(_to_numpy(v), name=n) for n, v in model_variables(model).items()}

    @staticmethod
    def weights_to_model(weights: Mapping[str, Any], model: Any, strict: bool = True) -> LoadReport:
        return load_into_model(model, weights, strict=strict)


def _data(value: Any) -> np.ndarray:
    return value.data if isinstance(value, WeightTensor) else np.asarray(value)


def _load_ref(repo: Repository, ref: str, model: Any) -> str:
    """Load commit `ref`'s model weights into `model` (strict); the commit hash."""
    weights, record, commit_hash = read_checkpoint(repo, ref, lazy=True)
    TensorFlowIntegration(model).restore(
        weights, record, strict=True, restore_optimizer=False, restore_rng=False
    )
    return commit_hash


def _variable_tree(variables: Mapping[str, Any]) -> Any:
    """A tf.Module whose object paths are the given names (`a/b/c` -> root.a.b.c)."""
    tf = _tf()
    root = tf.Module()
    for name, var in variables.items():
        node = root
        *parents, leaf = name.split("/")
        for part in parents:
            child = getattr(node, part, None)
            if child is None:
                child = tf.Module()
                setattr(node, part, child)
            node = child
        setattr(node, leaf, var)
    return root


def export_checkpoint(repo: Repository, ref: str, model: Any, path: str | os.PathLike[str]) -> str:
    """Load commit `ref` into `model` and write its weights as a TensorFlow checkpoint at the
    prefix `path`; returns the prefix written (`path` plus `.index`/`.data-*` files).

    A tf.Module is written as `tf.train.Checkpoint(model)` (read back with
    `tf.train.Checkpoint(model).read(path)`); for a keras.Model, the commit's weights by
    their names. Either way `coral import-tensorflow` of it gives the commit's names back."""
    tf = _tf()
    commit_hash = _load_ref(repo, ref, model)  # checks that the commit fits the model
    root = model
    if _is_keras(model):  # Keras 3 layers are not tracked as checkpoint objects
        weights = repo.get_all_weights(commit_hash)
        root = _variable_tree(
            {n: tf.Variable(w.data) for n, w in weights.items() if not is_training_state(n)}
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return str(tf.train.Checkpoint(root).write(str(path)))


def export_saved_model(
    repo: Repository, ref: str, model: Any, path: str | os.PathLike[str]
) -> Path:
    """Load commit `ref` into `model` and save it as a SavedModel folder (a keras.Model through
    `model.export`); `coral.json` in the folder names the commit."""
    tf = _tf()
    commit_hash = _load_ref(repo, ref, model)
    out = Path(path)
    if _is_keras(model):
        model.export(str(out), format="tf_saved_model", verbose=False)
    else:
        tf.saved_model.save(model, str(out))
    (out / "coral.json").write_text(json.dumps({"commit": commit_hash, "ref": ref}) + "\n")
    return out


def tensor_dataset(
    repo: Repository,
    ref: str = "HEAD",
    names: Sequence[str] | None = None,
    dtype: Any = None,
) -> Any:
    """A `tf.data.Dataset` of (name, tensor) pairs of commit `ref`, read one at a time as the
    dataset is iterated (never all in memory). `names` picks tensors (default: the model's
    weights, training state left out); their dtypes must agree unless `dtype` casts them."""
    tf = _tf()
    commit_hash = repo.resolve_ref(ref)
    entries = repo.get_tree(commit_hash).entries
    if names is None:
        chosen = [n for n in sorted(entries) if not is_training_state(n)]
    else:
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise CoralError(
                f"{ref} has no tensor {unknown[0]!r}",
                hint=f"list its tensors with `coral show {ref}`",
            )
        chosen = list(names)
    dtypes = sorted({entries[n].dtype for n in chosen})
    if dtype is None and len(dtypes) > 1:
        raise CoralError(
            f"the tensors of {ref} have {len(dtypes)} dtypes ({', '.join(dtypes)})",
            hint="pass dtype= to cast them all, or names= of one dtype",
        )
    from coral.core.dtypes import numpy_dtype

    out_dtype = tf.as_dtype(dtype if dtype is not None else numpy_dtype(dtypes[0]))
    selected = [entries[n] for n in chosen]

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        for entry in selected:
            arr = repo.load_entry(entry).data
            yield entry.name, arr.astype(out_dtype.as_numpy_dtype, copy=False)

    return tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec(shape=(), dtype=tf.string),
            tf.TensorSpec(shape=None, dtype=out_dtype),
        ),
    )

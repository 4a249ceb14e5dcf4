"""Keras 3 (TensorFlow, PyTorch or JAX backend): checkpoints while `fit` runs, and `.keras` import.

>>> cb = CoralKerasCallback(repo, CheckpointConfig(every_n_epochs=1, keep_last_n=3))
>>> state = cb.restore(model)          # newest checkpoint into the model; None if none
>>> start = 0 if state is None else state.epoch + 1
>>> model.fit(x, y, epochs=10, initial_epoch=start, callbacks=[cb])

Weights are named by variable path within the model (`dense/kernel`); optimizer variables go
under `__optim__/0/<name>` and the states of the model's seed generators (dropout and other random
layers) under `__rng__/keras/...`, so a resumed fit draws the same random numbers. The state
adapter, `KerasIntegration`, lives in `coral.training.keras_state` (`CheckpointManager` uses it
for a `keras.Model`; training imports nothing above itself) and is public here too.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from coral.errors import InvalidFileError
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for
from coral.training.config import CheckpointConfig
from coral.training.keras_state import (
    SEED_PREFIX,
    KerasIntegration,
    model_variables,
    optimizer_variables,
    seed_variables,
    variable_to_numpy,
)
from coral.training.manager import CheckpointManager, _open_repo
from coral.training.state import TrainingState

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

__all__ = [
    "SEED_PREFIX",
    "CoralKerasCallback",
    "KerasIntegration",
    "load_keras_file",
    "model_variables",
    "optimizer_variables",
    "seed_variables",
]


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
        self,
        repo: Repository | str | os.PathLike[str],
        config: CheckpointConfig | None = None,
        branch: str | None = None,
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
            optimizer = getattr(self.model, "optimizer", None)
            get_config = getattr(optimizer, "get_config", None)
            self.manager = CheckpointManager(
                self.repo,
                config=self.config,
                branch=self.branch,
                integration=KerasIntegration(self.model),
                run_config={  # what `fit` was given, and the optimizer's settings
                    "params": dict(self.params or {}),
                    "optimizer": get_config() if callable(get_config) else None,
                },
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
    return {name: variable_to_numpy(v) for name, v in model_variables(model).items()}


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

"""TensorFlow checkpoints and SavedModels as Coral weights (bit-exact, bfloat16 included).

>>> load_tf_checkpoint("ckpt/model-1000")    # a checkpoint prefix, its .index file, or its folder
>>> load_saved_model("exported/")             # a SavedModel folder (saved_model.pb + variables/)

Checkpoint names are the object paths TensorFlow records (`model/dense/kernel`, the
`/.ATTRIBUTES/VARIABLE_VALUE` suffix dropped); optimizer state goes under `__optim__/`;
bookkeeping entries (`_CHECKPOINTABLE_OBJECT_GRAPH`, `save_counter`) and non-numeric values are
left out. A SavedModel whose root object carries its variables (Keras `model.export`) is read by
variable name (`sequential/dense/kernel`); otherwise its variables checkpoint is read by object
path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.dtypes import canonical_array
from coral.core.training_names import OPTIM_PREFIX
from coral.errors import CoralError, InvalidFileError, UnsupportedDtypeError

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SKIP = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"}


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - tensorflow is in the training extra
        raise CoralError(
            "TensorFlow import needs the tensorflow package",
            hint="pip install 'coral-vcs[training]'",
        ) from exc
    return tf


def is_saved_model(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "saved_model.pb").is_file()


def is_tf_checkpoint(path: str | os.PathLike[str]) -> bool:
    """A checkpoint prefix (`x` with `x.index` beside it), its `.index` file, or a folder with a
    `checkpoint` state file."""
    p = Path(path)
    if p.is_dir():
        return (p / "checkpoint").is_file()
    if p.suffix == ".index":
        return p.is_file()
    return Path(str(p) + ".index").is_file()


def _prefix(path: str | os.PathLike[str]) -> str:
    tf = _tf()
    p = Path(path)
    if p.is_dir():
        latest = tf.train.latest_checkpoint(str(p))
        if latest is None:
            raise InvalidFileError(f"{p}: no TensorFlow checkpoint in this folder")
        return str(latest)
    if p.suffix == ".index":
        return str(p.with_suffix(""))
    return str(p)


def _numeric(value: Any) -> np.ndarray | None:
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU":
        return None
    try:
        return canonical_array(arr)  # ml_dtypes types (bfloat16, float8) included
    except UnsupportedDtypeError:
        return None


def load_tf_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every numeric variable of a TensorFlow checkpoint, by object path."""
    tf = _tf()
    prefix = _prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # TF raises NotFoundError / DataLossError
        raise InvalidFileError(f"{path}: not a readable TensorFlow checkpoint ({exc})") from exc
    out: dict[str, np.ndarray] = {}
    for key in sorted(reader.get_variable_to_shape_map()):
        name = key.removesuffix(_SUFFIX)
        if name in _SKIP:
            continue
        if ".OPTIMIZER_SLOT/" in name or name.startswith("optimizer/"):
            name = f"{OPTIM_PREFIX}/{name}"  # optimizer state: kept, apart from the model's weights
        arr = _numeric(reader.get_tensor(key))
        if arr is not None:
            out[name] = arr
    return out


def load_saved_model(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every numeric variable of a SavedModel folder."""
    tf = _tf()
    p = Path(path)
    if not is_saved_model(p):
        raise InvalidFileError(f"{p}: not a SavedModel folder (no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(p))
    except Exception as exc:
        raise InvalidFileError(f"{p}: cannot load the SavedModel ({exc})") from exc
    variables = getattr(loaded, "variables", None)
    if isinstance(variables, (list, tuple)) and variables:
        out: dict[str, np.ndarray] = {}
        for v in variables:
            name = str(getattr(v, "path", None) or v.name).removesuffix(":0")
            arr = _numeric(v.numpy())
            if arr is None:
                continue
            if name in out:
                raise InvalidFileError(f"{p}: two variables are named {name!r}")
            out[name] = arr
        return out
    return load_tf_checkpoint(p / "variables" / "variables")


def load_keras_h5(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every dataset of a Keras HDF5 weights file (`model.save_weights("x.weights.h5")`, or a
    Keras 2 `model.save("x.h5")`), by its HDF5 path: `layers/dense/vars/0` (Keras 3),
    `dense/dense/kernel` (Keras 2, `model_weights/` and `:0` dropped). Optimizer datasets go
    under `__optim__/`."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(p, "r") as f:

            def visit(name: str, obj: Any) -> None:
                if not isinstance(obj, h5py.Dataset):
                    return
                key = name.removeprefix("model_weights/").removesuffix(":0")
                if name.startswith(("optimizer/", "optimizer_weights/")):
                    key = f"{OPTIM_PREFIX}/{name.split('/', 1)[1].removesuffix(':0')}"
                arr = _numeric(obj[()])
                if arr is not None:
                    out[key] = arr

            f.visititems(visit)
    except OSError as exc:
        raise InvalidFileError(f"{p}: not a readable HDF5 weights file ({exc})") from exc
    return out

"""Checkpoint files in and out of Coral: safetensors (single and sharded), PyTorch `.pt`/`.bin`,
NumPy `.npz` and Hugging Face model folders. Every dtype round-trips bit-exact. Reading also
takes ONNX models (initializers), Keras `.keras` files and TensorFlow checkpoints/SavedModels.

>>> weights = load_weights("model.safetensors")           # dict[str, np.ndarray]
>>> save_weights(weights, "out/", max_shard_bytes=5 << 30)  # HF folder, sharded like HF
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError, InvalidFileError
from coral.integrations.formats._common import Checkpoint, as_arrays, check_metadata_size
from coral.integrations.formats.hf_folder import read_folder, write_folder
from coral.integrations.formats.npz_format import read_npz, write_npz
from coral.integrations.formats.safetensors_format import (
    INDEX_SUFFIX,
    read_safetensors,
    read_sharded,
    write_sharded_or_single,
)
from coral.integrations.formats.torch_format import SUFFIXES as TORCH_SUFFIXES
from coral.integrations.formats.torch_format import read_torch, write_torch

__all__ = [
    "FORMATS",
    "READ_ONLY_FORMATS",
    "Checkpoint",
    "detect_format",
    "load_checkpoint",
    "load_weights",
    "save_weights",
]

FORMATS = ("safetensors", "pt", "npz", "hf")
"""Names accepted by `save_weights(format=...)`; "hf" is a model folder."""


READ_ONLY_FORMATS = ("onnx", "keras", "tf-savedmodel", "tf-checkpoint")
"""Formats `load_checkpoint` reads through the framework integrations (not written here)."""


def detect_format(path: str | Path) -> str:
    """The format a path names: "safetensors", "sharded" (an index file), "pt", "npz", "hf" (a
    folder, or a path without a suffix), or one of READ_ONLY_FORMATS."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(".keras"):
        return "keras"
    if p.is_dir() and (p / "saved_model.pb").is_file():
        return "tf-savedmodel"
    if name.endswith(".index") or (
        p.is_dir() and (p / "checkpoint").is_file() and not any(p.glob("*.safetensors"))
    ):
        return "tf-checkpoint"
    if p.is_dir():
        return "hf"
    if name.endswith(INDEX_SUFFIX) or name.endswith(".bin.index.json"):
        return "sharded"
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "pt"
    if suffix == ".npz":
        return "npz"
    if not suffix:
        return "hf"
    raise InvalidFileError(
        f"{p}: unknown checkpoint format {suffix!r}",
        hint="use .safetensors, .pt/.pth/.bin/.ckpt, .npz, .onnx, .keras, a TensorFlow "
        "checkpoint or SavedModel, or a Hugging Face model folder",
    )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Weights and metadata of a checkpoint file or folder (format from its name); metadata
    larger than MAX_METADATA_BYTES is refused (InvalidFileError)."""
    ckpt = _load_checkpoint(Path(path))
    check_metadata_size(ckpt.metadata, path)
    return ckpt


def _load_checkpoint(p: Path) -> Checkpoint:
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(p))
    fmt = detect_format(p)
    if fmt in READ_ONLY_FORMATS:
        return Checkpoint(_read_framework(p, fmt), {}, fmt, [p])
    if fmt == "hf":
        if not p.is_dir():
            raise InvalidFileError(
                f"{p}: not a checkpoint file (no suffix) nor a folder",
                hint="name the file with its format's suffix, e.g. .safetensors",
            )
        return read_folder(p)
    if fmt == "sharded":
        return (
            read_sharded(p)
            if p.name.lower().endswith(INDEX_SUFFIX)
            else read_sharded(p, read_torch)
        )
    if fmt == "safetensors":
        return read_safetensors(p)
    if fmt == "pt":
        return read_torch(p)
    return read_npz(p)


def _read_framework(path: Path, fmt: str) -> dict[str, np.ndarray]:
    """ONNX / Keras / TensorFlow weights, through the (lazily imported) framework integrations."""
    if fmt == "onnx":
        from coral.integrations.onnx_io import load_onnx_initializers

        return load_onnx_initializers(path)
    if fmt == "keras":
        from coral.integrations.keras import load_keras_file

        return load_keras_file(path)
    from coral.integrations import tensorflow_io

    if fmt == "tf-savedmodel":
        return tensorflow_io.load_saved_model(path)
    return tensorflow_io.load_tf_checkpoint(path)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint file or folder as numpy arrays, bit-exact."""
    return dict(load_checkpoint(path).weights)


def save_weights(
    weights: Mapping[str, np.ndarray | WeightTensor | Any],
    path: str | Path,
    format: str | None = None,
    max_shard_bytes: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write `weights` to `path` and return every file written.

    `format` is one of FORMATS (default: from the suffix; a folder or a path without suffix is an
    HF model folder). safetensors output larger than `max_shard_bytes` is split into HF-named
    shards plus an index. `metadata` goes into the safetensors header (and `metadata["config"]`
    into an HF folder's config.json); .pt and .npz keep tensors only.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt in READ_ONLY_FORMATS:
        raise CoralError(
            f"Coral reads {fmt} but does not write it here",
            hint="for ONNX use `coral export-onnx REF OUT --template MODEL.onnx`",
        )
    if fmt == "sharded":
        fmt = "safetensors"
    if fmt not in FORMATS:
        raise CoralError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    if max_shard_bytes is not None and fmt not in ("safetensors", "hf"):
        raise CoralError(
            f"cannot shard {fmt} output", hint="sharding is for safetensors and hf folders"
        )
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise CoralError(
            f"max_shard_bytes must be positive, not {max_shard_bytes}",
            hint="e.g. 5 << 30 for 5 GiB",
        )
    arrays = as_arrays(weights)
    if fmt == "hf" or (fmt == "safetensors" and p.is_dir()):
        return write_folder(arrays, p, metadata, max_shard_bytes)
    if fmt == "safetensors":
        return write_sharded_or_single(arrays, p, metadata, max_shard_bytes)
    if fmt == "pt":
        return [write_torch(arrays, p)]
    return [write_npz(arrays, p)]

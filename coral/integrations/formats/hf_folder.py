"""A Hugging Face model folder: `config.json` beside safetensors or `pytorch_model.bin` weights,
sharded (with an index) or not. The config is kept as metadata (`metadata["config"]`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral.errors import InvalidFileError
from coral.integrations.formats._common import Checkpoint, atomic_write
from coral.integrations.formats.npz_format import read_npz
from coral.integrations.formats.safetensors_format import (
    INDEX_SUFFIX,
    read_safetensors,
    read_sharded,
    write_sharded_or_single,
)
from coral.integrations.formats.torch_format import SUFFIXES as TORCH_SUFFIXES
from coral.integrations.formats.torch_format import read_torch

CONFIG = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _weights_reader(folder: Path) -> Checkpoint:
    """Read the folder's weights, in the order transformers looks for them."""
    candidates: list[tuple[str, Any]] = [
        (f"model{INDEX_SUFFIX}", read_sharded),
        (WEIGHTS_NAME, read_safetensors),
        ("pytorch_model.bin.index.json", lambda p: read_sharded(p, read_torch)),
        ("pytorch_model.bin", read_torch),
    ]
    for name, reader in candidates:
        if (folder / name).is_file():
            ckpt: Checkpoint = reader(folder / name)
            return ckpt
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    if len(indexes) == 1:
        return read_sharded(indexes[0])
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    single = [p for p in files if p.suffix == ".safetensors"]
    if not single:
        single = [p for p in files if p.suffix in (*TORCH_SUFFIXES, ".npz")]
    if len(single) == 1:
        p = single[0]
        if p.suffix == ".safetensors":
            return read_safetensors(p)
        return read_npz(p) if p.suffix == ".npz" else read_torch(p)
    found = ", ".join(p.name for p in single[:5]) or "no weight files"
    raise InvalidFileError(
        f"{folder}: cannot tell which weights to load ({found})",
        hint=f"expected {WEIGHTS_NAME}, model{INDEX_SUFFIX} or pytorch_model.bin; "
        "pass one file instead",
    )


def read_folder(folder: Path) -> Checkpoint:
    """Weights of a model folder, with `config.json` (if any) as `metadata["config"]`."""
    ckpt = _weights_reader(folder)
    config_path = folder / CONFIG
    if config_path.is_file():
        try:
            ckpt.metadata["config"] = json.loads(config_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidFileError(
                f"{config_path}: not valid JSON ({exc})", hint="fix or remove config.json"
            ) from exc
        ckpt.files.append(config_path)
    ckpt.format = "hf"
    return ckpt


def write_folder(
    arrays: Mapping[str, np.ndarray],
    folder: Path,
    metadata: Mapping[str, Any] | None = None,
    max_shard_bytes: int | None = None,
) -> list[Path]:
    """`model.safetensors` (or HF shards + index), and `config.json` when metadata has a config."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(metadata or {})
    config = meta.pop("config", None)
    written = write_sharded_or_single(
        arrays, folder / WEIGHTS_NAME, {"format": "pt", **meta}, max_shard_bytes
    )
    if isinstance(config, dict):
        with atomic_write(folder / CONFIG) as f:
            f.write(json.dumps(config, indent=2, sort_keys=True).encode() + b"\n")
        written.append(folder / CONFIG)
    return written

"""`coral export`: a commit's tensors (and model files) as a checkpoint file or model folder."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError
from coral.integrations.formats import FORMATS, detect_format, save_weights
from coral.integrations.formats._common import LazyArray
from coral.integrations.model_export import (
    store_loader,
    stream_weights,
    weights_header,
    write_model_files,
)
from coral.integrations.pytorch import model_weights
from coral.training.state import TRAINING_KEY
from coral.version_control.objects import FILE
from coral.version_control.repository import Repository

Advance = Callable[[int], None]


@dataclass
class ExportResult:
    commit_hash: str
    tensors: int
    bytes: int
    files: list[Path]  # every file written (weights, shards, index, model files)
    model_files: list[str]  # the commit's model files written beside the weights


def export_commit(
    repo: Repository,
    ref: str,
    path: Path,
    *,
    fmt: str | None = None,
    layers: str | None = None,
    max_shard_bytes: int | None = None,
    include_training_state: bool = False,
    progress: Advance | None = None,
) -> ExportResult:
    """Write the commit `ref` names, bit-exact. As a model folder (`hf`) it holds the weights
    and every model file of the commit (config.json, tokenizer files, ...), so
    `from_pretrained` loads it; a single file holds tensors only. For a training checkpoint,
    only the model's weights (tied ones under every name) unless `include_training_state`."""
    if fmt is not None and fmt not in FORMATS:
        raise CoralError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    commit = repo.get_commit(ref)
    stored = repo.get_all_weights(commit.commit_hash, lazy=True)
    chosen = (
        stored
        if include_training_state
        else model_weights(stored, commit.metadata.get(TRAINING_KEY))
    )
    if layers:
        chosen = {n: w for n, w in chosen.items() if fnmatch.fnmatchcase(n, layers)}
    if not chosen:
        held_back = any(fnmatch.fnmatchcase(n, layers or "*") for n in stored)
        raise CoralError(
            f"no {'model ' if held_back else ''}tensors to export from {ref}"
            + (f" matching {layers!r}" if layers else ""),
            hint=f"list the tensors with `coral show {ref}`"
            + (", or pass --include-training-state" if held_back else ""),
        )
    kind = fmt or detect_format(path)
    streamed = kind in ("hf", "safetensors", "sharded")
    arrays: dict[str, Any]
    if streamed:
        arrays = _chunked(
            stream_weights(chosen, store_loader(repo.store), progress), chosen, repo, progress
        )
    else:
        arrays = {}
        for name, w in chosen.items():
            arrays[name] = w.data
            if progress:
                progress(1)
    folder = kind == "hf"
    files = repo.list_files(commit.commit_hash) if folder else {}
    metadata = weights_header(commit.commit_hash, ref)
    if "config.json" not in files:  # commits made before model files were kept
        source = (commit.metadata.get("import") or {}).get("metadata") or {}
        if isinstance(source.get("config"), dict):
            metadata["config"] = source["config"]
    written = save_weights(
        arrays, path, format=fmt, max_shard_bytes=max_shard_bytes, metadata=metadata
    )
    names = {Path(p).resolve() for p in written}
    same_name = [rel for rel in files if (Path(path) / rel).resolve() in names]
    readers = {rel: _blob_reader(repo, e.blob_id) for rel, e in files.items()}
    # a weights file of the same name as a model file was just written: it stays
    written += [Path(path) / rel for rel in write_model_files(Path(path), readers, same_name)]
    total = sum(int(a.nbytes) for a in arrays.values())
    return ExportResult(commit.commit_hash, len(arrays), total, list(written), sorted(files))


def _chunked(
    arrays: dict[str, LazyArray],
    chosen: Mapping[str, WeightTensor],
    repo: Repository,
    progress: Advance | None,
) -> dict[str, LazyArray]:
    """The lazy arrays of `stream_weights`, each also readable chunk by chunk from the store
    (what the safetensors writer takes: a few chunks in memory, verified as they go)."""
    out = dict(arrays)
    for name, lazy in arrays.items():
        tid = chosen[name].metadata.hash
        if tid is not None:
            out[name] = LazyArray(
                lazy.dtype, lazy.shape, lazy.__array__, _chunks(repo, tid, progress)
            )
    return out


def _chunks(
    repo: Repository, tensor_id: str, progress: Advance | None
) -> Callable[[], Iterator[np.ndarray]]:
    def read() -> Iterator[np.ndarray]:
        yield from repo.store.iter_chunks(tensor_id)
        if progress:
            progress(1)

    return read


def _blob_reader(repo: Repository, blob_id: str) -> Callable[[], bytes]:
    return lambda: repo.store.get_blob(FILE, blob_id)


def config_of(repo: Repository, ref: str) -> dict[str, Any] | None:
    """The commit's `config.json` as a dict (None when it has none)."""
    files = repo.list_files(ref)
    if "config.json" not in files:
        return None
    data = json.loads(repo.store.get_blob(FILE, files["config.json"].blob_id))
    return data if isinstance(data, dict) else None

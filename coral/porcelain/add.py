"""Staging checkpoint files and model folders: what `coral add` and `coral import` do."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coral.errors import CoralError
from coral.integrations.formats._common import LazyTensors
from coral.porcelain.model_files import model_files
from coral.storage.stream_source import as_mapped
from coral.version_control.repository import Repository

BATCH_BYTES = 256 << 20  # tensors stored per pack (bounded memory while staging)
BATCH_TENSORS = 256
Advance = Callable[[int], None]


@dataclass
class LoadedCheckpoint:
    """One checkpoint read from a path: its tensors, format, files read, model files."""

    path: Path
    format: str
    weights: LazyTensors
    sources: list[Path]
    metadata: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class AddResult:
    """What staging changed: counts of new / modified / unchanged / removed tensors, and the
    model files staged."""

    counts: dict[str, int]
    tensors: int
    files: list[str]
    checkpoints: list[LoadedCheckpoint]

    def describe(self) -> str:
        parts = [f"{v} {k}" for k, v in self.counts.items() if v]
        if self.files:
            parts.append(f"{len(self.files)} model file{'s' if len(self.files) != 1 else ''}")
        return ", ".join(parts) or "nothing"


def load_paths(paths: Sequence[Path], prefix: str = "") -> list[LoadedCheckpoint]:
    """Read checkpoint files and model folders; tensor names must not collide across them."""
    from coral.integrations.formats import load_checkpoint

    seen: set[str] = set()
    out = []
    for path in paths:
        ckpt = load_checkpoint(path)
        weights = LazyTensors()  # read tensor by tensor while staging: memory stays bounded
        for name in ckpt.weights:
            full = prefix + name
            if full in seen:
                raise CoralError(
                    f"tensor {full!r} is in more than one of the given checkpoints",
                    hint="add them one at a time, or give each a --prefix",
                )
            seen.add(full)
            weights.take(name, ckpt.weights, full)
        files = model_files(Path(path)) if Path(path).is_dir() else {}
        out.append(
            LoadedCheckpoint(
                Path(path), ckpt.format, weights, list(ckpt.files), dict(ckpt.metadata), files
            )
        )
    return out


def add_paths(
    repo: Repository,
    paths: Sequence[Path],
    *,
    prefix: str = "",
    replace: bool = False,
    progress: Advance | None = None,
    loaded: list[LoadedCheckpoint] | None = None,
) -> AddResult:
    """Stage the tensors of checkpoint files / model folders (and a folder's model files:
    config.json, tokenizer files, ...). With `replace`, HEAD's tensors and files missing from
    them are staged for removal."""
    checkpoints = loaded if loaded is not None else load_paths(paths, prefix)
    weights = LazyTensors()
    for c in checkpoints:
        for name in c.weights:
            weights.take(name, c.weights)
    counts = stage_weights(repo, weights, progress)
    files = {p: f for c in checkpoints for p, f in c.files.items()}
    if files:
        repo.add_files(files)
    if replace:
        head = repo.get_tree("HEAD") if repo.head_commit() else None
        for name in sorted(set(head.entries if head else {}) - set(weights)):
            repo.remove_weight(name)
            counts["removed"] += 1
        if any(c.files for c in checkpoints):
            for path in sorted(set(head.files if head else {}) - set(files)):
                repo.remove_file(path)
    return AddResult(counts, len(weights), sorted(files), checkpoints)


def stage_weights(
    repo: Repository, weights: Mapping[str, np.ndarray], progress: Advance | None = None
) -> dict[str, int]:
    """Stage tensors in batches of at most BATCH_BYTES; counts new / modified / unchanged."""
    base = repo.get_tree("HEAD").entries if repo.head_commit() else {}
    counts = {"new": 0, "modified": 0, "unchanged": 0, "removed": 0}
    for batch in _batches(weights):
        ids = repo.add_all_weights(batch, progress=progress)
        for name, tid in ids.items():
            old = base.get(name)
            kind = "new" if old is None else "unchanged" if old.tensor_id == tid else "modified"
            counts[kind] += 1
    return counts


def _batches(weights: Mapping[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """Batches of tensors; one memory-mapped from its file (safetensors) goes as a
    `MappedTensor`, hashed and stored chunk by chunk with its pages dropped as it goes."""
    batch: dict[str, Any] = {}
    size = 0
    for name, arr in weights.items():
        batch[name] = as_mapped(arr, name)
        size += int(arr.nbytes)
        if size >= BATCH_BYTES or len(batch) >= BATCH_TENSORS:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch

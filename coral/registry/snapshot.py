"""`CommitSnapshot`: one commit's weights plus what a registry records about it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import coral
from coral.core.weight_tensor import WeightTensor
from coral.integrations.formats import save_weights
from coral.integrations.formats._common import atomic_write
from coral.integrations.model_export import (
    store_loader,
    stream_weights,
    weights_header,
    write_model_files,
)
from coral.integrations.pytorch import model_weights
from coral.training.state import TRAINING_KEY
from coral.version_control.objects import Commit
from coral.version_control.repository import Repository

METADATA_FILE = "coral_metadata.json"
WEIGHTS_STEM = "model"
EXPORT_FORMATS = ("safetensors", "pt", "npz")
DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3  # what Hugging Face uses by default


@dataclass
class CommitSnapshot:
    """A resolved commit: the ref it was asked for, the commit, its branch and tags, its weights."""

    ref: str
    commit: Commit
    branch: str | None
    tags: list[str]
    weights: dict[str, WeightTensor]
    tag_metrics: dict[str, Any] = field(default_factory=dict)
    coral_version: str = field(default=coral.__version__)
    files: dict[str, bytes] = field(default_factory=dict)  # the commit's model files by path
    loader: Callable[[WeightTensor], np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, repo: Repository, ref: str, *, include_training_state: bool = False
    ) -> CommitSnapshot:
        """Resolve `ref` in `repo` and read its weights (a CoralError if the ref is unknown).

        A training checkpoint's optimizer/scheduler/RNG/extra tensors are left out and its tied
        weights put back under every name (`model_weights`) unless `include_training_state`,
        which keeps the commit's tensors exactly as stored."""
        commit = repo.get_commit(ref)
        weights = repo.get_all_weights(commit.commit_hash, lazy=True)  # read when written
        if not include_training_state:
            weights = model_weights(weights, commit.metadata.get(TRAINING_KEY))
        tags = sorted(
            (t for t in repo.list_tags() if t.commit_hash == commit.commit_hash),
            key=lambda t: t.created_at,
        )
        tag_metrics: dict[str, Any] = {}
        for tag in tags:  # the newest tag wins
            tag_metrics.update(tag.metrics or {})
        return cls(
            ref=ref,
            commit=commit,
            branch=_branch_of(repo, ref, commit.commit_hash),
            tags=sorted(t.name for t in tags),
            weights=weights,
            tag_metrics=tag_metrics,
            files=repo.get_files(commit.commit_hash),
            loader=store_loader(repo.store),
        )

    # -- facts ---------------------------------------------------------------------------------
    @property
    def weight_count(self) -> int:
        return len(self.weights)

    @property
    def parameter_count(self) -> int:
        return sum(w.size for w in self.weights.values())

    @property
    def total_bytes(self) -> int:
        return sum(w.nbytes for w in self.weights.values())

    def dtype_counts(self) -> dict[str, int]:
        """dtype name -> number of tensors, most common first."""
        return dict(Counter(w.metadata.dtype_name for w in self.weights.values()).most_common())

    def metrics(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The commit's metrics, then its tags' metrics, overridden by `extra` (the ones passed
        to a publish call)."""
        return {**self.commit.metrics, **self.tag_metrics, **dict(extra or {})}

    def summary(self) -> dict[str, Any]:
        """What every PublishResult.metadata carries about the commit."""
        return {
            "commit_ref": self.ref,
            "commit_hash": self.commit.commit_hash,
            "branch": self.branch,
            "tags": list(self.tags),
            "weight_count": self.weight_count,
            "parameter_count": self.parameter_count,
            "total_bytes": self.total_bytes,
        }

    def coral_metadata(
        self, metrics: Mapping[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The content of `coral_metadata.json`."""
        c = self.commit
        return {
            "coral_version": self.coral_version,
            "commit": c.commit_hash,
            "commit_ref": self.ref,
            "parents": list(c.parent_hashes),
            "branch": self.branch,
            "tags": list(self.tags),
            "author": c.author,
            "message": c.message,
            "timestamp": c.datetime.isoformat(),
            "metrics": self.metrics(metrics),
            "commit_metadata": {k: v for k, v in c.metadata.items() if k not in ("metrics",)},
            "weight_count": self.weight_count,
            "parameter_count": self.parameter_count,
            "total_bytes": self.total_bytes,
            "dtypes": self.dtype_counts(),
            "exported_at": datetime.now().astimezone().isoformat(),
            **extra,
        }

    # -- writing -------------------------------------------------------------------------------
    def write_weights(
        self, folder: Path, format: str = "safetensors", max_shard_bytes: int | None = None
    ) -> list[Path]:
        """Write the weights into `folder` as `model.<format>` (safetensors sharded with an
        index above `max_shard_bytes`, as Hugging Face names them); returns the files."""
        path = folder / f"{WEIGHTS_STEM}.{format}"
        weights: Mapping[str, Any] = self.weights
        if self.loader is not None and format == "safetensors":  # streamed, one tensor at a time
            weights = stream_weights(self.weights, self.loader)
        if format == "safetensors":
            header = weights_header(self.commit.commit_hash, self.ref)
            return save_weights(
                weights, path, format, max_shard_bytes=max_shard_bytes, metadata=header
            )
        return save_weights(weights, path, format)

    def write_model_files(self, folder: Path, skip: Iterable[str] = ()) -> list[str]:
        """Write the commit's model files (config.json, tokenizer files, ...) into `folder`;
        returns their paths relative to it. Paths in `skip` are left to the caller."""
        readers = {rel: (lambda data=data: data) for rel, data in self.files.items()}
        return write_model_files(folder, readers, skip)

    @staticmethod
    def write_metadata(folder: Path, metadata: Mapping[str, Any]) -> Path:
        """Write `coral_metadata.json` into `folder`."""
        path = folder / METADATA_FILE
        with atomic_write(path) as f:
            f.write(json.dumps(metadata, indent=2, sort_keys=True, default=str).encode() + b"\n")
        return path


def _branch_of(repo: Repository, ref: str, commit_hash: str) -> str | None:
    """The branch a ref names: itself if it is a branch, HEAD's branch for HEAD, else a branch
    whose tip is the commit (the current one first)."""
    branches = repo.list_branches()
    if any(b.name == ref for b in branches):
        return ref
    current = repo.current_branch
    if ref == "HEAD" and current:
        return current
    tips = sorted(
        (b for b in branches if b.commit_hash == commit_hash),
        key=lambda b: (b.name != current, b.name),
    )
    return tips[0].name if tips else None

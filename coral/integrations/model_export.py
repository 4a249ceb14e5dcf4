"""Writing a commit out as model files: what `coral export` and every publisher share.

Weights stream from the store into the writer one tensor at a time (`stream_weights`), the
safetensors header names the commit the same way everywhere (`weights_header`), and a model
folder gets the commit's model files (config.json, tokenizer files, ...) beside the weights
(`write_model_files`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.integrations.formats._common import LazyArray, atomic_write

Advance = Callable[[int], None]
Loader = Callable[[WeightTensor], np.ndarray]


class TensorSource(Protocol):
    def load(self, tensor_id: str) -> WeightTensor: ...


def store_loader(store: TensorSource) -> Loader:
    """Read a stored tensor's values afresh (not kept in the WeightTensor: they go once written)."""

    def load(weight: WeightTensor) -> np.ndarray:
        tensor_id = weight.metadata.hash
        return weight.data if tensor_id is None else store.load(tensor_id).data

    return load


def stream_weights(
    weights: Mapping[str, WeightTensor], load: Loader, progress: Advance | None = None
) -> dict[str, LazyArray]:
    """Arrays that read each tensor through `load` when the writer reaches it, and let it go
    after (peak memory: about one tensor); `progress(1)` per tensor read."""

    def lazy(weight: WeightTensor) -> LazyArray:
        def read() -> np.ndarray:
            data = load(weight)
            if progress:
                progress(1)
            return data

        return LazyArray(weight.metadata.dtype, weight.metadata.shape, read)

    return {name: lazy(w) for name, w in weights.items()}


def weights_header(commit_hash: str, ref: str, **extra: Any) -> dict[str, Any]:
    """The safetensors header metadata of exported weights: which commit they are."""
    return {"format": "pt", "coral_commit": commit_hash, "coral_ref": ref, **extra}


def write_model_files(
    folder: Path,
    files: Mapping[str, Callable[[], bytes]],
    skip: Iterable[str] = (),
) -> list[str]:
    """Write model files (path -> reader of its bytes) into `folder`, atomically and readable
    by everyone (mode of a normal file); paths in `skip` are left out. Returns the paths."""
    skipped = set(skip)
    written = []
    for rel, read in sorted(files.items()):
        if rel in skipped:
            continue
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as f:
            f.write(read())
        written.append(rel)
    return written

"""Shared pieces of the checkpoint formats: the `Checkpoint` result, name checks, atomic writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.dtypes import canonical_array
from coral.core.tensor_checks import check_utf8_name
from coral.core.weight_tensor import WeightTensor
from coral.errors import InvalidFileError, InvalidNameError, UnsafeFileError
from coral.storage.atomic_file import atomic_write as atomic_write  # the one implementation


class LazyTensors(Mapping[str, np.ndarray]):
    """name -> array, each read from its file when asked for (and not kept): a reader streams
    a checkpoint bigger than memory tensor by tensor."""

    def __init__(self) -> None:
        self._loaders: dict[str, Callable[[], np.ndarray]] = {}
        self._sizes: dict[str, int] = {}

    def add(self, name: str, loader: Callable[[], np.ndarray], nbytes: int) -> None:
        self._loaders[name] = loader
        self._sizes[name] = nbytes

    def take(self, name: str, source: Mapping[str, np.ndarray], as_name: str | None = None) -> None:
        """Add `name` of another mapping (as `as_name`) without reading it if it is lazy."""
        target = as_name or name
        if isinstance(source, LazyTensors):
            self._loaders[target] = source._loaders[name]
            self._sizes[target] = source._sizes[name]
        else:
            value = source[name]
            self._loaders[target] = lambda: value
            self._sizes[target] = int(value.nbytes)

    def nbytes(self, name: str) -> int:
        """Size of a tensor without reading it."""
        return self._sizes[name]

    def __getitem__(self, name: str) -> np.ndarray:
        return self._loaders[name]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


class LazyArray:
    """An array described by dtype and shape, read only when its bytes are written (exports
    stream tensor by tensor); `np.asarray(lazy)` reads it, and nothing keeps it. With
    `chunks` (a function returning an iterator of flat uint8 arrays, in order) a writer that
    can takes its bytes chunk by chunk instead (`pieces()`), never the whole tensor at once."""

    def __init__(
        self,
        dtype: np.dtype,
        shape: tuple[int, ...],
        load: Callable[[], np.ndarray],
        chunks: Callable[[], Iterator[np.ndarray]] | None = None,
    ):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._load = load
        self._chunks = chunks

    def pieces(self) -> Iterator[np.ndarray] | None:
        """The bytes chunk by chunk (None: only whole, through `np.asarray`)."""
        return self._chunks() if self._chunks is not None else None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self._load()
        return arr if dtype is None else arr.astype(dtype)


def tensor_bytes(weights: Mapping[str, np.ndarray]) -> int:
    """Total size of a mapping's tensors (lazy ones not read)."""
    if isinstance(weights, LazyTensors):
        return sum(weights.nbytes(n) for n in weights)
    return sum(int(a.nbytes) for a in weights.values())


@dataclass
class Checkpoint:
    """What a checkpoint file or folder holds: named arrays plus free-form metadata."""

    weights: Mapping[str, np.ndarray]  # a LazyTensors for files read tensor by tensor
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str = ""
    files: list[Path] = field(default_factory=list)


MAX_METADATA_BYTES = 4 << 20
"""Bound on a checkpoint's non-tensor metadata (as JSON): it is copied into the commit object."""


def check_metadata_size(metadata: Mapping[str, Any], source: Path | str) -> None:
    """Refuse a checkpoint whose metadata (safetensors `__metadata__`, a .pt file's non-tensor
    values, config.json) is larger than MAX_METADATA_BYTES as JSON."""
    try:
        text = json.dumps(metadata, default=str, ensure_ascii=False)
    except (RecursionError, ValueError) as exc:
        raise InvalidFileError(f"{source}: its metadata cannot be stored as JSON ({exc})") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidFileError(
            f"{source}: its metadata holds text that is not valid Unicode (a lone surrogate)"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise InvalidFileError(
            f"{source}: its metadata is {size >> 20} MiB (at most {MAX_METADATA_BYTES >> 20} MiB)",
            hint="metadata is copied into every commit; keep large data in tensors or model files",
        )


def check_tensor_name(name: object, source: Path | str) -> str:
    """A tensor name read from a file: a non-empty string without control characters."""
    if not isinstance(name, str) or not name:
        raise InvalidFileError(f"{source}: tensor name {name!r} is not a non-empty string")
    check_utf8_name(name, f"{source}: tensor name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidNameError(f"{source}: tensor name {name!r} contains control characters")
    return name


def check_member_file(folder: Path, member: object, source: Path | str) -> Path:
    """A file named inside an index (a shard): a plain file name within `folder`, nothing else."""
    if (
        not isinstance(member, str)
        or not member
        or member in (".", "..")
        or "/" in member
        or "\\" in member
        or "\0" in member
        or Path(member).is_absolute()
    ):
        raise UnsafeFileError(
            f"{source}: shard file {member!r} is not a plain file name in {folder}",
            hint="an index may only name files in its own folder; do not load this checkpoint",
        )
    return folder / member


def as_array(value: Any, name: str) -> np.ndarray:
    """A little-endian C-contiguous numpy array from an array, WeightTensor or torch tensor."""
    if isinstance(value, WeightTensor):
        return value.data
    if isinstance(value, LazyArray):  # written by the safetensors writer as it goes
        return value  # type: ignore[return-value]
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return canonical_array(np.asarray(value))
    if type(value).__module__.startswith("torch"):
        from coral.integrations.torch_convert import torch_to_numpy

        return canonical_array(torch_to_numpy(value))
    raise TypeError(f"cannot save {type(value).__name__} as weight {name!r}")


def as_arrays(weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every value of `weights` as a canonical numpy array, names checked."""
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        out[check_tensor_name(name, "weights")] = as_array(value, name)
    return out


def raw_bytes(array: np.ndarray) -> memoryview:
    """The array's bytes without a copy (it must be C-contiguous)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data

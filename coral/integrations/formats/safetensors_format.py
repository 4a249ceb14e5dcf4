"""safetensors files, single and sharded (Hugging Face `*.safetensors.index.json`).

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw little-endian bytes. It is read and written here directly:
every dtype (bfloat16 and float8 included) stays bit-exact, and writing is one buffer per tensor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.dtypes import FROM_SAFETENSORS, SAFETENSORS_CODES, dtype_name, numpy_dtype
from coral.core.tensor_checks import (
    InvalidShapeError,
    checked_shape,
    element_count,
)
from coral.errors import InvalidFileError, UnsupportedDtypeError
from coral.integrations.formats._common import (
    Checkpoint,
    LazyArray,
    LazyTensors,
    atomic_write,
    check_member_file,
    check_tensor_name,
    raw_bytes,
)
from coral.storage.stream_source import map_range

SUFFIX = ".safetensors"
INDEX_SUFFIX = ".safetensors.index.json"
_MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors library itself enforces
_ALIGN = 8


# -- single file ---------------------------------------------------------------------------------
def _parse_header(path: Path, file_size: int, head: bytes) -> tuple[int, dict[str, Any]]:
    if file_size < 8 or len(head) < 8:
        raise InvalidFileError(f"{path}: {file_size} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER:
        raise InvalidFileError(f"{path}: safetensors header length {n} is too large")
    if 8 + n > file_size:
        raise InvalidFileError(
            f"{path}: truncated (header needs {n} bytes, file has {file_size - 8})"
        )
    try:
        header = json.loads(head[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidFileError(f"{path}: safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise InvalidFileError(f"{path}: safetensors header is not a JSON object")
    return 8 + n, header


def _entry(
    path: Path, name: str, info: Any, data_len: int
) -> tuple[np.dtype, tuple[int, ...], int, int]:
    if not isinstance(info, dict):
        raise InvalidFileError(f"{path}: header entry for {name!r} is not an object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if code not in FROM_SAFETENSORS:
        raise UnsupportedDtypeError(f"{path}: tensor {name!r} has unsupported dtype {code!r}")
    if not isinstance(shape, list):
        raise InvalidFileError(f"{path}: tensor {name!r} has invalid shape {shape!r}")
    try:
        dims = checked_shape(shape, f"{path}: tensor {name!r}")
    except InvalidShapeError as exc:
        raise InvalidFileError(exc.message) from None
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise InvalidFileError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
    dtype = numpy_dtype(FROM_SAFETENSORS[code])
    start, end = offsets
    expected = element_count(dims) * dtype.itemsize  # exact: no int64 overflow to 0
    if end - start != expected:
        raise InvalidFileError(
            f"{path}: tensor {name!r} spans {end - start} bytes but {code}{list(dims)} needs "
            f"{expected}"
        )
    if end > data_len:
        raise InvalidFileError(
            f"{path}: truncated (tensor {name!r} ends at byte {end}, data has {data_len})"
        )
    return dtype, dims, start, end


def read_safetensors(path: Path) -> Checkpoint:
    """Every tensor of one safetensors file, bit-exact; InvalidFileError on a damaged file."""
    with open(path, "rb") as f:
        file_size = f.seek(0, 2)
        f.seek(0)
        head = f.read(8)
        if len(head) == 8:
            (n,) = struct.unpack("<Q", head)
            head += f.read(min(n, _MAX_HEADER + 1))
        data_start, header = _parse_header(path, file_size, head)
        data_len = file_size - data_start
        raw_meta = header.pop("__metadata__", None) or {}
        if not isinstance(raw_meta, dict):
            raise InvalidFileError(f"{path}: __metadata__ is not an object")
        entries = []
        for name, info in header.items():
            check_tensor_name(name, path)
            entries.append((name, *_entry(path, name, info, data_len)))
        spans = sorted((start, end, name) for name, _, _, start, end in entries)
        for (_, prev_end, prev), (start, _, cur) in pairwise(spans):
            if start < prev_end:
                raise InvalidFileError(f"{path}: tensors {prev!r} and {cur!r} overlap")
        weights = LazyTensors()
        for name, dtype, shape, start, _end in entries:
            weights.add(name, _reader(path, dtype, shape, data_start + start), _end - start)
    return Checkpoint(weights, {str(k): v for k, v in raw_meta.items()}, "safetensors", [path])


def _reader(path: Path, dtype: Any, shape: Any, offset: int) -> Callable[[], np.ndarray]:
    """Maps one tensor read-only when called (`stream_source.map_range`): imports read it
    chunk by chunk, and its pages leave memory as they are stored."""

    def read() -> np.ndarray:
        try:
            return map_range(path, offset, dtype, shape)
        except OSError as exc:
            raise InvalidFileError(f"{path}: cannot map the tensor at {offset} ({exc})") from exc

    return read


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def write_safetensors(
    arrays: Mapping[str, np.ndarray], path: Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write one safetensors file (atomically). Tensors are laid out widest dtype first, so every
    tensor starts aligned to its element size, as the safetensors library does."""
    order = sorted(arrays, key=lambda k: -arrays[k].dtype.itemsize)  # stable: keeps name order
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): _header_value(v) for k, v in metadata.items()}
    offset = 0
    for name in order:
        arr = arrays[name]
        dt = dtype_name(arr.dtype)
        code = SAFETENSORS_CODES.get(dt)
        if code is None:
            raise UnsupportedDtypeError(
                f"safetensors cannot store {name!r} of dtype {dt}",
                hint="export to .pt or .npz instead, which keep every dtype",
            )
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % _ALIGN)
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in order:
            arr = arrays[name]
            if not arr.nbytes:
                continue
            pieces = arr.pieces() if isinstance(arr, LazyArray) else None
            if pieces is None:
                f.write(raw_bytes(arr))
                continue
            written = 0
            for piece in pieces:  # chunk by chunk, as the store decodes them
                f.write(piece.data)
                written += piece.nbytes
            if written != arr.nbytes:
                raise InvalidFileError(f"{name!r}: {written} bytes read, {arr.nbytes} expected")
    return path


# -- sharded -------------------------------------------------------------------------------------
def index_stem(path: Path) -> str:
    """`model` for `model.safetensors` or `model.safetensors.index.json`."""
    name = path.name
    for suffix in (INDEX_SUFFIX, SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_sharded(
    index_path: Path, read_shard: Callable[[Path], Checkpoint] = read_safetensors
) -> Checkpoint:
    """Every tensor named by a Hugging Face index (`*.safetensors.index.json`, or with
    `read_shard=read_torch` a `pytorch_model.bin.index.json`); shards must sit beside it."""
    try:
        index = json.loads(index_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidFileError(f"{index_path}: not a valid JSON index ({exc})") from exc
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise InvalidFileError(f"{index_path}: no weight_map in the index")
    folder = index_path.parent
    shards: dict[str, Checkpoint] = {}
    for shard in dict.fromkeys(weight_map.values()):
        shard_path = check_member_file(folder, shard, index_path)
        if not shard_path.is_file():
            raise InvalidFileError(f"{index_path}: shard {shard} is missing")
        shards[shard] = read_shard(shard_path)
    weights = LazyTensors()
    for name, shard in weight_map.items():
        check_tensor_name(name, index_path)
        if name not in shards[shard].weights:
            raise InvalidFileError(f"{index_path}: tensor {name!r} is not in shard {shard}")
        weights.take(name, shards[shard].weights)
    for shard, ckpt in shards.items():
        extra = set(ckpt.weights) - set(weights)
        if extra:
            raise InvalidFileError(
                f"{folder / shard}: tensors not in the index: {sorted(extra)[:3]}"
            )
    metadata: dict[str, Any] = {}
    for ckpt in shards.values():
        metadata.update(ckpt.metadata)
    index_meta = index.get("metadata")
    if isinstance(index_meta, dict):
        metadata.update({k: v for k, v in index_meta.items() if k != "total_size"})
    files = [index_path, *(c.files[0] for c in shards.values())]
    return Checkpoint(weights, metadata, "sharded", files)


def plan_shards(arrays: Mapping[str, np.ndarray], max_shard_bytes: int) -> list[list[str]]:
    """Split names in order into shards of at most `max_shard_bytes` (as Hugging Face does:
    a tensor larger than the limit gets a shard of its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, arr in arrays.items():
        if shards[-1] and size + arr.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += arr.nbytes
    return shards


def write_sharded_or_single(
    arrays: Mapping[str, np.ndarray],
    path: Path,
    metadata: Mapping[str, Any] | None = None,
    max_shard_bytes: int | None = None,
) -> list[Path]:
    """One file at `path`, or HF-named shards `STEM-00001-of-0000N.safetensors` beside an index
    `STEM.safetensors.index.json` when the tensors exceed `max_shard_bytes`."""
    stem = index_stem(path)
    folder = path.parent
    shards = plan_shards(arrays, max_shard_bytes) if max_shard_bytes else [list(arrays)]
    if len(shards) == 1 and not path.name.endswith(INDEX_SUFFIX):
        return [write_safetensors(arrays, folder / f"{stem}{SUFFIX}", metadata)]
    written: list[Path] = []
    weight_map: dict[str, str] = {}
    for i, names in enumerate(shards, start=1):
        shard_name = f"{stem}-{i:05d}-of-{len(shards):05d}{SUFFIX}"
        written.append(
            write_safetensors({n: arrays[n] for n in names}, folder / shard_name, metadata)
        )
        weight_map.update(dict.fromkeys(names, shard_name))
    index = {
        "metadata": {"total_size": sum(int(a.nbytes) for a in arrays.values())},
        "weight_map": weight_map,
    }
    index_path = folder / f"{stem}{INDEX_SUFFIX}"
    with atomic_write(index_path) as f:
        f.write(json.dumps(index, indent=2).encode() + b"\n")
    return [*written, index_path]

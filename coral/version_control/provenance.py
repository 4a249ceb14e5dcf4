"""Where a commit came from, as its metadata records it: `metadata["provenance"]`.

    {"base":     {"name": "bert-base-uncased", "source": "config.json"},
     "config":   {"path": "train.yaml", "bytes": 412, "blake3": "<hex>", "format": "yaml",
                  "content": {...parsed, or the text, when at most 64 KiB}},
     "datasets": [{"path": "data/", "bytes": 1048576, "files": 3, "hash": "<hex>"}]}

`base` is the model a fine-tune started from: a commit of this repository (`commit`, with the
`ref` it was given as), a name from outside (`name`: a Hub id, a path), or both (a training
run of a named model); `source` says who recorded it ("given" by the user, "config.json" of
a Hugging Face folder, "training" for a CheckpointManager run).
Hashes are BLAKE3-256: a file's is the plain BLAKE3 of its bytes (what `b3sum` prints); a
folder's hashes, in sorted order of their paths, each file's relative path, size and bytes.
Files are read in blocks, never whole.
"""

from __future__ import annotations

import json
import os
import struct
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import blake3

from coral.errors import CoralError

PROVENANCE_KEY = "provenance"
MAX_CONTENT_BYTES = 64 << 10  # a config above this is recorded by hash, path and size only
_BLOCK = 1 << 20
_DIR_DOMAIN = b"coral.dataset-dir.v1\0"
_CONFIG_DOMAIN = b"coral.config-mapping.v1\0"

Advance = Callable[[int], None]  # called with the bytes just hashed


class ProvenanceError(CoralError):
    default_hint = "--config takes a file, --dataset a file or folder (repeatable)"


def _hasher(size_hint: int) -> blake3.blake3:
    return blake3.blake3(max_threads=blake3.blake3.AUTO if size_hint >= 4 * _BLOCK else 1)


def _feed(h: blake3.blake3, path: Path, advance: Advance | None) -> None:
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
            if advance is not None:
                advance(len(block))


def _files_under(root: Path) -> list[tuple[str, Path, int]]:
    """(relative posix path, path, size) of every regular file under `root`, sorted by path."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            path = Path(folder, name)
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path, path.stat().st_size))
    return sorted(found)


def dataset_record(path: str | os.PathLike[str], advance: Advance | None = None) -> dict[str, Any]:
    """{"path", "bytes", "files", "hash"} of a dataset file or folder (BLAKE3, streamed)."""
    p = Path(path)
    if p.is_file():
        size = p.stat().st_size
        h = _hasher(size)
        _feed(h, p, advance)
        return {"path": str(path), "bytes": size, "files": 1, "hash": h.hexdigest()}
    if not p.is_dir():
        raise ProvenanceError(f"no dataset file or folder at {path}")
    files = _files_under(p)
    total = sum(size for _, _, size in files)
    h = _hasher(total)
    h.update(_DIR_DOMAIN)
    for rel, file, size in files:
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + struct.pack("<Q", size))
        _feed(h, file, advance)
    return {"path": str(path), "bytes": total, "files": len(files), "hash": h.hexdigest()}


def dataset_bytes(paths: Iterable[str | os.PathLike[str]]) -> int:
    """How many bytes hashing `paths` reads (for a progress bar); missing paths count 0."""
    total = 0
    for path in paths:
        p = Path(path)
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(size for _, _, size in _files_under(p))
    return total


def _parse(text: str, suffix: str) -> tuple[str, Any]:
    """(format, parsed content) of a config's text; ("text", text) when it does not parse."""
    try:
        if suffix == ".json":
            return "json", json.loads(text)
        if suffix == ".toml":
            return "toml", tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml  # optional: without PyYAML the text is kept

            return "yaml", yaml.safe_load(text)
    except Exception:  # a config that does not parse is still recorded, as text
        return "text", text
    return "text", text


def config_record(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The record of a training config: a file (JSON, YAML, TOML or text) or a mapping (the
    hyper-parameters a trainer was given). Content is kept when at most 64 KiB."""
    if isinstance(source, Mapping):
        content = jsonable(source)
        data = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        h = _hasher(len(data))
        h.update(_CONFIG_DOMAIN + data)
        record: dict[str, Any] = {"bytes": len(data), "blake3": h.hexdigest(), "format": "mapping"}
        if len(data) <= MAX_CONTENT_BYTES:
            record["content"] = content
        return record
    p = Path(source)
    if not p.is_file():
        raise ProvenanceError(f"no config file at {source}")
    size = p.stat().st_size
    h = _hasher(size)
    _feed(h, p, None)
    record = {"path": str(source), "bytes": size, "blake3": h.hexdigest()}
    if size <= MAX_CONTENT_BYTES:
        try:
            text = p.read_text("utf-8")
        except UnicodeDecodeError:
            record["format"] = "binary"
            return record
        fmt, content = _parse(text, p.suffix.lower())
        record.update(format=fmt, content=jsonable(content))
    return record


def base_record(
    name: str | None = None,
    commit: str | None = None,
    source: str = "given",
    ref: str | None = None,
) -> dict[str, Any]:
    """{"name", "ref", "commit", "source"} of a fine-tune's base: an outside `name`, and / or
    a `commit` of this repository (with the `ref` it was given as)."""
    record: dict[str, Any] = {}
    for key, value in (("name", name), ("ref", ref), ("commit", commit)):
        if value:
            record[key] = str(value)
    record["source"] = source
    return record


def provenance_metadata(
    *,
    base: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    datasets: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """`{"provenance": {...}}` to merge into a commit's metadata ({} when nothing is known)."""
    record: dict[str, Any] = {}
    if base:
        record["base"] = dict(base)
    if config:
        record["config"] = dict(config)
    sets = [dict(d) for d in datasets]
    if sets:
        record["datasets"] = sets
    return {PROVENANCE_KEY: record} if record else {}


def read_provenance(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A commit's provenance record ({} when it has none or it is not a mapping)."""
    record = metadata.get(PROVENANCE_KEY)
    return dict(record) if isinstance(record, Mapping) else {}


def jsonable(value: Any) -> Any:
    """Plain JSON values (numbers, strings, lists, dicts) for a config: tuples become lists,
    numpy scalars numbers, anything else its `str`."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)

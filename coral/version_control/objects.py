"""Immutable version-control objects: `Tree`, `Commit` and `Tag`, with canonical encodings.

Each encodes to sorted-key, compact, UTF-8 JSON and is stored as a blob of its kind ("tree",
"commit", "tag"); its id is `hash_blob(kind, encoding)` — so a commit's hash is its blob id.

Sizes are bounded (docs/FORMAT.md, "Object size bounds"): a tensor's metadata in a tree
(layer type, model name, extra) takes at most `MAX_METADATA_BYTES` of JSON (the bound
`coral.core.weight_tensor` checks when a tensor is staged), a tree at most `MAX_TREE_BYTES`, a
commit or tag at most `MAX_COMMIT_BYTES`. Writing more raises ObjectTooLargeError; reading a
larger object is reported as damage before it is parsed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coral.core.dtypes import numpy_dtype
from coral.core.hashing import hash_blob
from coral.core.units import human_bytes
from coral.core.weight_tensor import MAX_METADATA_BYTES, WeightMetadata
from coral.errors import CoralError, CorruptObjectError

TREE = "tree"
COMMIT = "commit"
TAG = "tag"
FILE = "file"  # a model's non-tensor file (config.json, tokenizer files, model card, ...)
OBJECT_FORMAT = 1
MAX_TREE_BYTES = 256 << 20
MAX_COMMIT_BYTES = 16 << 20  # a commit's (or tag's) message and metadata included


class ObjectTooLargeError(CoralError):
    """Metadata, a tree or a commit larger than the bound the format sets."""

    default_hint = (
        "metadata is for small facts (names, metrics, settings): store large data as tensors "
        "or model files"
    )


def _check_size(kind: str, size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ObjectTooLargeError(
            f"{what}: {human_bytes(size)} as JSON, more than the {human_bytes(limit)} a {kind} "
            "may hold"
        )


def _check_stored_size(kind: str, object_id: str, data: bytes, limit: int) -> None:
    """Damage unless a stored object is within its bound (checked before it is parsed)."""
    if len(data) > limit:
        raise CorruptObjectError(
            object_id, None, f"{kind} is {len(data)} bytes, larger than any {kind} ({limit} bytes)"
        )


def canonical_json(obj: Any) -> bytes:
    """Sorted-key, compact, UTF-8 JSON: the one encoding of an object."""
    return json.dumps(
        _jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    ).encode("utf-8")


def _jsonable(value: Any) -> Any:
    """Plain JSON types for numpy scalars/arrays, tuples, sets and paths inside metadata."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def _decode(kind: str, object_id: str, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptObjectError(object_id, None, f"{kind} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("type") != kind:
        raise CorruptObjectError(object_id, None, f"not a {kind} object")
    if int(obj.get("format", 0)) > OBJECT_FORMAT:
        raise CorruptObjectError(
            object_id,
            None,
            f"{kind} format {obj.get('format')} is newer than this Coral reads",
            hint="upgrade Coral",
        )
    return obj


@dataclass
class TreeEntry:
    """One named tensor in a tree: its id plus the metadata versioned with it."""

    name: str
    tensor_id: str
    shape: tuple[int, ...]
    dtype: str
    layer_type: str | None = None
    model_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def nbytes(self) -> int:
        """Logical (raw) size of the tensor in bytes."""
        n = 1
        for d in self.shape:
            n *= d
        return n * numpy_dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tensor": self.tensor_id,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layer_type": self.layer_type,
            "model_name": self.model_name,
            "extra": _jsonable(self.extra or {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TreeEntry:
        return cls(
            name=d["name"],
            tensor_id=d["tensor"],
            shape=tuple(d["shape"]),
            dtype=d["dtype"],
            layer_type=d.get("layer_type"),
            model_name=d.get("model_name"),
            extra=dict(d.get("extra") or {}),
        )

    def check_metadata_size(self) -> None:
        """ObjectTooLargeError unless the metadata fits `MAX_METADATA_BYTES`."""
        size = len(canonical_json([self.layer_type, self.model_name, self.extra or {}]))
        if size > MAX_METADATA_BYTES:
            raise ObjectTooLargeError(
                f"the metadata of tensor {self.name!r} is {size} bytes as JSON, more than the "
                f"{MAX_METADATA_BYTES} bytes a tensor's metadata may hold"
            )

    def same_content(self, other: TreeEntry | None) -> bool:
        """Same tensor and same metadata (what a commit would record)."""
        return other is not None and self.to_dict() == other.to_dict()

    def to_metadata(self) -> WeightMetadata:
        return WeightMetadata(
            name=self.name,
            shape=self.shape,
            dtype=numpy_dtype(self.dtype),
            layer_type=self.layer_type,
            model_name=self.model_name,
            extra=dict(self.extra),
            hash=self.tensor_id,
        )

    @classmethod
    def from_metadata(cls, meta: WeightMetadata, tensor_id: str) -> TreeEntry:
        """The entry of a tensor being committed (ObjectTooLargeError if its metadata is)."""
        entry = cls(
            name=meta.name,
            tensor_id=tensor_id,
            shape=meta.shape,
            dtype=meta.dtype_name,
            layer_type=meta.layer_type,
            model_name=meta.model_name,
            extra=_jsonable(dict(meta.extra or {})),
        )
        entry.check_metadata_size()
        return entry


@dataclass(frozen=True)
class FileEntry:
    """One model file in a tree: its relative path (`tokenizer/vocab.txt`), the blob holding
    its bytes, and its size."""

    path: str
    blob_id: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "blob": self.blob_id, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileEntry:
        return cls(path=str(d["path"]), blob_id=str(d["blob"]), size=int(d["size"]))


@dataclass
class Tree:
    """A snapshot: tensor name -> TreeEntry, plus the model's files by path (both encoded
    sorted; a tree without files encodes as it did before files existed)."""

    entries: dict[str, TreeEntry] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "type": TREE,
            "format": OBJECT_FORMAT,
            "entries": [self.entries[n].to_dict() for n in sorted(self.entries)],
        }
        if self.files:
            obj["files"] = [self.files[p].to_dict() for p in sorted(self.files)]
        data = canonical_json(obj)
        _check_size(TREE, len(data), MAX_TREE_BYTES, f"a tree of {len(self.entries)} tensors")
        return data

    @property
    def tree_id(self) -> str:
        return hash_blob(TREE, self.encode())

    @classmethod
    def decode(cls, data: bytes, object_id: str = "?") -> Tree:
        _check_stored_size(TREE, object_id, data, MAX_TREE_BYTES)
        obj = _decode(TREE, object_id, data)
        try:
            entries = [TreeEntry.from_dict(e) for e in obj["entries"]]
            files = [FileEntry.from_dict(f) for f in obj.get("files") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObjectError(object_id, None, f"malformed tree entry: {exc}") from exc
        return cls({e.name: e for e in entries}, {f.path: f for f in files})

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def tensor_ids(self) -> set[str]:
        return {e.tensor_id for e in self.entries.values()}


@dataclass
class Commit:
    """A commit: a tree, its parents, who/when/why, and free-form metadata (metrics, tags, lossy).

    `commit_hash` is the id of the commit's canonical encoding (filled in once stored or read).
    """

    tree_id: str
    parent_hashes: list[str]
    author: str
    timestamp: float  # seconds since the Unix epoch
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    commit_hash: str = ""

    # -- convenience ----------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        return self.commit_hash

    @property
    def short_hash(self) -> str:
        return self.commit_hash[:10]

    @property
    def parents(self) -> list[str]:
        return self.parent_hashes

    @property
    def is_merge(self) -> bool:
        return len(self.parent_hashes) > 1

    @property
    def datetime(self) -> datetime:
        """The commit time as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, tz=UTC)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("metrics") or {})

    @property
    def tags(self) -> list[str]:
        return list(self.metadata.get("tags") or [])

    @property
    def lossy(self) -> bool:
        """True when any tensor of this commit was stored with a lossy encoding."""
        return bool(self.metadata.get("lossy"))

    # -- encoding -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_hash": self.commit_hash,
            "tree": self.tree_id,
            "parents": list(self.parent_hashes),
            "author": self.author,
            "timestamp": self.timestamp,
            "datetime": self.datetime.isoformat(),
            "message": self.message,
            "metadata": _jsonable(self.metadata),
        }

    def encode(self) -> bytes:
        if not math.isfinite(self.timestamp):
            raise ValueError("commit timestamp must be finite")
        data = canonical_json(
            {
                "type": COMMIT,
                "format": OBJECT_FORMAT,
                "tree": self.tree_id,
                "parents": list(self.parent_hashes),
                "author": self.author,
                "timestamp": float(self.timestamp),
                "message": self.message,
                "metadata": self.metadata or {},
            }
        )
        _check_size(COMMIT, len(data), MAX_COMMIT_BYTES, "the commit's message and metadata")
        return data

    def compute_hash(self) -> str:
        return hash_blob(COMMIT, self.encode())

    @classmethod
    def decode(cls, data: bytes, object_id: str = "") -> Commit:
        _check_stored_size(COMMIT, object_id or "?", data, MAX_COMMIT_BYTES)
        obj = _decode(COMMIT, object_id or "?", data)
        try:
            return cls(
                tree_id=obj["tree"],
                parent_hashes=list(obj["parents"]),
                author=obj["author"],
                timestamp=float(obj["timestamp"]),
                message=obj["message"],
                metadata=dict(obj.get("metadata") or {}),
                commit_hash=object_id,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObjectError(object_id or "?", None, f"malformed commit: {exc}") from exc


@dataclass
class Tag:
    """An annotated tag: name, target commit, description, metrics, who and when."""

    name: str
    commit_hash: str
    description: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    tagger: str | None = None
    created_at: float = 0.0
    tag_id: str = ""

    @property
    def target(self) -> str:
        return self.commit_hash

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, tz=UTC)

    def encode(self) -> bytes:
        data = canonical_json(
            {
                "type": TAG,
                "format": OBJECT_FORMAT,
                "name": self.name,
                "target": self.commit_hash,
                "description": self.description,
                "metrics": self.metrics or {},
                "tagger": self.tagger,
                "created_at": float(self.created_at),
            }
        )
        _check_size(TAG, len(data), MAX_COMMIT_BYTES, "the tag's description and metrics")
        return data

    @classmethod
    def decode(cls, data: bytes, object_id: str = "") -> Tag:
        _check_stored_size(TAG, object_id or "?", data, MAX_COMMIT_BYTES)
        obj = _decode(TAG, object_id or "?", data)
        try:
            return cls(
                name=obj["name"],
                commit_hash=obj["target"],
                description=obj.get("description"),
                metrics=dict(obj.get("metrics") or {}),
                tagger=obj.get("tagger"),
                created_at=float(obj.get("created_at") or 0.0),
                tag_id=object_id,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObjectError(object_id or "?", None, f"malformed tag: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "commit_hash": self.commit_hash,
            "description": self.description,
            "metrics": _jsonable(self.metrics),
            "tagger": self.tagger,
            "created_at": self.created.isoformat(),
            "tag_id": self.tag_id,
        }


TagObject = Tag  # the stored form of a tag is the tag itself

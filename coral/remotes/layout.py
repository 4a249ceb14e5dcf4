"""A remote's layout on a byte backend: a format file, the same packs as a local store, refs.

    coral-remote.json      {"format": 1, "kind": "coral-remote", "default_branch": "main"}
    packs/<id>.pack        immutable packs (docs/FORMAT.md, "Packs"), uploaded whole
    refs/heads/<branch>    {"commit": <hash>}; replaced only by compare-and-swap (etag)
    refs/tags/<tag>        {"commit": <hash>, "tag": <tag object id or null>, ...}

Nothing is locked: packs are uploaded before the refs that need them, and each ref update is
a conditional write that fails when another client moved it first.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from coral.errors import RemoteError
from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    PreconditionFailedError,
    PutMode,
)
from coral.storage.pack import (
    PACK_DIR,
    PACK_SUFFIX,
    TAIL_SIZE,
    PackFormatError,
    index_length,
    parse_trailer,
)
from coral.storage.pack_index import Location

FORMAT_KEY = "coral-remote.json"
REMOTE_FORMAT = 1
REFS = "refs"


class RemoteFormatError(RemoteError):
    default_hint = "point the remote at an empty prefix or at one a Coral push created"


class NonFastForwardError(RemoteError):
    default_hint = "run `coral pull` first (or push with --force to overwrite the remote)"


@dataclass(frozen=True)
class RemoteRef:
    name: str  # "heads/main", "tags/v1"
    commit: str
    etag: str
    doc: dict[str, Any]


class RemoteLayout:
    """Reads and writes a remote's format file, pack index and refs."""

    def __init__(self, backend: Backend, url: str) -> None:
        self.backend = backend
        self.url = url
        self._index: dict[str, Location] = {}
        self._packs: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- format -------------------------------------------------------------------------------
    def read_format(self) -> dict[str, Any] | None:
        """The format document, None for an empty prefix; RemoteFormatError otherwise."""
        try:
            raw = self.backend.get(FORMAT_KEY)
        except KeyNotFoundError:
            if next(iter(self.backend.list("")), None) is not None:
                raise RemoteFormatError(
                    f"{self.url} holds files but is not a Coral remote (no {FORMAT_KEY})"
                ) from None
            return None
        try:
            doc = json.loads(raw)
            version = int(doc["format"])
        except (ValueError, KeyError, TypeError):
            raise RemoteFormatError(f"{self.url}: {FORMAT_KEY} is damaged") from None
        if version > REMOTE_FORMAT:
            raise RemoteFormatError(
                f"{self.url} was written by a newer Coral (remote format {version}, this Coral "
                f"reads {REMOTE_FORMAT})",
                hint="upgrade Coral to use this remote",
            )
        return dict(doc)

    def ensure_format(self, default_branch: str = "main") -> dict[str, Any]:
        doc = self.read_format()
        if doc is not None:
            return doc
        doc = {"format": REMOTE_FORMAT, "kind": "coral-remote", "default_branch": default_branch}
        try:
            self.backend.put(FORMAT_KEY, json.dumps(doc).encode(), PutMode.CREATE)
        except PreconditionFailedError:
            return self.read_format() or doc  # another client initialised it first
        return doc

    # -- packs --------------------------------------------------------------------------------
    def refresh_index(self) -> dict[str, Location]:
        """Object id -> location over every pack on the remote (trailers read once each)."""
        present = {
            info.key.rsplit("/", 1)[-1][: -len(PACK_SUFFIX)]: info.size
            for info in self.backend.list(PACK_DIR + "/")
            if info.key.endswith(PACK_SUFFIX)
        }
        with self._lock:
            for gone in [p for p in self._packs if p not in present]:
                del self._packs[gone]
                self._index = {k: v for k, v in self._index.items() if v.pack_id != gone}
        for pack_id, size in present.items():
            if pack_id in self._packs:
                continue
            contents = self._read_trailer(pack_id, size)
            with self._lock:
                self._packs[pack_id] = size
                for entry in contents.entries:
                    old = self._index.get(entry.object_id)
                    if old is None or old.sequence < contents.sequence:
                        self._index[entry.object_id] = Location(pack_id, contents.sequence, entry)
        return dict(self._index)

    def _read_trailer(self, pack_id: str, size: int):
        key = f"{PACK_DIR}/{pack_id}{PACK_SUFFIX}"
        try:
            tail = self.backend.get(key, max(0, size - TAIL_SIZE), TAIL_SIZE)
            length = index_length(tail, size)
            return parse_trailer(pack_id, self.backend.get(key, size - length, length), size)
        except PackFormatError as exc:
            raise RemoteError(
                f"damaged pack {key} on {self.url}: {exc}",
                hint="the remote's other packs are unaffected; push again to re-upload objects",
            ) from None

    def pack_sizes(self) -> dict[str, int]:
        return dict(self._packs)

    def read_records(self, pack_id: str, spans: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of several records of one pack, read in as few ranges as fit."""
        key = f"{PACK_DIR}/{pack_id}{PACK_SUFFIX}"
        ordered = sorted(set(spans))
        out: dict[tuple[int, int], bytes] = {}
        start, end, group = None, 0, []  # merge records closer than 1 MiB into one range
        for offset, length in [*ordered, (None, 0)]:
            if start is not None and (offset is None or offset > end + (1 << 20)):
                blob = self.backend.get(key, start, end - start)
                for o, n in group:
                    out[(o, n)] = blob[o - start : o - start + n]
                start, group = None, []
            if offset is None:
                break
            if start is None:
                start, end = offset, offset
            end = max(end, offset + length)
            group.append((offset, length))
        return [out[s] for s in spans]

    # -- refs ---------------------------------------------------------------------------------
    def list_refs(self) -> dict[str, RemoteRef]:
        refs = {}
        for info in self.backend.list(REFS + "/"):
            name = info.key[len(REFS) + 1 :]
            ref = self.get_ref(name)
            if ref is not None:
                refs[name] = ref
        return refs

    def get_ref(self, name: str) -> RemoteRef | None:
        key = f"{REFS}/{name}"
        try:
            etag = self.backend.stat(key).etag
            raw = self.backend.get(key)
        except KeyNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            commit = str(doc["commit"])
        except (ValueError, KeyError, TypeError):
            raise RemoteFormatError(f"{self.url}: ref {name} is damaged") from None
        return RemoteRef(name, commit, etag, doc)

    def set_ref(self, name: str, doc: dict[str, Any], expected: RemoteRef | None) -> None:
        """Compare-and-swap a ref: it must still be `expected` (None: must not exist)."""
        data = json.dumps(doc, sort_keys=True).encode()
        key = f"{REFS}/{name}"
        try:
            if expected is None:
                self.backend.put(key, data, PutMode.CREATE)
            else:
                self.backend.put(key, data, PutMode.IF_MATCH, if_match=expected.etag)
        except PreconditionFailedError:
            raise NonFastForwardError(
                f"rejected {name}: another push moved it on {self.url} meanwhile"
            ) from None

    def delete_ref(self, name: str) -> bool:
        try:
            return self.backend.delete(f"{REFS}/{name}")
        except BackendError:
            return False

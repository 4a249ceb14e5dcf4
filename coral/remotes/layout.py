"""A remote's layout on a byte backend: a format file, the same packs as a local store, refs.

    coral-remote.json      {"format": 1, "kind": "coral-remote", "default_branch": "main"}
    packs/<id>.pack        immutable packs (docs/FORMAT.md, "Packs"), uploaded whole
    refs/heads/<branch>    {"commit": <hash>}; replaced only by compare-and-swap (etag)
    refs/tags/<tag>        {"commit": <hash>, "tag": <tag object id or null>, ...}

Nothing is locked: packs are uploaded before the refs that need them, and each ref update is
a conditional write that fails when another client moved it first.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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
    PackContents,
    PackFormatError,
    index_length,
    parse_trailer,
)
from coral.storage.pack_index import Location

FORMAT_KEY = "coral-remote.json"
REMOTE_FORMAT = 1
REFS = "refs"
STREAMS = 8
TRAILER_GUESS = 64 << 10  # bytes read from a pack's end, enough for ~500 entries


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

    def __init__(self, backend: Backend, url: str, cache_dir: Path | None = None) -> None:
        self.backend = backend
        self.url = url
        self.cache_dir = cache_dir  # where pack trailers read before are kept (packs never change)
        self._index: dict[str, Location] = {}
        self._packs: dict[str, int] = {}
        self._format: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # -- format -------------------------------------------------------------------------------
    def read_format(self, *, cached: bool = False) -> dict[str, Any] | None:
        """The format document, None for an empty prefix; RemoteFormatError otherwise
        (`cached`: the one read before, if any)."""
        if cached and self._format is not None:
            return dict(self._format)
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
        self._format = dict(doc)
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
        new = [(p, n) for p, n in present.items() if p not in self._packs]
        with ThreadPoolExecutor(STREAMS, thread_name_prefix="coral-index") as pool:
            for (pack_id, size), contents in zip(
                new, pool.map(lambda pn: self._trailer(*pn), new), strict=True
            ):
                with self._lock:
                    self._packs[pack_id] = size
                    for entry in contents.entries:
                        old = self._index.get(entry.object_id)
                        if old is None or old.sequence < contents.sequence:
                            self._index[entry.object_id] = Location(
                                pack_id, contents.sequence, entry
                            )
        return dict(self._index)

    def _trailer(self, pack_id: str, size: int) -> PackContents:
        """A pack's trailer: from the local cache, else one ranged read of the pack's end
        (a second one when the trailer is longer than the first guess)."""
        key = f"{PACK_DIR}/{pack_id}{PACK_SUFFIX}"
        cached = self._cache_path(pack_id, size)
        try:
            if cached is not None and cached.is_file():
                try:
                    return parse_trailer(pack_id, cached.read_bytes(), size)
                except PackFormatError:
                    cached.unlink(missing_ok=True)
            guess = min(size, TRAILER_GUESS)
            end = self.backend.get(key, size - guess, guess)
            length = index_length(end[-TAIL_SIZE:], size)
            block = (
                end[-length:] if length <= guess else self.backend.get(key, size - length, length)
            )
            contents = parse_trailer(pack_id, block, size)
        except PackFormatError as exc:
            raise RemoteError(
                f"damaged pack {key} on {self.url}: {exc}",
                hint="the remote's other packs are unaffected; push again to re-upload objects",
            ) from None
        if cached is not None:
            _write_quietly(cached, block)
        return contents

    def _cache_path(self, pack_id: str, size: int) -> Path | None:
        if self.cache_dir is None or not pack_id.isalnum():
            return None
        return self.cache_dir / f"{pack_id}-{size}.trailer"

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
        names = [info.key[len(REFS) + 1 :] for info in self.backend.list(REFS + "/")]
        with ThreadPoolExecutor(STREAMS, thread_name_prefix="coral-refs") as pool:
            found = list(pool.map(self.get_ref, names))
        return {n: r for n, r in zip(names, found, strict=True) if r is not None}

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


def _write_quietly(path: Path, data: bytes) -> None:
    """Keep a cache file (written whole, then renamed); a cache that cannot be written is
    only slower, never an error."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

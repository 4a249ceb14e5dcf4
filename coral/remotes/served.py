"""`ServedBackend`: a repository seen as a remote, what `coral serve --remote` serves over HTTP.

It is a byte backend whose keys are the remote layout (docs/FORMAT.md, "Remote layout"),
made from the repository itself, so that no copy of it is kept:

    coral-remote.json   from the repository (its default branch is HEAD's)
    refs/heads/<b>      {"commit": ...} of each branch; refs/tags/<t> of each tag
    packs/<id>.pack     the repository's own packs, and those pushes uploaded

A push's packs land in `.coral/incoming/` (a quarantine, as git's receive-pack has): nothing in
the repository changes until a ref update names a commit. Then the commit's closure is read
from there, every object verified against its BLAKE3 name and installed into the repository's
store, and only then is the branch moved by compare-and-swap (the ref's etag is a hash of its
document; a move by a local `coral commit` meanwhile fails the update: 412). What the update took
in leaves the quarantine; packs of pushes that never moved a ref go after a day. Every other
write (other keys, deleting packs, a remote gc) is refused: the repository collects its own
garbage (`coral gc` where it lives).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from coral.core.hashing import is_hash
from coral.errors import ConcurrentUpdateError, CoralError, RefNotFoundError, RemoteError
from coral.remotes import transfer
from coral.remotes.config import RemoteConfig
from coral.remotes.graph import ObjectSet, commit_closure, tag_objects
from coral.remotes.layout import FORMAT_KEY, REFS, REMOTE_FORMAT, TRAILER_GUESS
from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    LocalBackend,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
    check_key,
)
from coral.storage.pack import PACK_DIR, PACK_SUFFIX, TAIL_SIZE, PackFormatError, index_length
from coral.storage.pack import parse_trailer as _parse_trailer
from coral.version_control import audit
from coral.version_control.objects import COMMIT, FILE, TAG, Tag
from coral.version_control.refnames import check_name

if TYPE_CHECKING:
    from coral.remotes.remote import Remote
    from coral.version_control.repository import Repository

INCOMING_DIR = "incoming"
STALE_INCOMING = 24 * 3600.0  # seconds an unused uploaded pack is kept
_PACKS = PACK_DIR + "/"
_REFS = REFS + "/"


class NotServedError(RemoteError):
    """A write the served repository never accepts over HTTP (answered 403)."""

    default_hint = "run the operation on the server's repository itself"


class BadRequestError(BackendError):
    """A write whose body is not what the key needs (not a pack, not a ref document): 400."""

    default_hint = "push with Coral: it writes packs and ref documents as docs/FORMAT.md says"


class RefusedError(RemoteError):
    """A ref update the repository refused: objects missing or damaged, HEAD's branch (409)."""

    default_hint = "push again from a complete repository (`coral fsck` checks yours)"


class ServedBackend(Backend):
    """The remote layout of `repo`, read from it; pushes received into it (see the module)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.packs = repo.store.backend
        self.incoming = LocalBackend(repo.coral_dir / INCOMING_DIR)
        self._lock = threading.Lock()  # one ref update at a time
        self._who = threading.local()
        self._source: Remote | None = None

    def describe(self) -> str:
        return f"the repository at {self.repo.path}"

    @contextlib.contextmanager
    def acting_as(self, actor: str) -> Iterator[None]:
        """Name who moves refs in this thread: the reflog says `push by NAME over HTTP`, the
        audit log's ref entries name NAME as the actor."""
        self._who.actor = actor
        try:
            with audit.acting_as(actor):
                yield
        finally:
            self._who.actor = None

    # -- the view -----------------------------------------------------------------------------
    def _format_doc(self) -> bytes:
        branch = self.repo.refs.head().branch or str(
            self.repo.config.get("core", {}).get("default_branch", "main")
        )
        doc = {"default_branch": branch, "format": REMOTE_FORMAT, "kind": "coral-remote"}
        return json.dumps(doc, sort_keys=True).encode()

    def _ref_doc(self, name: str) -> bytes | None:
        """The document of ref `name` (`heads/main`, `tags/v1`), None when there is none."""
        kind, _, short = name.partition("/")
        if kind == "heads":
            tip = self.repo.refs.branch_tip(short)
            return _dump({"commit": tip}) if tip else None
        if kind == "tags":
            tag = self.repo.refs.get_tag(short)
            return _dump(_tag_doc(tag)) if tag is not None else None
        return None

    def _ref_docs(self) -> dict[str, bytes]:
        docs = {f"heads/{b.name}": _dump({"commit": b.commit}) for b in self.repo.list_branches()}
        docs.update({f"tags/{t.name}": _dump(_tag_doc(t)) for t in self.repo.list_tags()})
        return docs

    def _synthetic(self, key: str) -> bytes | None:
        if key == FORMAT_KEY:
            return self._format_doc()
        if key.startswith(_REFS):
            return self._ref_doc(key[len(_REFS) :])
        return None

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_key(key)
        if _is_pack(key):
            try:
                return self.packs.get(key, offset, length)
            except KeyNotFoundError:
                return self.incoming.get(key, offset, length)
        data = self._synthetic(key)
        if data is None:
            raise KeyNotFoundError(f"{key} is not in {self.describe()}")
        return data[offset:] if length is None else data[offset : offset + length]

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        if _is_pack(key):
            try:
                return self.packs.stat(key)
            except KeyNotFoundError:
                return self.incoming.stat(key)
        data = self._synthetic(key)
        if data is None:
            raise KeyNotFoundError(f"{key} is not in {self.describe()}")
        return _doc_info(key, data)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found: dict[str, ObjectInfo] = {}
        if _overlaps(prefix, FORMAT_KEY):
            found[FORMAT_KEY] = _doc_info(FORMAT_KEY, self._format_doc())
        if _overlaps(prefix, _PACKS):
            for backend in (self.incoming, self.packs):  # the repository's own win
                for info in backend.list(_PACKS):
                    if _is_pack(info.key):
                        found[info.key] = info
        if _overlaps(prefix, _REFS):
            for name, doc in self._ref_docs().items():
                found[_REFS + name] = _doc_info(_REFS + name, doc)
        return iter([found[k] for k in sorted(found) if k.startswith(prefix)])

    # -- writes -------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        if _is_pack(key):
            return self._receive_pack(key, bytes(data), mode)
        if key.startswith(_REFS):
            return self._update_ref(key[len(_REFS) :], bytes(data), mode, if_match)
        if key == FORMAT_KEY and mode is PutMode.CREATE:
            raise PreconditionFailedError(f"{key} exists: the repository is a remote already")
        if key.startswith("locks/"):
            raise NotServedError(
                "a served repository is not collected remotely (no `coral remote gc`)",
                hint="run `coral gc` in the repository on the server",
            )
        raise NotServedError(f"{key} cannot be written on a served repository")

    def delete(self, key: str) -> bool:
        check_key(key)
        if _is_pack(key):
            raise NotServedError(
                "packs of a served repository are never deleted remotely",
                hint="run `coral gc` in the repository on the server",
            )
        if key.startswith(_REFS):
            return self._delete_ref(key[len(_REFS) :])
        return False  # nothing else is stored

    def _receive_pack(self, key: str, data: bytes, mode: PutMode) -> ObjectInfo:
        """Keep an uploaded pack in the quarantine once its trailer reads back."""
        _check_pack(key, data)
        if self.packs.exists(key):
            if mode is not PutMode.OVERWRITE:
                raise PreconditionFailedError(f"{key} already exists")
            return self.packs.stat(key)  # packs never change: it holds these objects already
        if mode is PutMode.IF_MATCH:
            raise NotServedError("packs are written once, never compare-and-swapped")
        return self.incoming.put(key, data, mode)

    def _update_ref(
        self, name: str, data: bytes, mode: PutMode, if_match: str | None
    ) -> ObjectInfo:
        kind, short = _split_ref(name)
        try:
            doc = json.loads(data)
            commit = str(doc["commit"])
        except (ValueError, KeyError, TypeError):
            raise BadRequestError(f"refs/{name}: not a ref document") from None
        if not is_hash(commit):
            raise BadRequestError(f"refs/{name}: {commit[:80]!r} is not a commit hash")
        tag_id = str(doc.get("tag") or "") if kind == "tags" else ""
        with self._lock, self.repo.write_lock():  # no gc between receiving and the move
            current = self._ref_doc(name)
            etag = _etag(current) if current is not None else None
            if mode is PutMode.CREATE or (mode is PutMode.IF_MATCH and if_match is None):
                if current is not None:
                    raise PreconditionFailedError(f"refs/{name} already exists")
            elif mode is PutMode.IF_MATCH and etag != if_match:
                raise PreconditionFailedError(f"refs/{name} changed (etag {etag})")
            old = json.loads(current)["commit"] if current is not None else None
            try:
                self.receive(commit, tag_id or None)
            except (CoralError, BackendError) as exc:
                raise RefusedError(f"rejected {_display(name)}: {exc.message}") from None
            message = f"push by {getattr(self._who, 'actor', None) or 'a client'} over HTTP"
            if kind == "heads":
                self._move_branch(short, commit, old, message)
            else:
                self._set_tag(short, commit, tag_id, doc, current is not None)
            self._drop_received()
            new = self._ref_doc(name)
        assert new is not None
        return _doc_info(_REFS + name, new)

    def _move_branch(self, branch: str, commit: str, old: str | None, message: str) -> None:
        if old == commit:
            return
        try:
            self.repo.fast_forward(branch, commit, old, message)
        except ConcurrentUpdateError:
            raise PreconditionFailedError(f"refs/heads/{branch} moved meanwhile") from None

    def _set_tag(
        self, name: str, commit: str, tag_id: str, doc: dict[str, Any], replace: bool
    ) -> None:
        if tag_id:
            tag = Tag.decode(self.repo.store.get_blob(TAG, tag_id), tag_id)
            if tag.commit_hash != commit or tag.name != name:
                raise RefusedError(f"rejected tags/{name}: its tag object names another tag")
        with self.repo.write_lock():
            if replace:
                self.repo.delete_tag(name)
            self.repo.adopt_tag(name, commit, tag_id or None, doc)

    def _delete_ref(self, name: str) -> bool:
        kind, short = _split_ref(name)
        with self._lock:
            try:
                if kind == "heads":
                    self.repo.delete_branch(short, force=True)
                else:
                    self.repo.delete_tag(short)
            except RefNotFoundError:
                return False
            except CoralError as exc:  # e.g. HEAD is on that branch
                raise RefusedError(f"cannot delete {_display(name)}: {exc.message}") from None
        return True

    # -- receiving ----------------------------------------------------------------------------
    def _remote(self) -> Remote:
        """The quarantine and the repository read as one remote (trailers read once each)."""
        if self._source is None:
            from coral.remotes.remote import Remote

            url = (self.repo.coral_dir / INCOMING_DIR).as_uri()
            self._source = Remote(RemoteConfig("incoming", url), backend=self)
            self._source.layout.cache_dir = self.repo.coral_dir / "cache" / "served"
        return self._source

    def receive(self, commit: str, tag_id: str | None = None) -> int:
        """Verify and install every object `commit` (and a tag object) needs that the
        repository lacks; returns how many objects were installed."""
        store = self.repo.store
        layout = self._remote().layout
        index = layout.refresh_index()
        fetched: dict[str, bytes] = {}

        def read(kind: str, oid: str) -> bytes:
            if oid not in fetched:
                if store.has_blob(kind, oid):
                    return store.get_blob(kind, oid)
                fetched.update(transfer.download_blobs(layout, index, [oid]))
            return fetched[oid]

        needed = ObjectSet()
        with self.repo.write_lock():  # keeps a gc away until a ref names what it installs
            trees = commit_closure([commit], read, lambda c: store.has_blob(COMMIT, c), needed)
            tag_objects([tag_id or ""], read, needed)
            files = [o for k, o in needed.items() if k == FILE and not store.has_blob(k, o)]
            fetched.update(transfer.download_blobs(layout, index, files))
            tensors = [e.tensor_id for t in trees for e in t.entries.values()]
            self._remote().fetch_tensors(self.repo, tensors)  # verified chunk by chunk
            store.install([(k, o, fetched[o]) for k, o in needed.items() if o in fetched])
        return len(needed)

    def _drop_received(self) -> None:
        """Delete uploaded packs whose every object the repository now has, and those older
        than STALE_INCOMING (pushes that never moved a ref)."""
        store = self.repo.store
        cutoff = time.time() - STALE_INCOMING
        for info in self.incoming.list(_PACKS):
            try:
                tail = self.incoming.get(info.key, max(0, info.size - TRAILER_GUESS))
                length = index_length(tail[-TAIL_SIZE:], info.size)
                block = tail if length <= len(tail) else self.incoming.get(info.key)
                entries = _parse_trailer(_pack_id(info.key), block, info.size).entries
                done = all(store.has_blob(e.kind, e.object_id) for e in entries)
            except (BackendError, PackFormatError):
                done = False
            if done or info.mtime < cutoff:
                self.incoming.delete(info.key)


def _split_ref(name: str) -> tuple[str, str]:
    kind, _, short = name.partition("/")
    if kind not in ("heads", "tags") or not short:
        raise NotServedError(f"refs/{name} is not a branch or a tag")
    check_name(short, "branch" if kind == "heads" else "tag")
    return kind, short


def _check_pack(key: str, data: bytes) -> Any:
    """The trailer of an uploaded pack; BadRequestError when it is none."""
    try:
        length = index_length(data[-TAIL_SIZE:], len(data))
        return _parse_trailer(_pack_id(key), data[-length:], len(data))
    except PackFormatError as exc:
        raise BadRequestError(f"{key} is not a Coral pack: {exc}") from None


def _pack_id(key: str) -> str:
    return key[len(_PACKS) : -len(PACK_SUFFIX)]


def _is_pack(key: str) -> bool:
    name = key[len(_PACKS) :]
    return key.startswith(_PACKS) and name.endswith(PACK_SUFFIX) and "/" not in name


def _overlaps(prefix: str, key_or_folder: str) -> bool:
    return key_or_folder.startswith(prefix) or prefix.startswith(key_or_folder)


def _tag_doc(tag: Tag) -> dict[str, Any]:
    return {
        "commit": tag.commit_hash,
        "tag": tag.tag_id or None,
        "description": tag.description,
        "metrics": tag.metrics or {},
    }


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True).encode()


def _etag(doc: bytes) -> str:
    return "r" + hashlib.sha256(doc).hexdigest()[:32]


def _doc_info(key: str, doc: bytes) -> ObjectInfo:
    return ObjectInfo(key, len(doc), _etag(doc), time.time())


def _display(name: str) -> str:
    return name[len("heads/") :] if name.startswith("heads/") else name

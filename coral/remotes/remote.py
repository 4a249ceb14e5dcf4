"""`Remote`: push, fetch and pull a repository's history to and from a byte backend.

Push order (DESIGN §4b): packs of chunks and tensors, then a pack of trees, tags and commits,
then each ref by compare-and-swap — a push killed at any point leaves the remote readable, and
the next one uploads only what is still missing. Fetches verify every object against its BLAKE3
name before it is stored, and move remote-tracking refs (`origin/main`) only afterwards.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.errors import CoralError, RemoteError
from coral.remotes import transfer
from coral.remotes.backends import open_backend
from coral.remotes.config import RemoteConfig, RemoteConfigError, RemoteConfigs, redact_url
from coral.remotes.graph import ObjectSet, commit_closure, tag_objects, tensor_closure
from coral.remotes.layout import NonFastForwardError, RemoteLayout, RemoteRef
from coral.remotes.lazy import RemoteSource, promise
from coral.remotes.remote_gc import DEFAULT_GRACE, RemoteGCResult, collect, gc_locked
from coral.remotes.transfer import Progress
from coral.storage.backend import Backend, BackendError
from coral.storage.base import CHUNK, TENSOR
from coral.storage.manifest import TensorManifest
from coral.storage.pack_index import Location
from coral.storage.pack_store import PackStore as _PackStore
from coral.version_control.audit import AuditNote, audited
from coral.version_control.objects import COMMIT, FILE, TAG, TREE

if TYPE_CHECKING:
    from coral.storage.pack_store import PackStore
    from coral.version_control.repository import Repository

__all__ = ["PullResult", "PushResult", "Remote", "RemoteConfig", "RemoteManager"]


@dataclass
class PushResult:
    pushed_weights: int = 0  # tensors uploaded
    pushed_objects: int = 0
    pushed_commits: int = 0
    bytes_transferred: int = 0
    skipped_objects: int = 0  # needed but already on the remote
    refs: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # name: (old, new)
    errors: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.errors


@dataclass
class PullResult:
    pulled_weights: int = 0  # tensors downloaded
    pulled_objects: int = 0
    pulled_commits: int = 0
    bytes_transferred: int = 0
    refs: dict[str, str] = field(default_factory=dict)  # tracking ref: commit
    updated_branch: str | None = None  # the local branch a pull moved (fast-forward)
    errors: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.errors


class Remote:
    """A remote repository on S3, GCS, Azure Blob or a folder."""

    def __init__(self, config: RemoteConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.name = config.name
        self.backend = backend or open_backend(config)
        self.layout = RemoteLayout(self.backend, redact_url(config.url))

    @classmethod
    def from_config(cls, config: RemoteConfig) -> Remote:
        return cls(config)

    def __repr__(self) -> str:
        return f"Remote({self.name!r}, {redact_url(self.config.url)!r})"

    def gc(
        self,
        *,
        grace_seconds: float = DEFAULT_GRACE,
        dry_run: bool = False,
        repo: Repository | None = None,
    ) -> RemoteGCResult:
        """Delete the remote's packs that no ref needs (older than `grace_seconds`); recorded
        as `remote-gc` in `repo`'s audit log when one is given (a dry run changes nothing and
        is not recorded)."""
        if repo is None or dry_run:
            return collect(self.layout, grace_seconds=grace_seconds, dry_run=dry_run)
        with self._audited(repo, "remote-gc", grace_seconds=grace_seconds) as note:
            result = collect(self.layout, grace_seconds=grace_seconds, dry_run=False)
            note.detail.update(packs_deleted=len(result.deleted), bytes_freed=result.bytes_freed)
            if result.aborted:
                note.outcome = "aborted"
                note.detail["reason"] = result.aborted
        return result

    def _use_cache(self, repo: Repository) -> None:
        """Keep the remote's pack trailers under the repository's .coral/cache (per URL)."""
        if self.layout.cache_dir is None:
            key = hashlib.sha256(redact_url(self.config.url).encode()).hexdigest()[:16]
            self.layout.cache_dir = repo.coral_dir / "cache" / "remotes" / key

    # -- information --------------------------------------------------------------------------
    def list_remote_weights(self) -> list[str]:
        """Ids of every tensor stored on the remote."""
        self.layout.read_format()
        return sorted(k for k, v in self.layout.refresh_index().items() if v.kind == TENSOR)

    def list_refs(self) -> dict[str, str]:
        """`heads/main` / `tags/v1` -> commit on the remote."""
        return {n: r.commit for n, r in self.layout.list_refs().items()}

    def get_remote_info(self) -> dict[str, Any]:
        doc = self.layout.read_format()
        index = self.layout.refresh_index() if doc is not None else {}
        return {
            **self.config.public_dict(),
            "initialized": doc is not None,
            "format": (doc or {}).get("format"),
            "default_branch": (doc or {}).get("default_branch"),
            "packs": len(self.layout.pack_sizes()),
            "bytes": sum(self.layout.pack_sizes().values()),
            "objects": len(index),
            "weights": sum(1 for v in index.values() if v.kind == TENSOR),
            "refs": self.list_refs() if doc is not None else {},
        }

    # -- push ---------------------------------------------------------------------------------
    def push(
        self,
        local_store: PackStore | Repository,
        weight_hashes: Iterable[str] | None = None,
        force: bool = False,
        *,
        branches: Iterable[str] | None = None,
        tags: bool = True,
        progress: Progress | None = None,
    ) -> PushResult:
        """Upload what the remote lacks, then move its refs (compare-and-swap each).

        By default every branch and tag; `weight_hashes` uploads only those tensors (no refs).
        A ref that moved on the remote since it was last seen is not overwritten: it lands in
        `errors` as a non-fast-forward (NonFastForwardError from the CLI) unless `force`.
        Audited as `push` (`failed` when a ref was rejected).
        """
        repo = _repository(local_store)
        with self._audited(repo, "push", force=force) as note:
            result = self._push(repo, weight_hashes, force, branches, tags, progress)
            _note(note, result, {n: list(moved) for n, moved in result.refs.items()})
        return result

    def _push(
        self,
        repo: Repository,
        weight_hashes: Iterable[str] | None,
        force: bool,
        branches: Iterable[str] | None,
        tags: bool,
        progress: Progress | None,
    ) -> PushResult:
        self._use_cache(repo)
        store = repo.store
        store.wait_for_maintenance()
        result = PushResult()
        layout = self.layout
        layout.ensure_format(repo.refs.head().branch or "main")
        index = layout.refresh_index()
        remote_refs = layout.list_refs()
        wanted = _local_refs(repo, branches, tags) if weight_hashes is None else {}
        updates: list[tuple[str, dict[str, Any], RemoteRef | None]] = []
        for name, (commit, doc) in wanted.items():
            current = remote_refs.get(name)
            if current is not None and current.commit == commit:
                continue
            if current is not None and not force and name.startswith("tags/"):
                result.errors.append(
                    f"rejected {name}: it already exists on the remote at "
                    f"{current.commit[:10]} (tags do not move); push with --force to move it"
                )
                continue
            if current is not None and not force and not _is_ancestor(repo, current.commit, commit):
                result.errors.append(
                    f"rejected {_display(name)}: the remote has commits this repository does not "
                    f"(non-fast-forward); run `coral pull {self.name}` first"
                )
                continue
            updates.append((name, doc, current))
        needed = ObjectSet()
        read = store.get_blob
        trees = commit_closure(
            [doc["commit"] for _, doc, _ in updates], read, lambda c: c in index, needed
        )
        tag_objects([doc.get("tag") or "" for _, doc, _ in updates], read, needed)
        tensor_ids = [e.tensor_id for t in trees for e in t.entries.values()]
        if weight_hashes is not None:
            tensor_ids = list(weight_hashes)
        tensor_closure(
            tensor_ids,
            lambda t: store.manifest(t).chunks,
            lambda c: store._chunk_refs(c)[1],
            lambda k, o: o in index,
            needed,
        )
        for kind, oid in needed.items():
            if oid in index:  # a tree or tag object the remote has under another commit
                needed.ids[kind].remove(oid)
                result.skipped_objects += 1
        result.pushed_weights = len(needed.tensors)
        result.pushed_commits = len(needed.commits)
        result.pushed_objects = sum(len(v) for v in needed.ids.values())
        items = needed.items()
        result.bytes_transferred = transfer.upload(
            layout,
            store,
            [
                [(k, o) for k, o in items if k == CHUNK],  # a tensor on the remote is complete
                [(k, o) for k, o in items if k == TENSOR],
                [(k, o) for k, o in items if k not in (CHUNK, TENSOR)],
            ],
            progress,
        )
        if updates and gc_locked(layout):  # its packs stay (young): the next push uses them
            result.errors.append(
                f"a `coral remote gc` is running on {self.name}; refs not moved, push again later"
            )
            updates = []
        for name, doc, current in updates:
            try:
                layout.set_ref(name, doc, current)
            except NonFastForwardError as exc:
                result.errors.append(exc.message + f"; run `coral pull {self.name}` first")
                continue
            result.refs[name] = (current.commit if current else None, doc["commit"])
        repo.remote_refs.record(self.name, {n: new for n, (_, new) in result.refs.items()})
        return result

    # -- fetch / pull -------------------------------------------------------------------------
    def fetch(
        self,
        local_store: PackStore | Repository,
        weight_hashes: Iterable[str] | None = None,
        *,
        layers: Sequence[str] | None = None,
        lazy: bool = False,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download (and verify) what the remote's refs need; move the tracking refs.

        `layers` (glob patterns over tensor names) fetches only the tensors they match and
        `lazy` none at all: commits and trees arrive whole, the other tensors stay on the remote
        and are fetched when first read (see `coral.remotes.lazy`). Audited as `fetch`.
        """
        repo = _repository(local_store)
        with self._audited(repo, "fetch") as note:
            result = self._fetch(repo, weight_hashes, layers, lazy, progress)
            _note(note, result, result.refs)
        return result

    def _audited(
        self, repo: Repository, action: str, **detail: Any
    ) -> AbstractContextManager[AuditNote]:
        """The audit entry of one transfer with this remote (see `audited`)."""
        return audited(
            repo.database,
            action,
            target=self.name,
            detail={"url": redact_url(self.config.url), **detail},
        )

    def _fetch(
        self,
        repo: Repository,
        weight_hashes: Iterable[str] | None,
        layers: Sequence[str] | None,
        lazy: bool,
        progress: Progress | None,
    ) -> PullResult:
        self._use_cache(repo)
        store = repo.store
        result = PullResult()
        if self.layout.read_format() is None:
            raise RemoteError(
                f"{redact_url(self.config.url)} holds no Coral repository yet",
                hint=f"push to it first: coral push {self.name}",
            )
        index = self.layout.refresh_index()
        remote_refs = self.layout.list_refs()
        needed = ObjectSet()
        fetched: dict[str, bytes] = {}
        if weight_hashes is None:
            fetched = self._fetch_history(store, index, progress)

            def read(kind: str, oid: str) -> bytes:
                if oid in fetched:
                    return fetched[oid]
                return store.get_blob(kind, oid)

            starts = [r.commit for r in remote_refs.values()]
            trees = commit_closure(starts, read, lambda c: store.has_blob(COMMIT, c), needed)
            tag_objects([str(r.doc.get("tag") or "") for r in remote_refs.values()], read, needed)
            if layers is not None:  # the matching tensors of commits that are here already too
                trees = commit_closure(starts, read, lambda c: False, ObjectSet())
            tensor_ids = [
                e.tensor_id
                for t in trees
                for e in t.entries.values()
                if not lazy and (layers is None or _matches(e.name, layers))
            ]
        else:
            tensor_ids = list(weight_hashes)
        result.bytes_transferred = sum(len(d) for d in fetched.values())
        result.bytes_transferred += self._fetch_tensors(store, index, tensor_ids, needed, progress)
        ordered = [(k, o, fetched[o]) for k, o in needed.items() if o in fetched]
        store.install(ordered)  # verified against BLAKE3 names before anything is visible
        result.pulled_objects = len(needed)
        result.pulled_weights = len(needed.tensors)
        result.pulled_commits = len(needed.commits)
        if weight_hashes is None and (lazy or layers is not None):
            promise(repo, self)  # the tensors left behind come from here when first read
        if weight_hashes is None:
            result.refs = {n: r.commit for n, r in remote_refs.items()}
            gone = {n: None for n in repo.remote_refs.names(self.name) if n not in remote_refs}
            repo.remote_refs.record(self.name, {**result.refs, **gone})
            _adopt_tags(repo, remote_refs)
        return result

    def fetch_tensors(self, local_store: PackStore | Repository, tensor_ids: Iterable[str]) -> int:
        """Download and install tensors (with every chunk they need); returns bytes moved."""
        store = local_store if isinstance(local_store, _PackStore) else local_store.store
        return self._fetch_tensors(
            store, self.layout.refresh_index(), list(tensor_ids), ObjectSet(), None
        )

    def _fetch_history(
        self, store: PackStore, index: dict[str, Location], progress: Progress | None
    ) -> dict[str, bytes]:
        """Every commit, tree, tag and model file on the remote that this store lacks, in one
        parallel pass, each verified against its name (they are parsed next)."""
        wanted = [
            oid
            for oid, loc in index.items()
            if loc.kind in (COMMIT, TREE, TAG, FILE) and not store._has(loc.kind, oid)
        ]
        return transfer.download_blobs(self.layout, index, wanted, progress)

    def _fetch_tensors(
        self,
        store: PackStore,
        index: dict[str, Location],
        tensor_ids: list[str],
        needed: ObjectSet,
        progress: Progress | None,
    ) -> int:
        """Download the manifests and chunks of the tensors this store lacks, then install
        them (verified); returns the bytes downloaded."""
        wanted = [t for t in dict.fromkeys(tensor_ids) if not store._has(TENSOR, t)]
        missing = [t for t in wanted if t not in index]
        if missing:
            raise RemoteError(
                f"the remote lacks tensor {missing[0]}", hint="push it again from its source"
            )
        manifests = transfer.download(self.layout, index, wanted, None)

        def manifest_chunks(tid: str) -> tuple[str, ...]:
            try:
                return TensorManifest.decode(manifests[tid]).chunks
            except ValueError as exc:
                raise RemoteError(f"damaged tensor {tid} on the remote: {exc}") from None

        tensor_closure(
            wanted,
            manifest_chunks,
            lambda c: index[c].refs if c in index else (),
            lambda k, o: store._has(k, o),
            needed,
        )
        chunk_ids = needed.ids.get(CHUNK, [])
        absent = [c for c in chunk_ids if c not in index]
        if absent:
            raise RemoteError(f"the remote lacks chunk {absent[0]} that its tensors need")
        records = transfer.download(self.layout, index, chunk_ids, progress)
        store.install(
            [(CHUNK, c, records[c]) for c in chunk_ids]
            + [(TENSOR, t, manifests[t]) for t in needed.tensors]
        )
        return sum(len(d) for d in records.values()) + sum(len(d) for d in manifests.values())

    def pull(
        self,
        local_store: PackStore | Repository,
        weight_hashes: Iterable[str] | None = None,
        force: bool = False,
        *,
        branch: str | None = None,
        layers: Sequence[str] | None = None,
        lazy: bool = False,
        progress: Progress | None = None,
    ) -> PullResult:
        """Fetch, then fast-forward the current branch to the remote's (creating it in an empty
        repository). A diverged branch is left alone with an error in `errors` (merge
        `origin/<branch>`), or reset to the remote's with `force`. Audited as `pull`."""
        repo = _repository(local_store)
        with self._audited(repo, "pull", force=force) as note:
            result = self._pull(repo, weight_hashes, force, branch, layers, lazy, progress)
            note.detail["branch"] = result.updated_branch
            _note(note, result, result.refs)
        return result

    def _pull(
        self,
        repo: Repository,
        weight_hashes: Iterable[str] | None,
        force: bool,
        branch: str | None,
        layers: Sequence[str] | None,
        lazy: bool,
        progress: Progress | None,
    ) -> PullResult:
        result = self._fetch(repo, weight_hashes, layers, lazy, progress)
        if weight_hashes is not None:
            return result
        head = repo.refs.head()
        doc = self.layout.read_format(cached=True) or {}
        default = str(doc.get("default_branch", "main"))
        target = branch or head.branch or default
        empty = not any(b.commit for b in repo.list_branches()) and head.commit is None
        if branch is None and empty and f"heads/{target}" not in result.refs:
            target = default  # a fresh repository follows the remote's default branch
        remote_commit = result.refs.get(f"heads/{target}")
        if remote_commit is None:
            result.errors.append(f"the remote has no branch {target!r}")
            return result
        local = repo.refs.branch_tip(target)
        if local == remote_commit:
            return result
        if local is not None and not force and not _is_ancestor(repo, local, remote_commit):
            if _is_ancestor(repo, remote_commit, local):
                return result  # we are ahead: nothing to pull
            result.errors.append(
                f"{target} and {self.name}/{target} have diverged; merge them with "
                f"`coral merge {self.name}/{target}` (or pull --strategy)"
            )
            return result
        attach = empty and head.branch != target
        repo.fast_forward(target, remote_commit, local, f"pull {self.name}", attach=attach)
        result.updated_branch = target
        return result


# -- helpers ------------------------------------------------------------------------------------
def _note(note: AuditNote, result: PushResult | PullResult, refs: dict[str, Any]) -> None:
    """A transfer's refs, bytes and errors into its audit entry (`failed` on an error)."""
    note.detail.update(refs=refs, bytes=result.bytes_transferred, errors=result.errors)
    if result.errors:
        note.outcome = "failed"


def _repository(local: Any) -> Repository:
    from coral.version_control.repository import Repository

    if isinstance(local, Repository):
        return local
    repo = getattr(local, "repository", None)
    if repo is None:
        raise CoralError(
            "push and pull take a repository's store (repo.store) or the repository itself"
        )
    return repo


def _local_refs(
    repo: Repository, branches: Iterable[str] | None, tags: bool
) -> dict[str, tuple[str, dict[str, Any]]]:
    chosen = None if branches is None else set(branches)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for b in repo.list_branches():
        if b.commit and (chosen is None or b.name in chosen):
            out[f"heads/{b.name}"] = (b.commit, {"commit": b.commit, "updated": time.time()})
    if chosen is not None:
        unknown = chosen - {b.name for b in repo.list_branches()}
        if unknown:
            from coral.errors import RefNotFoundError

            raise RefNotFoundError(f"no local branch {sorted(unknown)[0]!r} to push")
    if tags:
        for t in repo.list_tags():
            doc = {
                "commit": t.commit_hash,
                "tag": t.tag_id,
                "description": t.description,
                "metrics": t.metrics or {},
            }
            out[f"tags/{t.name}"] = (t.commit_hash, doc)
    return out


def _is_ancestor(repo: Repository, ancestor: str, descendant: str) -> bool:
    from coral.version_control.objects import COMMIT as _COMMIT

    if not repo.store.has_blob(_COMMIT, ancestor):
        return False
    return repo.is_ancestor(ancestor, descendant)


def _adopt_tags(repo: Repository, remote_refs: dict[str, RemoteRef]) -> None:
    """Create the remote's tags that do not exist here (an existing tag is never moved)."""
    for name, ref in remote_refs.items():
        if not name.startswith("tags/"):
            continue
        tag = name[len("tags/") :]
        if repo.refs.get_tag(tag) is not None:
            continue
        try:
            repo.adopt_tag(tag, ref.commit, ref.doc.get("tag"), ref.doc)
        except (CoralError, BackendError):
            continue


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _display(name: str) -> str:
    return name[len("heads/") :] if name.startswith("heads/") else name


class RemoteManager(RemoteConfigs):
    """Named remotes stored in `.coral/remotes.json` (no secrets in it), opened as `Remote`s."""

    def get(self, name: str) -> Remote:
        """The remote named `name`, ready to push and pull."""
        return Remote.from_config(self.config(name))


def open_promised_source(store: _PackStore, params: dict[str, Any]) -> RemoteSource:
    """The promisor factory named in promisor.json (`lazy.FACTORY`): the remote of that name
    from the repository's remotes."""
    name = str(params.get("remote", ""))
    try:
        remote = RemoteManager(store.root.parent / "remotes.json").get(name)
    except RemoteConfigError:
        raise CoralError(
            f"this partial clone fetches missing tensors from remote {name!r}, which is gone",
            hint=f"add it again: coral remote add {name} URL",
        ) from None
    return RemoteSource(remote)

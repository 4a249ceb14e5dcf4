"""The one commit pipeline: store tensors and model files, build the tree, write the commit.

Every path that creates commits goes through `CommitWriter` — `Repository.add_all_weights` +
`commit`, training checkpoints and the file watcher (`commit_onto`), merges (`write_commit`) —
so all of them choose delta references the same way (the same-named tensor of the parent, else
a similar one from the fingerprint index), feed the fingerprint index, and carry the parent's
model files (`config.json`, tokenizer files, ...) unless told otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from coral.core.hashing import hash_blob
from coral.core.tensor_checks import check_utf8_name
from coral.core.weight_tensor import WeightTensor, as_weight_tensor
from coral.errors import ConcurrentUpdateError, InvalidNameError, NothingToCommitError
from coral.storage.pack_store import PackStore
from coral.version_control.database import Database
from coral.version_control.objects import COMMIT, FILE, TREE, Commit, FileEntry, Tree, TreeEntry
from coral.version_control.refs import HeadState, RefStore
from coral.version_control.staging import StagedChange, StagingArea, apply_changes

MAX_FILE_BYTES = 256 << 20  # a model file above this is a mistake (weights belong in tensors)
_CAS_RETRIES = 50  # each lost compare-and-swap means another writer committed


class Writable(Protocol):
    """What the pipeline needs from a repository."""

    store: PackStore
    database: Database
    refs: RefStore
    staging: StagingArea
    db_path: Path

    def write_lock(self) -> AbstractContextManager[None]: ...
    def read_commit(self, commit_hash: str) -> Commit: ...
    def read_tree(self, tree_id: str) -> Tree: ...
    def default_author(self) -> str: ...


class CommitWriter:
    """Stores what a commit needs and writes commits for one repository."""

    def __init__(self, repo: Writable) -> None:
        self.repo = repo
        self._fingerprints: Any = None
        self._shared: Any = None  # the shared similarity index ([similarity] backend)
        self.on_commit: list[Callable[[Commit], None]] = []  # caches to fill, maintenance

    def close(self) -> None:
        if self._fingerprints not in (None, False):
            self._fingerprints.close()
        if self._shared not in (None, False):
            self._shared.close()
        self._fingerprints = self._shared = None

    # -- tensors -------------------------------------------------------------------------------
    def store_weights(
        self,
        weights: Mapping[str, Any],
        base: Tree,
        *,
        lossy_delta: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[TreeEntry]:
        """Store every tensor (delta-encoded against its reference); their tree entries.
        `progress(1)` is called as the store takes each tensor."""
        if not isinstance(weights, Mapping):
            raise TypeError("weights must be a mapping of name -> tensor")
        if lossy_delta is not None:
            from coral.version_control.lossy import lossy_delta_type

            lossy_delta_type(lossy_delta)  # refuse a bad option before storing anything
        tensors: list[WeightTensor] = []
        for name, value in weights.items():
            check_weight_name(name)
            w = as_weight_tensor(value, name, copy=False)  # stored before this call returns
            if w.is_loaded:
                w.compute_hash(force=True)  # never trust a cached hash of mutable data
            tensors.append(w)
        if not tensors:
            return []
        references = [self._choose_reference(w, base) for w in tensors]
        if lossy_delta is not None:
            tensors = self._quantize(tensors, references, lossy_delta)
        pairs = list(zip(tensors, references, strict=True))
        ids = self.repo.store.store_many(_reporting(pairs, progress) if progress else pairs)
        self._index_fingerprints(tensors, ids, references)
        return [TreeEntry.from_metadata(w.metadata, t) for w, t in zip(tensors, ids, strict=True)]

    def _quantize(
        self, tensors: list[WeightTensor], references: list[str | None], lossy_delta: str
    ) -> list[WeightTensor]:
        from coral.version_control.lossy import lossy_delta_type, quantize_against

        kind = lossy_delta_type(lossy_delta)
        store = self.repo.store
        return [
            quantize_against(w, store.load(ref, w.name), kind) if ref is not None else w
            for w, ref in zip(tensors, references, strict=True)
        ]

    def _choose_reference(self, weight: WeightTensor, base: Tree) -> str | None:
        entry = base.entries.get(weight.name)
        if (
            entry is not None
            and entry.shape == weight.shape
            and entry.dtype == weight.metadata.dtype_name
        ):
            return entry.tensor_id
        from coral.version_control.shared_index import best_reference

        index, shared = self.fingerprint_index(), self.shared_index()
        return best_reference(weight, index, shared, self.repo.store.exists)

    def fingerprint_index(self) -> Any:
        """The similarity index of this repository (None when it cannot be opened)."""
        if self._fingerprints is None:
            try:
                from coral.storage.fingerprint_index import FingerprintIndex
                from coral.version_control.config_profiles import similarity_threshold

                threshold = similarity_threshold(getattr(self.repo, "config", {}))
                self._fingerprints = FingerprintIndex(
                    self.repo.db_path, similarity_threshold=threshold
                )
            except Exception:
                self._fingerprints = False
        return None if self._fingerprints is False else self._fingerprints

    def shared_index(self) -> Any:
        """The similarity index shared with other repositories (`[similarity] backend`), or
        None: local backend, or Redis unusable (see `coral.version_control.shared_index`)."""
        if self._shared is None:
            from coral.version_control.shared_index import open_shared_index

            local = self.fingerprint_index()  # its fingerprints and threshold are shared
            self._shared = local is not None and open_shared_index(
                getattr(self.repo, "config", {}),
                self.repo.db_path,
                similarity_threshold=local.similarity_threshold,
                fingerprint=local.fingerprint,
                records=local.records,
            )
            self._shared = self._shared or False
        return None if self._shared is False or self._shared.disabled else self._shared

    def _index_fingerprints(
        self, tensors: Sequence[WeightTensor], ids: Sequence[str], references: Sequence[str | None]
    ) -> None:
        from coral.version_control.shared_index import file_quietly

        index = self.fingerprint_index()
        if index is None:
            return
        shared = self.shared_index()
        rows = []
        for w, tid, ref in zip(tensors, ids, references, strict=True):
            if ref is not None:
                continue  # its lineage is already indexed: the first version has a fingerprint
            try:
                if shared is not None:
                    meta = w.metadata
                    rows.append((tid, tuple(meta.shape), meta.dtype_name, index.fingerprint(w)))
                if tid not in index:
                    index.add(tid, w)
            except Exception:  # derived data: a missing fingerprint only costs compression
                continue
        file_quietly(shared, rows)

    # -- model files ---------------------------------------------------------------------------
    def store_files(self, files: Mapping[str, bytes | os.PathLike[str]]) -> list[FileEntry]:
        """Store model files (path in the model -> bytes, or a file to read) as blobs."""
        blobs: list[tuple[str, bytes]] = []
        paths: list[str] = []
        for name, value in files.items():
            path = check_file_path(name)
            data = value if isinstance(value, bytes) else Path(value).read_bytes()
            if len(data) > MAX_FILE_BYTES:
                raise InvalidNameError(
                    f"model file {path!r} is {len(data) >> 20} MiB: too large for a model file",
                    hint="store weights as tensors (coral add loads checkpoint formats)",
                )
            blobs.append((FILE, data))
            paths.append(path)
        ids = self.repo.store.put_blobs(blobs)
        return [FileEntry(p, i, len(d)) for p, i, (_, d) in zip(paths, ids, blobs, strict=True)]

    # -- commits -------------------------------------------------------------------------------
    def write_commit(
        self,
        tree: Tree,
        parents: list[str],
        message: str,
        author: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> Commit:
        """Store a tree and a commit of it (one pack); moves no ref."""
        commit = Commit(
            tree_id=hash_blob(TREE, tree.encode()),
            parent_hashes=parents,
            author=author or self.repo.default_author(),
            timestamp=time.time(),
            message=message,
            metadata=dict(metadata or {}),
        )
        self.repo.store.put_blobs([(TREE, tree.encode()), (COMMIT, commit.encode())])
        commit.commit_hash = hash_blob(COMMIT, commit.encode())
        for hook in self.on_commit:
            hook(commit)
        return commit

    def commit_staged(
        self,
        message: str,
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> str:
        """Commit HEAD's tree with the staged changes applied (see `Repository.commit`).

        When another writer moves HEAD's branch meanwhile, this area's staged changes are
        applied again onto the new tip and the commit is tried again."""
        if not isinstance(message, str):
            raise TypeError("commit message must be a string")
        repo = self.repo
        with repo.write_lock():
            for _ in range(_CAS_RETRIES):
                with repo.database.snapshot():
                    head = repo.refs.head()
                    changes = repo.staging.changes()
                    file_changes = repo.staging.file_changes()
                try:
                    commit = self._staged_commit(
                        head, changes, file_changes, message, author, metadata, allow_empty
                    )
                except NothingToCommitError:
                    if changes or file_changes:  # they match HEAD, which holds them already
                        with repo.database.transaction() as tx:
                            repo.staging.clear_committed(tx, changes, file_changes)
                    raise
                try:
                    with repo.database.transaction() as tx:
                        initial = " (initial)" if not head.commit else ""
                        repo.refs.update_head(
                            tx, commit.commit_hash, head, f"commit{initial}: {first_line(message)}"
                        )
                        repo.staging.clear_committed(tx, changes, file_changes)
                except ConcurrentUpdateError:
                    if head.branch is None or repo.refs.head().branch != head.branch:
                        raise  # HEAD was detached or moved to another branch: not ours to follow
                    continue
                repo.store.schedule_maintenance()
                return commit.commit_hash
        raise ConcurrentUpdateError(
            f"branch {head.branch!r} kept moving; nothing was committed (the changes stay staged)"
        )

    def _staged_commit(
        self,
        head: HeadState,
        changes: dict[str, StagedChange],
        file_changes: dict[str, FileEntry | None],
        message: str,
        author: str | None,
        metadata: Mapping[str, Any] | None,
        allow_empty: bool,
    ) -> Commit:
        """Write the commit of `changes` applied to `head`'s tree (moves no ref)."""
        repo = self.repo
        base = repo.read_tree(repo.read_commit(head.commit).tree_id) if head.commit else Tree()
        tree = apply_changes(base, changes, file_changes)
        where = head.branch or "detached HEAD"
        if head.commit is not None and tree.encode() == base.encode() and not allow_empty:
            raise NothingToCommitError(
                f"nothing to commit on {where}: the staged changes match HEAD"
                if changes or file_changes
                else f"nothing to commit on {where}"
            )
        if head.commit is None and not tree.entries:
            raise NothingToCommitError("nothing to commit: no weights are staged")
        meta = dict(metadata or {})
        lossy = {
            n: c.entry.extra["lossy"]
            for n, c in changes.items()
            if c.entry is not None and c.entry.extra.get("lossy")
        }
        if lossy:
            meta["lossy"] = {**dict(meta.get("lossy") or {}), **lossy}
        return self.write_commit(tree, [head.commit] if head.commit else [], message, author, meta)

    def commit_onto(
        self,
        branch: str,
        weights: Mapping[str, Any],
        message: str,
        *,
        files: Mapping[str, bytes | os.PathLike[str]] | None = None,
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        if_changed: bool = False,
    ) -> str:
        """Commit exactly `weights` as the new tip of `branch`, leaving HEAD and the staging
        area alone; the tip's model files are carried over (`files` adds or replaces some).

        A branch that does not exist yet starts from HEAD's commit (or as a root commit in an
        empty repository). When another writer moved the branch meanwhile, the commit is
        re-parented onto the new tip and tried again (a snapshot does not depend on its parent).
        With `if_changed`, a snapshot identical to the tip's raises NothingToCommitError.
        """
        repo = self.repo
        with repo.write_lock():
            tip = repo.refs.branch_tip(branch)
            start = tip if tip is not None else repo.refs.head().commit
            base = repo.read_tree(repo.read_commit(start).tree_id) if start else Tree()
            entries = {e.name: e for e in self.store_weights(weights, base)}
            added = {f.path: f for f in self.store_files(files or {})}
            tree = Tree(entries, {**base.files, **added})
            if if_changed and start is not None and tree.encode() == base.encode():
                raise NothingToCommitError(f"the weights are those of {branch!r} already")
            expected, parent = tip, start
            for _ in range(_CAS_RETRIES):
                if parent is not None and parent != start:  # carry the new tip's model files
                    tip_files = repo.read_tree(repo.read_commit(parent).tree_id).files
                    tree = Tree(entries, {**tip_files, **added})
                commit = self.write_commit(
                    tree, [parent] if parent else [], message, author, metadata
                )
                try:
                    with repo.database.transaction() as tx:
                        repo.refs.update_branch(
                            tx,
                            branch,
                            commit.commit_hash,
                            expected,
                            f"commit (checkpoint): {first_line(message)}",
                        )
                except ConcurrentUpdateError:
                    expected = parent = repo.refs.branch_tip(branch)
                    continue
                repo.store.schedule_maintenance()
                return commit.commit_hash
        raise ConcurrentUpdateError(
            f"branch {branch!r} kept moving; the snapshot was not committed"
        )


def _reporting(items: list[Any], progress: Callable[[int], None]) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i:
            progress(1)  # the store asks for the next one once the previous one is under way
        yield item
    progress(1)


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def check_weight_name(name: object) -> None:
    """A tensor name: a non-empty UTF-8 string of at most 4096 bytes, no control characters
    (checked before anything is stored, so a refused name leaves no objects behind)."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(
            f"weight names must be non-empty strings, got {name!r}",
            hint="use the state_dict key, e.g. 'encoder.layer.0.weight'",
        )
    check_utf8_name(name, "weight name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidNameError(f"weight name {name!r} contains a control character")


def check_file_path(name: object) -> str:
    """A model file's path: relative, '/'-separated, no '..', no empty or hidden parts."""
    if (
        not isinstance(name, str)
        or not name
        or "\\" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    ):
        raise InvalidNameError(
            f"not a model file path: {name!r}", hint="use a relative path such as 'config.json'"
        )
    check_utf8_name(name, "model file path")
    path = PurePosixPath(name)
    if path.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise InvalidNameError(
            f"unsafe model file path {name!r}",
            hint="use a relative path inside the model folder, e.g. 'tokenizer/vocab.txt'",
        )
    return str(path)


def merge_files(base: Tree, sides: Sequence[Tree]) -> tuple[dict[str, FileEntry], list[str]]:
    """Three-way merge of model files: a file changed (or added, or removed) on one side only
    takes that side; changed differently on several, the first side (ours) wins and its path
    is listed as a conflict."""
    merged: dict[str, FileEntry] = {}
    conflicts: list[str] = []
    paths = sorted({p for t in (base, *sides) for p in t.files})
    for path in paths:
        old = base.files.get(path)
        changed = [t.files.get(path) for t in sides if t.files.get(path) != old]
        if not changed:
            result = old
        elif all(c == changed[0] for c in changed):
            result = changed[0]
        else:
            result = sides[0].files.get(path)
            conflicts.append(path)
        if result is not None:
            merged[path] = result
    return merged, conflicts

"""`Repository`: git semantics over tensors — the porcelain every other part of Coral uses.

Layout of a repository at PATH:
    PATH/.coral/coral.db       SQLite (WAL): refs, HEAD, staging, reflog, other components' tables
    PATH/.coral/config.toml    settings; [core] format_version
    PATH/.coral/objects/       the object store (tensors, chunks, trees, commits, tags)
    PATH/.coral/lock           writers share it, gc takes it exclusively
"""

from __future__ import annotations

import fnmatch
import getpass
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from coral.core.weight_tensor import WeightTensor
from coral.errors import (
    NotARepositoryError,
    ObjectNotFoundError,
    RepositoryExistsError,
)
from coral.storage.pack_store import PackStore
from coral.version_control import history, pruning
from coral.version_control.database import FORMAT_VERSION, Database
from coral.version_control.diff import DiffResult, diff_trees
from coral.version_control.errors import (
    DirtyStagingError,
    WeightNotFoundError,
)
from coral.version_control.locking import RepositoryLock
from coral.version_control.objects import (
    COMMIT,
    FILE,
    TREE,
    Commit,
    FileEntry,
    Tree,
    TreeEntry,
)
from coral.version_control.ref_ops import BranchesAndTags
from coral.version_control.refnames import HEAD, check_name
from coral.version_control.refs import HeadState, RefStore
from coral.version_control.remote_refs import TrackingRefs
from coral.version_control.repo_config import (
    CORAL_DIR,
    DB_FILE,
    find_root,
    open_store,
    read_config,
)
from coral.version_control.resolve import RefResolver
from coral.version_control.staging import (
    RepositoryStatus,
    StagedChange,
    StagingArea,
    apply_changes,
)
from coral.version_control.writer import CommitWriter

CONFIG_FILE = "config.toml"
OBJECTS_DIR = "objects"
LOCK_FILE = "lock"
DEFAULT_BRANCH = "main"
_MIN_SHORT_HASH = 4
_PARALLEL_READ_BYTES = 4 << 20  # below this, reading tensors one after another is faster


class Repository(BranchesAndTags):
    """A Coral repository: commits of named tensors, branches, tags, merges.

    `Repository(path)` opens the repository at `path` or the nearest parent holding `.coral`;
    `Repository.init(path)` (or `Repository(path, init=True)`) creates one whose first branch
    is `main`. Each object stages into a session of its own, so concurrent writers commit only
    what they staged; `shared_staging=True` uses the area `coral add` and `coral commit` share.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        init: bool = False,
        *,
        default_branch: str = DEFAULT_BRANCH,
        shared_staging: bool = False,
    ) -> None:
        start = Path(path).expanduser().absolute()
        if init:
            self.path = start
            self._create(default_branch)
        else:
            self.path = find_root(start)
        self.coral_dir = self.path / CORAL_DIR
        self.db_path = self.coral_dir / DB_FILE
        self.config_path = self.coral_dir / CONFIG_FILE
        self.config = read_config(self.config_path)
        self.database = Database(self.db_path)
        self.database.check_format()
        self.refs = RefStore(self.database)
        self.staging = StagingArea(self.database, shared=shared_staging)
        self.lock = RepositoryLock(self.coral_dir / LOCK_FILE)
        self.store: PackStore = open_store(self.coral_dir / OBJECTS_DIR, self.config)
        self.store.repository = self  # remotes take a store and need its refs
        self.remote_refs = TrackingRefs(self.database)
        self._commits: OrderedDict[str, Commit] = OrderedDict()
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self.resolver = RefResolver(self.refs, self.database, self.store, self.read_commit)
        self.writer = CommitWriter(self)
        self.writer.on_commit.append(self._remember)

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        default_branch: str = DEFAULT_BRANCH,
        exist_ok: bool = False,
        shared_staging: bool = False,
    ) -> Repository:
        """Create a repository at `path` (RepositoryExistsError if one exists, unless exist_ok)."""
        target = Path(path).expanduser().absolute()
        exists = exist_ok and (target / CORAL_DIR / DB_FILE).exists()
        return cls(target, not exists, default_branch=default_branch, shared_staging=shared_staging)

    def _create(self, default_branch: str) -> None:
        check_name(default_branch, "branch")
        coral_dir = self.path / CORAL_DIR
        if (coral_dir / DB_FILE).exists():
            raise RepositoryExistsError(f"a Coral repository already exists at {self.path}")
        if self.path.exists() and not self.path.is_dir():
            raise NotARepositoryError(
                f"{self.path} is a file, not a directory", hint="pass a directory"
            )
        (coral_dir / OBJECTS_DIR).mkdir(parents=True, exist_ok=True)
        config = coral_dir / CONFIG_FILE
        if not config.exists():
            config.write_text(
                "# Coral repository settings\n[core]\n"
                f'format_version = {FORMAT_VERSION}\ndefault_branch = "{default_branch}"\n',
                encoding="utf-8",
            )
        db = Database(coral_dir / DB_FILE)
        try:
            db.create(default_branch)
        finally:
            db.close()

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Drop this object's private staged changes; release database connections and store
        worker threads."""
        self.staging.close()
        self.database.close()
        self.writer.close()
        closer = getattr(self.store, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({str(self.path)!r})"

    def write_lock(self) -> AbstractContextManager[None]:
        """Hold while writing objects that a ref will point at (keeps a concurrent gc away)."""
        return self.lock.shared()

    # -- objects ------------------------------------------------------------------------------
    def read_commit(self, commit_hash: str) -> Commit:
        """The commit object named `commit_hash` (a full hash)."""
        cached = self._commits.get(commit_hash)
        if cached is not None:
            return cached
        commit = Commit.decode(self.store.get_blob(COMMIT, commit_hash), commit_hash)
        self._commits[commit_hash] = commit
        if len(self._commits) > 20000:
            self._commits.popitem(last=False)
        return commit

    def read_tree(self, tree_id: str) -> Tree:
        cached = self._trees.get(tree_id)
        if cached is not None:
            self._trees.move_to_end(tree_id)
            return cached
        try:
            data = self.store.get_blob(TREE, tree_id)
        except ObjectNotFoundError as exc:  # a pruned commit's, deleted by gc: say "pruned"
            pruning.raise_if_tree_collected(self, tree_id, exc)
            raise
        tree = Tree.decode(data, tree_id)
        self._trees[tree_id] = tree
        if len(self._trees) > 64:
            self._trees.popitem(last=False)
        return tree

    def get_commit(self, ref: str = HEAD) -> Commit:
        """The commit a ref names."""
        return self.read_commit(self.resolve_ref(ref))

    def get_tree(self, ref: str = HEAD) -> Tree:
        """The tree (name -> TreeEntry) of the commit a ref names."""
        return self._commit_tree(self.resolve_ref(ref))

    def _commit_tree(self, commit_hash: str) -> Tree:
        try:
            return self.read_tree(self.read_commit(commit_hash).tree_id)
        except ObjectNotFoundError as exc:
            pruning.raise_if_collected(self, commit_hash, exc)
            raise

    def _head_tree(self) -> Tree:
        head = self.refs.head()
        return self.read_tree(self.read_commit(head.commit).tree_id) if head.commit else Tree()

    # -- refs ---------------------------------------------------------------------------------
    def head(self) -> HeadState:
        return self.refs.head()

    def head_commit(self) -> str | None:
        """HEAD's commit hash (None in a repository without commits)."""
        return self.refs.head().commit

    def resolve_ref(self, ref: str) -> str:
        """Full commit hash of `ref`: branch, tag, full or unique short hash (≥4), HEAD,
        and any of them followed by ~N, ^ or ^N (e.g. `HEAD~3`, `main^2`, `v1.0^^`)."""
        return self.resolver.resolve(ref)

    # -- staging ------------------------------------------------------------------------------
    def _remember(self, commit: Commit) -> None:
        self._commits[commit.commit_hash] = commit

    def add_weight(self, name: str, weight: Any) -> str:
        """Store and stage one tensor; returns its tensor id."""
        return self.add_all_weights({name: weight})[name]

    def add_all_weights(
        self,
        weights: Mapping[str, Any],
        *,
        lossy_delta: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, str]:
        """Store and stage every tensor of `weights` (WeightTensor, numpy array or torch tensor).

        Tensors are stored right away (delta-encoded against the same-named tensor of HEAD, or
        a similar one found by the fingerprint index); returns name -> tensor id.
        `lossy_delta` ("int8_quantized_lossy" / "int16_quantized_lossy") opts in to storing
        float tensors that have a reference as their reconstruction from a quantized delta;
        the commit records it under metadata["lossy"].
        """
        if not isinstance(weights, Mapping):
            raise TypeError("add_all_weights takes a mapping of name -> tensor")
        with self.write_lock():
            base = self._head_tree()
            entries = self.writer.store_weights(
                weights, base, lossy_delta=lossy_delta, progress=progress
            )
            if entries:
                with self.database.transaction() as tx:
                    self.staging.stage(tx, entries, base)
        return {e.name: e.tensor_id for e in entries}

    def add_files(self, files: Mapping[str, bytes | os.PathLike[str]]) -> dict[str, str]:
        """Store and stage model files (path in the model -> bytes or a file to read), e.g.
        `config.json` or `tokenizer.json`; the next commit records them with the tensors and
        later commits carry them until changed or removed. Returns path -> blob id."""
        with self.write_lock():
            base = self._head_tree()
            entries = self.writer.store_files(files)
            with self.database.transaction() as tx:
                self.staging.stage_files(tx, entries, base)
        return {f.path: f.blob_id for f in entries}

    def add_file(self, path: str, data: bytes | os.PathLike[str]) -> str:
        return self.add_files({path: data})[path]

    def remove_file(self, path: str) -> None:
        """Stage the removal of a model file from the next commit."""
        base = self._head_tree()
        if path not in base.files and path not in self.staging.file_changes():
            raise WeightNotFoundError(f"no model file {path!r} in HEAD or the staging area")
        with self.database.transaction() as tx:
            self.staging.stage_file_removal(tx, path, base)

    def list_files(self, ref: str = HEAD) -> dict[str, FileEntry]:
        """The model files of `ref` by path (config.json, tokenizer files, ...)."""
        return dict(self.get_tree(ref).files)

    def get_files(self, ref: str = HEAD) -> dict[str, bytes]:
        """The model files of `ref`: path -> bytes (each checked against its name)."""
        return {p: self.store.get_blob(FILE, f.blob_id) for p, f in self.list_files(ref).items()}

    def remove_weight(self, name: str) -> None:
        """Stage the removal of tensor `name` from the next commit."""
        base = self._head_tree()
        staged = self.staging.changes()
        if name not in base.entries and name not in staged:
            raise WeightNotFoundError(f"no weight named {name!r} in HEAD or the staging area")
        with self.database.transaction() as tx:
            self.staging.stage_removal(tx, name, base)

    def unstage(self, names: str | Iterable[str] | None = None) -> int:
        """Drop staged changes of `names` (all when None); returns how many were dropped."""
        if isinstance(names, str):
            names = [names]
        with self.database.transaction() as tx:
            return self.staging.unstage(tx, list(names) if names is not None else None)

    def staged_changes(self) -> dict[str, StagedChange]:
        """This object's staged changes by name (the shared area's with shared_staging)."""
        return self.staging.changes()

    # -- commit -------------------------------------------------------------------------------
    def default_author(self) -> str:
        user = self.config.get("user", {}) if isinstance(self.config.get("user"), dict) else {}
        name = os.environ.get("CORAL_AUTHOR") or user.get("name")
        if name:
            email = user.get("email")
            return f"{name} <{email}>" if email and "<" not in name else str(name)
        try:
            return getpass.getuser()
        except Exception:
            return "unknown"

    def commit(
        self,
        message: str,
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> str:
        """Commit HEAD's tree with the staged changes applied; returns the commit hash.

        When nothing changed since HEAD the commit still records the message and metadata
        (chapter 8.1 ends a training run with `repo.commit("Final model checkpoint")` after the
        best checkpoint was already committed); pass allow_empty=False to refuse instead, as
        `coral commit` does. With no HEAD and nothing staged there is nothing to commit.
        Raises NothingToCommitError in those cases. When another writer moves the branch
        meanwhile, these staged changes are applied onto its new tip instead (ConcurrentUpdateError
        only if HEAD moved to another branch, or the branch kept moving; the changes stay staged).
        """
        return self.writer.commit_staged(message, author, metadata, allow_empty=allow_empty)

    # -- reading ------------------------------------------------------------------------------
    def list_weights(self, ref: str = HEAD, layers: str | Sequence[str] | None = None) -> list[str]:
        """Names of the tensors in `ref`, optionally filtered by fnmatch pattern(s)."""
        return _select(self.get_tree(ref).names(), layers)

    def get_all_weights(
        self, ref: str = HEAD, layers: str | Sequence[str] | None = None, *, lazy: bool = False
    ) -> dict[str, WeightTensor]:
        """name -> WeightTensor of the commit `ref` names (only names matching `layers`, an
        fnmatch pattern or a list of them, when given). `lazy=True` reads values on first use."""
        commit_hash = self.resolve_ref(ref)
        tree = self._commit_tree(commit_hash)
        names = _select(tree.names(), layers)
        entries = [tree.entries[n] for n in names]
        try:
            if lazy or len(entries) <= 1 or sum(e.nbytes for e in entries) < _PARALLEL_READ_BYTES:
                return {e.name: self.load_entry(e, lazy) for e in entries}
            stored = self.store.load_many([e.tensor_id for e in entries])
            loaded = [
                WeightTensor(w.data, replace(e.to_metadata(), shape=w.shape, dtype=w.dtype))
                for e, w in zip(entries, stored, strict=True)
            ]
        except ObjectNotFoundError as exc:
            pruning.raise_if_collected(self, commit_hash, exc)
            raise
        return {e.name: w for e, w in zip(entries, loaded, strict=True)}

    def get_weight(self, name: str, ref: str = HEAD, *, lazy: bool = False) -> WeightTensor:
        """One tensor of the commit `ref` names."""
        commit_hash = self.resolve_ref(ref)
        entry = self._commit_tree(commit_hash).entries.get(name)
        if entry is None:
            raise WeightNotFoundError(f"no weight named {name!r} in {ref}")
        try:
            return self.load_entry(entry, lazy)
        except ObjectNotFoundError as exc:
            pruning.raise_if_collected(self, commit_hash, exc)
            raise

    def load_entry(self, entry: TreeEntry, lazy: bool = False) -> WeightTensor:
        """The tensor a tree entry names, with the entry's metadata."""
        meta = entry.to_metadata()
        if lazy:
            store, tid = self.store, entry.tensor_id
            return WeightTensor(metadata=meta, loader=lambda: store.load(tid, lazy=True).data)
        loaded = self.store.load(entry.tensor_id, entry.name)
        return WeightTensor(loaded.data, replace(meta, shape=loaded.shape, dtype=loaded.dtype))

    # -- history ------------------------------------------------------------------------------
    def log(self, max_commits: int | None = None, branch: str | None = None) -> list[Commit]:
        """Commits reachable from `branch` (any ref; default HEAD), newest first."""
        if branch is None and self.refs.head().commit is None:
            return []
        start = self.resolve_ref(branch or HEAD)
        out: list[Commit] = []
        for commit in history.iter_history(self.read_commit, [start]):
            if max_commits is not None and len(out) >= max_commits:
                break
            out.append(commit)
        return out

    def iter_commits(self, refs: Iterable[str] | None = None) -> Iterator[Commit]:
        """Commits reachable from `refs` (default: every branch, tag and HEAD), newest first."""
        starts = [self.resolve_ref(r) for r in refs] if refs is not None else self._root_commits()
        return history.iter_history(self.read_commit, starts)

    def _root_commits(self) -> list[str]:
        starts = list(dict.fromkeys(self.refs.all_ref_targets().values()))
        head = self.refs.head().commit
        if head and head not in starts:
            starts.append(head)
        return starts

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return history.is_ancestor(
            self.read_commit, self.resolve_ref(ancestor), self.resolve_ref(descendant)
        )

    def merge_base(self, a: str, b: str = HEAD) -> str | None:
        """The most recent common ancestor of two refs (None when unrelated)."""
        return history.merge_base(self.read_commit, self.resolve_ref(a), self.resolve_ref(b))

    # -- status, diff, checkout ---------------------------------------------------------------
    def status(self) -> RepositoryStatus:
        """Branch, HEAD and the staged changes (added / modified / removed vs HEAD)."""
        return self.staging.status(self.refs.head(), self._head_tree())

    def diff(
        self,
        from_ref: str,
        to_ref: str | None = None,
        *,
        norms: bool = True,
        select: Callable[[str], bool] | None = None,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> DiffResult:
        """Per-tensor differences from `from_ref` to `to_ref` (default: HEAD with the staged
        changes applied, i.e. what the next commit would hold); `select(name)` limits it to
        some tensors (e.g. no training state, or `--layers`); `progress(phase, done, total)` is
        called as each tensor is compared."""
        old = self.get_tree(from_ref)
        if to_ref is None:
            base = self._head_tree()
            new = apply_changes(base, self.staging.changes())
            to_label = "staged" if new.encode() != base.encode() else HEAD
        else:
            new = self.get_tree(to_ref)
            to_label = to_ref
        if select is not None:
            old = Tree({n: e for n, e in old.entries.items() if select(n)}, old.files)
            new = Tree({n: e for n, e in new.entries.items() if select(n)}, new.files)
        return diff_trees(
            old,
            new,
            lambda e: self.store.load(e.tensor_id).data,
            from_ref,
            to_label,
            norms=norms,
            progress=progress,
        )

    def checkout(self, ref: str, force: bool = False) -> str:
        """Move HEAD: a branch name attaches HEAD to it; a tag, hash or expression detaches it.

        Refuses while changes are staged unless force=True (which drops them). Returns the
        commit hash HEAD now points at.
        """
        is_branch = self.refs.branch_tip(ref) is not None
        target = self.refs.branch_tip(ref) if is_branch else self.resolve_ref(ref)
        if target is not None:
            pruning.check_readable(self, target)  # gc took its weights: PrunedCommitError
        if not force and not self.staging.drop_if_unchanged(self._head_tree()):
            raise DirtyStagingError(f"cannot check out {ref!r}: changes are staged")
        with self.database.transaction() as tx:
            if force:
                self.staging.unstage(tx)
            old = self.refs.head(tx)
            label = f"checkout: moving from {old.branch or (old.commit or '')[:10]} to {ref}"
            if is_branch:
                self.refs.set_head(tx, branch=ref, message=label)
            else:
                self.refs.set_head(tx, commit=target, message=label)
        assert target is not None
        return target

    # -- merge, maintenance, statistics -------------------------------------------------------
    def merge(
        self,
        branch: str | Sequence[str],
        strategy: str = "fail",
        *,
        message: str | None = None,
        author: str | None = None,
        **params: Any,
    ) -> Any:
        """Merge `branch` (or several refs) into HEAD; see `coral.version_control.merge`."""
        from coral.version_control.merge import merge_refs

        return merge_refs(self, branch, strategy, message=message, author=author, **params)

    def gc(
        self,
        *,
        dry_run: bool = False,
        grace_seconds: float = 0.0,
        force: bool = False,
        progress: Any = None,
    ) -> Any:
        """Delete objects nothing reachable needs (refs, HEAD, reflog, staging area), and the
        weights of pruned commits no ref or HEAD names (`prune_commits`).

        Objects younger than `grace_seconds` are kept. `progress(phase, done, total)` is told
        how far it got. Returns a GCResult (with dry_run: what would go, and the bytes)."""
        from coral.version_control.gc import collect_garbage

        result = collect_garbage(
            self, dry_run=dry_run, grace_seconds=grace_seconds, force=force, progress=progress
        )
        if not dry_run:
            result.forget_collected(self._commits, self._trees)
        return result

    def prune_commits(self, hashes: Iterable[str], reason: str = "retention") -> int:
        """Mark commits (hashes or any refs) pruned: they stay in the history, but the next
        `gc` deletes their weights unless a branch, tag or HEAD names them directly (see
        `coral.version_control.pruning`). Returns how many were not pruned already."""
        return pruning.add(self.database, [self.resolve_ref(h) for h in hashes], reason)

    def unprune_commits(self, hashes: Iterable[str]) -> int:
        """Undo `prune_commits`; returns how many were pruned. Raises PrunedCommitError (and
        unprunes none) when gc already deleted the weights of one of them."""
        commits = [self.resolve_ref(h) for h in hashes]
        # the lock waits for a gc deciding with the old list
        with self.write_lock(), self.database.transaction():
            for c in commits:
                err = pruning.collected_error(self, c)
                if err is not None and pruning.weights_collected(self, c):
                    raise err
            return pruning.remove(self.database, commits)

    def pruned_commits(self) -> set[str]:
        """Hashes of every pruned commit."""
        return pruning.pruned(self.database)

    def fsck(self, *, full: bool = True, progress: Any = None) -> Any:
        """Check every object's hash and every reference; returns an FsckReport.
        `progress(phase, done, total)` is told how far it got."""
        from coral.version_control.fsck import check_repository

        return check_repository(self, full=full, progress=progress)

    @property
    def deduplicator(self) -> Any:
        """Deduplication statistics over the whole history (`.get_stats()`)."""
        from coral.version_control.stats import HistoryDeduplication

        return HistoryDeduplication(self)

    def storage_history(self) -> list[dict[str, Any]]:
        """Per commit, oldest first: logical bytes and the stored bytes of tensors it introduced."""
        from coral.version_control.stats import storage_history

        return storage_history(self)


def _select(names: list[str], layers: str | Sequence[str] | None) -> list[str]:
    if layers is None:
        return names
    patterns = [layers] if isinstance(layers, str) else list(layers)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def weights_equal(a: Mapping[str, WeightTensor], b: Mapping[str, WeightTensor]) -> bool:
    """Whether two weight dicts hold the same names and bit-identical tensors."""
    return a.keys() == b.keys() and all(a[k].bit_equal(b[k]) for k in a)

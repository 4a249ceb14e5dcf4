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
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from coral.core.hashing import is_hash
from coral.core.weight_tensor import WeightTensor
from coral.errors import (
    AmbiguousRefError,
    CoralError,
    FormatVersionError,
    NotARepositoryError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryExistsError,
)
from coral.storage.pack_store import PackStore
from coral.version_control import history, pruning
from coral.version_control.database import FORMAT_VERSION, Database
from coral.version_control.diff import DiffResult, diff_trees
from coral.version_control.errors import (
    BranchNotMergedError,
    CurrentBranchError,
    DirtyStagingError,
    WeightNotFoundError,
)
from coral.version_control.locking import RepositoryLock
from coral.version_control.objects import (
    COMMIT,
    FILE,
    TAG,
    TREE,
    Commit,
    FileEntry,
    Tag,
    Tree,
    TreeEntry,
)
from coral.version_control.refnames import HEAD, check_name, parse_ref
from coral.version_control.refs import Branch, HeadState, ReflogEntry, RefStore
from coral.version_control.remote_refs import TrackingRefs, resolve_tracking
from coral.version_control.staging import StagedChange, StagingArea, apply_changes
from coral.version_control.writer import CommitWriter

CORAL_DIR = ".coral"
DB_FILE = "coral.db"
CONFIG_FILE = "config.toml"
OBJECTS_DIR = "objects"
LOCK_FILE = "lock"
DEFAULT_BRANCH = "main"
_MIN_SHORT_HASH = 4
_PARALLEL_READ_BYTES = 4 << 20  # below this, reading tensors one after another is faster


@dataclass
class RepositoryStatus:
    """Where HEAD is and what is staged relative to it."""

    branch: str | None
    head: str | None
    detached: bool
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        return not (self.added or self.modified or self.removed)

    @property
    def staged(self) -> dict[str, list[str]]:
        return {"added": self.added, "modified": self.modified, "removed": self.removed}

    @property
    def unborn(self) -> bool:
        return self.head is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "head": self.head,
            "detached": self.detached,
            "staged": self.staged,
            "clean": self.is_clean,
        }


class Repository:
    """A Coral repository: commits of named tensors, branches, tags, merges.

    `Repository(path)` opens the repository at `path` or the nearest parent holding `.coral`;
    `Repository.init(path)` (or `Repository(path, init=True)`) creates one whose first branch
    is `main`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        init: bool = False,
        *,
        default_branch: str = DEFAULT_BRANCH,
    ) -> None:
        start = Path(path).expanduser().absolute()
        if init:
            self.path = start
            self._create(default_branch)
        else:
            self.path = _find_root(start)
        self.coral_dir = self.path / CORAL_DIR
        self.db_path = self.coral_dir / DB_FILE
        self.config_path = self.coral_dir / CONFIG_FILE
        self.config = _read_config(self.config_path)
        self.database = Database(self.db_path)
        self.database.check_format()
        self.refs = RefStore(self.database)
        self.staging = StagingArea(self.database)
        self.lock = RepositoryLock(self.coral_dir / LOCK_FILE)
        self.store: PackStore = _open_store(self.coral_dir / OBJECTS_DIR, self.config)
        self.store.repository = self  # remotes take a store and need its refs
        self.remote_refs = TrackingRefs(self.database)
        self._commits: OrderedDict[str, Commit] = OrderedDict()
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self.writer = CommitWriter(self)
        self.writer.on_commit.append(self._remember)

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        default_branch: str = DEFAULT_BRANCH,
        exist_ok: bool = False,
    ) -> Repository:
        """Create a repository at `path` (RepositoryExistsError if one exists, unless exist_ok)."""
        target = Path(path).expanduser().absolute()
        if exist_ok and (target / CORAL_DIR / DB_FILE).exists():
            return cls(target)
        return cls(target, init=True, default_branch=default_branch)

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
        """Release database connections and store worker threads."""
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
        tree = Tree.decode(self.store.get_blob(TREE, tree_id), tree_id)
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
    @property
    def current_branch(self) -> str | None:
        """The branch HEAD is attached to (None when detached)."""
        return self.refs.head().branch

    def head(self) -> HeadState:
        return self.refs.head()

    def head_commit(self) -> str | None:
        """HEAD's commit hash (None in a repository without commits)."""
        return self.refs.head().commit

    def resolve_ref(self, ref: str) -> str:
        """Full commit hash of `ref`: branch, tag, full or unique short hash (≥4), HEAD,
        and any of them followed by ~N, ^ or ^N (e.g. `HEAD~3`, `main^2`, `v1.0^^`)."""
        if not isinstance(ref, str):
            raise RefNotFoundError(f"a ref must be a string, not {type(ref).__name__}")
        expr = parse_ref(ref)
        commit = self._resolve_base(expr.base, ref)
        for step in expr.steps:
            if step.op == "~":
                for i in range(step.n):
                    parents = self.read_commit(commit).parent_hashes
                    if not parents:
                        raise RefNotFoundError(
                            f"{ref}: {commit[:10]} has no parent (went back {i} of {step.n})",
                            hint="the history is shorter than that; see `coral log`",
                        )
                    commit = parents[0]
            elif step.n > 0:
                parents = self.read_commit(commit).parent_hashes
                if len(parents) < step.n:
                    raise RefNotFoundError(
                        f"{ref}: {commit[:10]} has {len(parents)} parent(s), not {step.n}",
                        hint="^2 names the second parent of a merge commit",
                    )
                commit = parents[step.n - 1]
        return commit

    def _resolve_base(self, base: str, ref: str) -> str:
        if base == HEAD:
            head = self.refs.head()
            if head.commit is None:
                raise RefNotFoundError(
                    f"HEAD has no commits yet (branch {head.branch!r} is unborn)",
                    hint="stage weights and commit first",
                )
            return head.commit
        for prefix in ("refs/heads/", "heads/"):
            if base.startswith(prefix):
                tip = self.refs.branch_tip(base[len(prefix) :])
                if tip:
                    return tip
        for prefix in ("refs/tags/", "tags/"):
            if base.startswith(prefix):
                tag = self.refs.get_tag(base[len(prefix) :])
                if tag:
                    return tag.commit_hash
        tip = self.refs.branch_tip(base)
        if tip is not None:
            return tip
        tag = self.refs.get_tag(base)
        if tag is not None:
            return tag.commit_hash
        tracked = resolve_tracking(self.database, base) if "/" in base else None
        if tracked is not None:
            return tracked
        lowered = base.lower()
        if all(c in "0123456789abcdef" for c in lowered) and len(lowered) >= _MIN_SHORT_HASH:
            if is_hash(lowered):
                if self.store.has_blob(COMMIT, lowered):
                    return lowered
            else:
                matches = self._commits_with_prefix(lowered)
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    shown = ", ".join(m[:12] for m in matches[:5])
                    raise AmbiguousRefError(
                        f"short hash {base!r} matches {len(matches)} commits: {shown}"
                    )
        raise RefNotFoundError(f"unknown ref {ref!r}: no branch, tag or commit named {base!r}")

    def _commits_with_prefix(self, prefix: str) -> list[str]:
        return sorted(c for c in self.store.list_blobs(COMMIT) if c.startswith(prefix))

    def list_branches(self) -> list[Branch]:
        """Every branch with a commit, sorted by name (`is_current` marks HEAD's)."""
        return self.refs.list_branches()

    def create_branch(self, name: str, from_ref: str | None = None) -> Branch:
        """Create branch `name` at `from_ref` (default HEAD). Does not check it out."""
        check_name(name, "branch")
        target = self.resolve_ref(from_ref or HEAD)
        with self.database.transaction() as tx:
            self.refs.create_branch(tx, name, target, f"branch: created from {from_ref or HEAD}")
        return Branch(name, target, name == self.current_branch)

    def delete_branch(self, name: str, force: bool = False) -> str:
        """Delete branch `name`; refuses the current branch and (unless force) unmerged work.

        Returns the commit the branch pointed at (still reachable through the reflog)."""
        head = self.refs.head()
        if head.branch == name:
            raise CurrentBranchError(f"cannot delete branch {name!r}: HEAD is on it")
        tip = self.refs.branch_tip(name)
        if tip is None:
            raise RefNotFoundError(f"branch {name!r} not found")
        if not force:
            others = [
                c for r, c in self.refs.all_ref_targets().items() if r != f"refs/heads/{name}"
            ]
            if head.commit:
                others.append(head.commit)
            if not any(history.is_ancestor(self.read_commit, tip, o) for o in set(others)):
                raise BranchNotMergedError(
                    f"branch {name!r} ({tip[:10]}) is not merged into any other ref"
                )
        with self.database.transaction() as tx:
            return self.refs.delete_branch(tx, name)

    def tag_version(
        self,
        name: str,
        description: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        ref: str = HEAD,
        *,
        force: bool = False,
        tagger: str | None = None,
    ) -> Tag:
        """Create an annotated tag (description + metrics) on `ref`; kept as a "tag" object too."""
        check_name(name, "tag")
        commit = self.resolve_ref(ref)
        tag = Tag(
            name=name,
            commit_hash=commit,
            description=description,
            metrics=dict(metrics or {}),
            tagger=tagger or self.default_author(),
            created_at=time.time(),
        )
        with self.write_lock():
            tag.tag_id = self.store.put_blob(TAG, tag.encode())
            with self.database.transaction() as tx:
                self.refs.create_tag(tx, tag, force=force)
        return tag

    def adopt_tag(self, name: str, commit: str, tag_id: str | None, info: Mapping[str, Any]) -> Tag:
        """Record a tag fetched from a remote (its tag object, when stored, says it all)."""
        if tag_id and self.store.has_blob(TAG, tag_id):
            tag = Tag.decode(self.store.get_blob(TAG, tag_id), tag_id)
        else:
            tag = Tag(
                name=name,
                commit_hash=commit,
                description=info.get("description"),
                metrics=dict(info.get("metrics") or {}),
                tagger=None,
                created_at=time.time(),
            )
        with self.write_lock(), self.database.transaction() as tx:
            self.refs.create_tag(tx, tag)
        return tag

    def fast_forward(
        self, branch: str, new: str, expected: str | None, message: str, *, attach: bool = False
    ) -> None:
        """Move (or create) `branch` from `expected` to the commit `new` (compare-and-swap);
        `attach` also points HEAD at it (a first pull into an empty repository)."""
        with self.write_lock(), self.database.transaction() as tx:
            if expected is None:
                self.refs.create_branch(tx, branch, new, message)
            else:
                self.refs.update_branch(tx, branch, new, expected, message)
            if attach:
                self.refs.set_head(tx, branch=branch, message=message)

    def get_tag(self, name: str) -> Tag:
        tag = self.refs.get_tag(name)
        if tag is None:
            raise RefNotFoundError(f"tag {name!r} not found")
        return tag

    def list_tags(self) -> list[Tag]:
        """Every tag (with description and metrics), sorted by name."""
        return self.refs.list_tags()

    def delete_tag(self, name: str) -> Tag:
        with self.database.transaction() as tx:
            return self.refs.delete_tag(tx, name)

    def reflog(self, ref: str = HEAD, limit: int | None = None) -> list[ReflogEntry]:
        """Movements of `ref` ("HEAD" or a branch name), newest first."""
        return self.refs.reflog(ref, limit)

    def expire_reflog(self, older_than: float = 0.0) -> int:
        """Forget reflog entries older than `older_than` seconds (0: all), so that gc may remove
        commits only the reflog still reached; returns how many entries were dropped."""
        return self.refs.expire_reflog(time.time() - older_than)

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

    def _fingerprint_index(self) -> Any:
        return self.writer.fingerprint_index()

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
        Raises NothingToCommitError in those cases, and
        ConcurrentUpdateError when another process moved the branch meanwhile (the staged
        changes stay staged; commit again).
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
                return {e.name: self._load_entry(e, lazy) for e in entries}
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
            return self._load_entry(entry, lazy)
        except ObjectNotFoundError as exc:
            pruning.raise_if_collected(self, commit_hash, exc)
            raise

    def _load_entry(self, entry: TreeEntry, lazy: bool) -> WeightTensor:
        meta = entry.to_metadata()
        if lazy:
            store, tid = self.store, entry.tensor_id
            return WeightTensor(metadata=meta, loader=lambda: store.load(tid).data)
        loaded = self.store.load(entry.tensor_id, entry.name)
        return WeightTensor(loaded.data, replace(meta, shape=loaded.shape, dtype=loaded.dtype))

    def load_entry(self, entry: TreeEntry, lazy: bool = False) -> WeightTensor:
        """The tensor a tree entry names, with the entry's metadata."""
        return self._load_entry(entry, lazy)

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
        head = self.refs.head()
        base = self._head_tree()
        st = RepositoryStatus(head.branch, head.commit, head.detached)
        for name, change in self.staging.changes().items():
            old = base.entries.get(name)
            if change.entry is None:
                if old is not None:
                    st.removed.append(name)
            elif old is None:
                st.added.append(name)
            elif not change.entry.same_content(old):
                st.modified.append(name)
        return st

    def diff(self, from_ref: str, to_ref: str | None = None, *, norms: bool = True) -> DiffResult:
        """Per-tensor differences from `from_ref` to `to_ref` (default: HEAD with the staged
        changes applied, i.e. what the next commit would hold)."""
        old = self.get_tree(from_ref)
        if to_ref is None:
            base = self._head_tree()
            new = apply_changes(base, self.staging.changes())
            to_label = "staged" if new.encode() != base.encode() else HEAD
        else:
            new = self.get_tree(to_ref)
            to_label = to_ref
        return diff_trees(
            old, new, lambda e: self.store.load(e.tensor_id).data, from_ref, to_label, norms=norms
        )

    def checkout(self, ref: str, force: bool = False) -> str:
        """Move HEAD: a branch name attaches HEAD to it; a tag, hash or expression detaches it.

        Refuses while changes are staged unless force=True (which drops them). Returns the
        commit hash HEAD now points at.
        """
        is_branch = self.refs.branch_tip(ref) is not None
        target = self.refs.branch_tip(ref) if is_branch else self.resolve_ref(ref)
        if not self.staging.is_empty() and not force:
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

    def gc(self, *, dry_run: bool = False, grace_seconds: float = 0.0, force: bool = False) -> Any:
        """Delete objects nothing reachable needs (refs, HEAD, reflog, staging area), and the
        weights of pruned commits no ref or HEAD names (`prune_commits`).

        Objects younger than `grace_seconds` are kept. Returns a GCResult."""
        from coral.version_control.gc import collect_garbage

        return collect_garbage(self, dry_run=dry_run, grace_seconds=grace_seconds, force=force)

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

    def fsck(self, *, full: bool = True) -> Any:
        """Check every object's hash and every reference; returns an FsckReport."""
        from coral.version_control.fsck import check_repository

        return check_repository(self, full=full)

    @property
    def deduplicator(self) -> Any:
        """Deduplication statistics over the whole history (`.get_stats()`)."""
        from coral.version_control.stats import HistoryDeduplication

        return HistoryDeduplication(self)

    def storage_history(self) -> list[dict[str, Any]]:
        """Per commit, oldest first: logical bytes and the stored bytes of tensors it introduced."""
        from coral.version_control.stats import storage_history

        return storage_history(self)

    # -- internals used by merge ----------------------------------------------------------------
    def _write_commit(
        self,
        tree: Tree,
        parents: list[str],
        message: str,
        author: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> Commit:
        return self.writer.write_commit(tree, parents, message, author, metadata)


def _select(names: list[str], layers: str | Sequence[str] | None) -> list[str]:
    if layers is None:
        return names
    patterns = [layers] if isinstance(layers, str) else list(layers)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _find_root(start: Path) -> Path:
    if start.name == CORAL_DIR and (start / DB_FILE).exists():
        return start.parent
    for candidate in (start, *start.parents):
        if (candidate / CORAL_DIR / DB_FILE).is_file():
            return candidate
    raise NotARepositoryError(f"not a Coral repository (or any parent up to /): {start}")


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CoralError(f"cannot read {path}: {exc}", hint="fix or delete the file") from exc
    core = config.get("core", {})
    found = core.get("format_version") if isinstance(core, dict) else None
    if isinstance(found, int) and found > FORMAT_VERSION:
        raise FormatVersionError(
            f"repository format {found} (in {path}) is newer than this Coral supports "
            f"({FORMAT_VERSION})"
        )
    return config


def _open_store(root: Path, config: Mapping[str, Any]) -> PackStore:
    from coral.storage.config import StoreConfig

    settings = config.get("storage", {}) if isinstance(config.get("storage"), dict) else {}
    valid = [f.name for f in fields(StoreConfig)]
    unknown = sorted(k for k in settings if k not in valid)
    if unknown:
        raise CoralError(
            f"unknown [storage] setting{'s' if len(unknown) > 1 else ''} in config.toml: "
            + ", ".join(repr(k) for k in unknown),
            hint=f"fix the spelling in .coral/config.toml; valid keys: {', '.join(valid)}",
        )
    try:
        store_config = StoreConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise CoralError(f"bad [storage] settings in config.toml: {exc}") from exc
    return PackStore(root, store_config)


def weights_equal(a: Mapping[str, WeightTensor], b: Mapping[str, WeightTensor]) -> bool:
    """Whether two weight dicts hold the same names and bit-identical tensors."""
    return a.keys() == b.keys() and all(a[k].bit_equal(b[k]) for k in a)

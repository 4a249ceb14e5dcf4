"""What the modules beside `Repository` need from it, as Protocols.

fsck, merge and the history statistics work on a repository, and `Repository` calls them with
itself; so that they do not import `repository.py` (an import cycle), each names only the members
it uses, and `Repository` satisfies them structurally (mypy checks it where `Repository` passes
`self`). Each Protocol lists exactly what its module reads; add a member here when a module
starts using one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from coral.core.weight_tensor import WeightTensor
from coral.storage.pack_store import PackStore
from coral.version_control.database import Database
from coral.version_control.locking import RepositoryLock
from coral.version_control.objects import Commit, Tree, TreeEntry
from coral.version_control.refs import RefStore
from coral.version_control.staging import StagingArea
from coral.version_control.writer import CommitWriter


class CommitReader(Protocol):
    """Commits and trees by their full ids."""

    def read_commit(self, commit_hash: str) -> Commit: ...

    def read_tree(self, tree_id: str) -> Tree: ...


class StoredHistory(CommitReader, Protocol):
    """Commits and trees, the object store, and the database (the pruned-commit list lives
    there): what deciding whether gc took a pruned commit's weights reads."""

    @property
    def store(self) -> PackStore: ...

    @property
    def database(self) -> Database: ...


class CheckedRepository(StoredHistory, Protocol):
    """What `fsck.check_repository` reads: objects, refs and tags, the reflog, the staging
    area."""

    @property
    def refs(self) -> RefStore: ...

    @property
    def staging(self) -> StagingArea: ...


class MergeableRepository(StoredHistory, Protocol):
    """What `merge.merge_refs` reads and writes: refs, HEAD and the staging area, the store
    (loading and storing combined tensors), the commit writer and the write lock."""

    @property
    def refs(self) -> RefStore: ...

    @property
    def staging(self) -> StagingArea: ...

    @property
    def writer(self) -> CommitWriter: ...

    def resolve_ref(self, ref: str) -> str: ...

    def write_lock(self) -> AbstractContextManager[None]: ...

    def load_entry(self, entry: TreeEntry, lazy: bool = False) -> WeightTensor: ...


class HistoryRepository(StoredHistory, Protocol):
    """What the history statistics (`stats.py`) read: every reachable commit, its tree, and
    each tensor's storage facts."""

    def iter_commits(self, refs: Iterable[str] | None = None) -> Iterator[Commit]: ...


class CollectableRepository(StoredHistory, Protocol):
    """What gc (`gc.py`) reads: refs, HEAD and the reflog (roots), the staging area (roots),
    the repository lock, and the commit writer (its similarity index forgets what gc deletes)."""

    @property
    def refs(self) -> RefStore: ...

    @property
    def staging(self) -> StagingArea: ...

    @property
    def lock(self) -> RepositoryLock: ...

    @property
    def writer(self) -> CommitWriter: ...

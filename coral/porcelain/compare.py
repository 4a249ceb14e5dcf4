"""Comparisons a browser shows: two commits' diff, one tensor at several commits (histograms on
shared bins), and what a checkout would change before it is made."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.core.lazy_imports import lazy_module
from coral.core.training_names import is_training_state
from coral.core.value_stats import value_stats
from coral.porcelain.history import TensorDetail, pruned_state
from coral.storage.base import ObjectStats
from coral.version_control.diff import (
    ADDED,
    IDENTICAL,
    DiffResult,
    Progress,
    TensorComparison,
    natural_key,
)
from coral.version_control.objects import Commit, Tree
from coral.version_control.repository import Repository

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

# -- which tensors ------------------------------------------------------------------------------


def tensor_select(
    layers: Sequence[str] | None = None, include_training_state: bool = False
) -> Callable[[str], bool] | None:
    """The names a comparison covers: those matching a `layers` glob (all without one), and
    training state (optimizer, scheduler, RNG) only when asked for; None selects everything."""
    patterns = list(layers or [])
    if not patterns and include_training_state:
        return None

    def select(name: str) -> bool:
        if not include_training_state and is_training_state(name):
            return False
        return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return select


def _training_state(trees: Sequence[Tree]) -> int:
    return len({n for t in trees for n in t.entries if is_training_state(n)})


# -- two commits --------------------------------------------------------------------------------


@dataclass
class CommitDiff:
    """The diff engine's verdicts from `from_ref` to `to_ref`, and the training-state tensors
    left out of it (0 when they were included)."""

    result: DiffResult
    training_state_hidden: int

    @property
    def rows(self) -> list[TensorComparison]:
        """Every tensor that differs (identical ones left out), in the engine's order."""
        return [t for t in self.result.tensors if t.category != IDENTICAL]


def diff_commits(
    repo: Repository,
    from_ref: str,
    to_ref: str | None,
    *,
    include_training_state: bool = False,
    layers: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> CommitDiff:
    """`coral diff FROM TO` as data: `to_ref` None means HEAD plus the staged changes.
    `progress(phase, done, total)` is called per tensor; an exception it raises stops the diff
    (that is how a caller cancels)."""
    select = tensor_select(layers, include_training_state)
    result = repo.diff(from_ref, to_ref, select=select, progress=progress)
    hidden = 0
    if not include_training_state:
        hidden = _training_state([repo.get_tree(from_ref), repo.get_tree(to_ref or "HEAD")])
    return CommitDiff(result, hidden)


# -- one tensor at several commits --------------------------------------------------------------


@dataclass
class TensorVersions:
    """One tensor at several refs: a detail per ref (None where the tensor does not exist) whose
    histograms share one set of bin edges, so they can be drawn side by side."""

    name: str
    refs: list[str]
    versions: list[TensorDetail | None]
    edges: list[float] = field(default_factory=list)


def _finite(data: np.ndarray) -> np.ndarray:
    flat = np.asarray(data).reshape(-1)
    if flat.dtype.kind not in "fiub":
        try:
            flat = flat.astype(np.float64)
        except (TypeError, ValueError):
            return np.empty(0)
    values = flat.astype(np.float64, copy=False)
    return values[np.isfinite(values)]


def tensor_versions(
    repo: Repository, name: str, refs: Sequence[str], *, bins: int = 40
) -> TensorVersions:
    """Statistics of `name` at each of `refs`, histograms over shared bins (finite values)."""
    found: list[tuple[Commit, Any, np.ndarray] | None] = []
    for ref in refs:
        commit = repo.get_commit(ref)
        entry = repo.read_tree(commit.tree_id).entries.get(name)
        found.append(None if entry is None else (commit, entry, repo.load_entry(entry).data))
    values = [_finite(f[2]) for f in found if f is not None]
    lo = min((float(v.min()) for v in values if v.size), default=None)
    hi = max((float(v.max()) for v in values if v.size), default=None)
    edges: list[float] = []
    if lo is not None and hi is not None:
        edges = [float(x) for x in np.histogram_bin_edges([lo, hi], bins=bins)]
    versions: list[TensorDetail | None] = []
    for f in found:
        if f is None:
            versions.append(None)
            continue
        commit, entry, data = f
        counts: list[int] = []
        if edges:
            counts = [int(c) for c in np.histogram(_finite(data), bins=np.asarray(edges))[0]]
        stored = repo.store.stats(entry.tensor_id)
        versions.append(
            TensorDetail(
                commit,
                entry,
                value_stats(data),
                (counts, edges if counts else []),
                stored if isinstance(stored, ObjectStats) else None,
            )
        )
    return TensorVersions(name, list(refs), versions, edges)


# -- before a checkout --------------------------------------------------------------------------


@dataclass
class CheckoutPreview:
    """What `checkout(ref)` would do: where HEAD goes, the tensors that would change (HEAD to
    the target, identical ones left out), staged changes that stand in its way, pruned state."""

    ref: str
    target: Commit
    branch: str | None  # the branch HEAD would attach to; None: HEAD would be detached
    head: str | None  # HEAD's commit now (None while unborn)
    changes: list[TensorComparison]
    counts: dict[str, int]
    files: dict[str, str]  # model file path -> added / removed / changed
    staged: list[tuple[str, str]]  # (new / modified / deleted / file, name): checkout refuses
    # while anything is staged; force drops it
    training_state_hidden: int
    pruned: str | None

    @property
    def moves(self) -> bool:
        return self.head != self.target.commit_hash


def _file_changes(old: Tree, new: Tree) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(set(old.files) | set(new.files)):
        a, b = old.files.get(path), new.files.get(path)
        if a != b:
            out[path] = "added" if a is None else "removed" if b is None else "changed"
    return out


def checkout_preview(
    repo: Repository, ref: str, *, include_training_state: bool = False
) -> CheckoutPreview:
    """What checking out `ref` would change; nothing is moved or written. A branch name
    attaches HEAD to it, anything else detaches HEAD (as `Repository.checkout` does)."""
    is_branch = any(b.name == ref for b in repo.list_branches())
    target = repo.get_commit(ref)
    head = repo.head_commit()
    select = tensor_select(None, include_training_state)
    new = repo.read_tree(target.tree_id)
    if head is None:
        old = Tree()
        changes = [
            TensorComparison(n, ADDED, new_shape=tuple(e.shape), new_dtype=e.dtype)
            for n, e in sorted(new.entries.items(), key=lambda kv: natural_key(kv[0]))
            if select is None or select(n)
        ]
    else:
        old = repo.get_tree(head)
        result = repo.diff(head, target.commit_hash, norms=False, select=select)
        changes = [t for t in result.tensors if t.category != IDENTICAL]
    counts: dict[str, int] = {}
    for t in changes:
        counts[t.category] = counts.get(t.category, 0) + 1
    st = repo.status()
    staged = [
        *(("new", n) for n in st.added),
        *(("modified", n) for n in st.modified),
        *(("deleted", n) for n in st.removed),
        *(("file", p) for p in st.files),
    ]
    hidden = 0 if include_training_state else _training_state([old, new])
    return CheckoutPreview(
        ref,
        target,
        ref if is_branch else None,
        head,
        changes,
        counts,
        _file_changes(old, new),
        staged,
        hidden,
        pruned_state(repo, target.commit_hash),
    )

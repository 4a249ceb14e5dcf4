"""The ancestry of one tensor: the commits where its content changed, and what each version
was derived from.

History is walked from a ref as `git log -- PATH` does: a commit whose tensor equals one of
its parents' is passed over (only that parent is followed); every other commit that holds or
removes the tensor is a version. Each version says what it was derived from — the previous
version, the parents' versions at a merge, the tensor its stored chunks are deltas of, and the
base model its commit's provenance names — with its stored size and L2 norms.
"""

from __future__ import annotations

import difflib
import heapq
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coral.errors import CoralError, ObjectNotFoundError
from coral.storage.base import CHUNK, TENSOR, ObjectStats
from coral.version_control.diff import block_slices, change_metrics, real_view
from coral.version_control.errors import WeightNotFoundError
from coral.version_control.objects import Commit, Tree, TreeEntry
from coral.version_control.provenance import read_provenance
from coral.version_control.repository import Repository

ADDED, CHANGED, MERGED, REMOVED = "added", "changed", "merged", "removed"
UNKNOWN = "unknown"  # a parent's tree is pruned and collected: what came before is not known
_MANIFEST_READS = 2000  # tensors a delta-source search looks at, at most, per ancestry
_CLOSE_NAMES = 3


@dataclass(frozen=True)
class TensorRef:
    """A version of a tensor: its content id, the name and commit it has there (an empty id:
    a tensor outside the history walked)."""

    tensor_id: str
    name: str | None = None
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor_id or None, "name": self.name, "commit_hash": self.commit}


@dataclass
class Storage:
    """How a version is stored: bytes on disk, encoding, delta depth, and the tensors its
    delta chunks are encoded against (empty when stored FULL)."""

    stored_bytes: int
    raw_bytes: int
    encoding: str
    chain_depth: int
    delta_of: list[TensorRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stored_bytes": self.stored_bytes,
            "raw_bytes": self.raw_bytes,
            "encoding": self.encoding,
            "chain_depth": self.chain_depth,
            "delta_of": [r.to_dict() for r in self.delta_of],
        }


@dataclass
class TensorVersion:
    """One commit where the tensor's content changed (or it appeared or went away)."""

    commit: Commit
    kind: str  # ADDED, CHANGED, MERGED, REMOVED, UNKNOWN
    entry: TreeEntry | None  # None when REMOVED
    previous: list[TensorRef]  # the parents' versions (one; several at a merge)
    base: dict[str, Any]  # the fine-tune base the commit's provenance names
    norm: float | None = None  # L2 norm of this version
    change_l2: float | None = None  # ‖this − previous‖₂ (first parent's version)
    relative: float | None = None  # change_l2 / ‖previous‖₂
    stored: Storage | None = None
    same_as: str | None = None  # an older version's commit with these very bits (a revert)

    def to_dict(self) -> dict[str, Any]:
        c, e = self.commit, self.entry
        return {
            "commit_hash": c.commit_hash,
            "timestamp": c.timestamp,
            "author": c.author,
            "message": c.message,
            "kind": self.kind,
            "tensor": e.tensor_id if e else None,
            "shape": list(e.shape) if e else None,
            "dtype": e.dtype if e else None,
            "previous": [p.to_dict() for p in self.previous],
            "base": self.base or None,
            "norm": self.norm,
            "change_l2": self.change_l2,
            "relative_change": self.relative,
            "storage": self.stored.to_dict() if self.stored else None,
            "same_as": self.same_as,
        }


@dataclass
class Ancestry:
    name: str
    ref: str
    commit_hash: str
    versions: list[TensorVersion]  # newest first
    truncated: bool  # part of the history could not be read (pruned and collected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ref": self.ref,
            "commit_hash": self.commit_hash,
            "truncated": self.truncated,
            "versions": [v.to_dict() for v in self.versions],
        }


class _Walk:
    """Reads trees and tensors once, remembering the tensors seen for delta-source lookups."""

    def __init__(self, repo: Repository, name: str) -> None:
        self.repo = repo
        self.name = name
        self.truncated = False
        self.unreadable: set[str] = set()  # commits whose tree gc collected
        self.seen: dict[str, tuple[TensorRef, str, int]] = {}  # id -> (where, dtype, bytes)
        self.names: set[str] = set()
        self._arrays: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._chunks: dict[str, frozenset[str]] = {}

    def entry(self, commit: Commit) -> tuple[bool, TreeEntry | None]:
        """(readable, the tensor's entry) in `commit`'s tree."""
        try:
            tree: Tree = self.repo.read_tree(commit.tree_id)
        except ObjectNotFoundError:
            self.truncated = True
            self.unreadable.add(commit.commit_hash)
            return False, None
        self.names.update(tree.entries)
        for e in tree.entries.values():
            if e.tensor_id not in self.seen:
                ref = TensorRef(e.tensor_id, e.name, commit.commit_hash)
                self.seen[e.tensor_id] = (ref, e.dtype, e.nbytes)
        return True, tree.entries.get(self.name)

    def load(self, entry: TreeEntry) -> np.ndarray | None:
        """The tensor's values (None when gc collected them); the last few are kept."""
        if entry.tensor_id not in self._arrays:
            try:
                data: np.ndarray | None = self.repo.load_entry(entry).data
            except ObjectNotFoundError:
                data = None
            self._arrays[entry.tensor_id] = data
            while len(self._arrays) > 3:
                self._arrays.popitem(last=False)
        return self._arrays[entry.tensor_id]

    def chunks(self, tensor_id: str) -> frozenset[str]:
        if tensor_id not in self._chunks:
            try:
                deps = self.repo.store.dependencies(TENSOR, tensor_id)
            except CoralError:
                deps = []
            self._chunks[tensor_id] = frozenset(c for _, c in deps)
        return self._chunks[tensor_id]

    def storage(self, entry: TreeEntry, previous: list[TensorRef]) -> Storage | None:
        store = self.repo.store
        try:
            stats = store.stats(entry.tensor_id)
            refs = {
                r for c in self.chunks(entry.tensor_id) for _, r in store.dependencies(CHUNK, c)
            }
        except CoralError:
            return None
        if not isinstance(stats, ObjectStats):
            return None
        return Storage(
            stats.stored_bytes,
            stats.raw_bytes,
            stats.encoding,
            stats.chain_depth,
            self._owners(refs - self.chunks(entry.tensor_id), entry, previous),
        )

    def _owners(
        self, refs: set[str], entry: TreeEntry, previous: list[TensorRef]
    ) -> list[TensorRef]:
        """The tensors holding the reference chunks `refs`: the previous versions first, then
        tensors of the same dtype and size (a delta needs both) seen in the history walked."""
        if not refs:
            return []
        found: list[TensorRef] = []
        tried = {entry.tensor_id}
        for cand in self._candidates(entry, previous):
            if not refs or len(tried) > _MANIFEST_READS:
                break
            if cand.tensor_id in tried:
                continue
            tried.add(cand.tensor_id)
            held = refs & self.chunks(cand.tensor_id)
            if held:
                found.append(cand)
                refs -= held
        if refs:
            found.append(TensorRef("", None, None))  # a tensor outside the history walked
        return found

    def _candidates(self, entry: TreeEntry, previous: list[TensorRef]) -> Iterator[TensorRef]:
        yield from previous
        alike = [
            r
            for r, dtype, size in self.seen.values()
            if (dtype, size) == (entry.dtype, entry.nbytes)
        ]
        yield from sorted(alike, key=lambda r: r.name != entry.name)  # same name first


def _l2(data: np.ndarray) -> float | None:
    """L2 norm of the finite values (float64, block by block); None for non-numeric data."""
    try:
        flat = real_view(data)
        total = 0.0
        for sl in block_slices(int(flat.size)):
            x = np.asarray(flat[sl], dtype=np.float64)
            x = x[np.isfinite(x)]
            total += float(np.dot(x, x))
    except (TypeError, ValueError):
        return None
    return math.sqrt(total)


def _same(a: TreeEntry | None, b: TreeEntry | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.tensor_id == b.tensor_id


def _walk(
    repo: Repository, start: str, walk: _Walk
) -> Iterator[tuple[Commit, TreeEntry | None, list[tuple[str, TreeEntry | None]]]]:
    """(commit, entry, [(parent, its entry)]) of each commit where the tensor differs from
    every parent, newest first (a child before its parents)."""
    heap: list[tuple[float, int, str]] = []
    queued: set[str] = set()
    counter = 0

    def push(cid: str, child_ts: float) -> None:
        nonlocal counter
        if cid in queued:
            return
        queued.add(cid)
        try:
            ts = repo.read_commit(cid).timestamp
        except ObjectNotFoundError:
            walk.truncated = True
            return
        heapq.heappush(heap, (-min(ts, child_ts), counter, cid))
        counter += 1

    push(start, math.inf)
    while heap:
        _, _, cid = heapq.heappop(heap)
        commit = repo.read_commit(cid)
        readable, entry = walk.entry(commit)
        if not readable:
            continue
        parents: list[tuple[str, TreeEntry | None]] = []
        for p in commit.parent_hashes:
            try:
                ok, pe = walk.entry(repo.read_commit(p))
            except ObjectNotFoundError:
                ok, pe = False, None
                walk.truncated = True
                walk.unreadable.add(p)
            if ok:
                parents.append((p, pe))
        same = next((p for p, pe in parents if _same(entry, pe)), None)
        if same is not None:  # the tensor came unchanged from this parent: follow it alone
            push(same, commit.timestamp)
            continue
        if entry is not None or any(pe is not None for _, pe in parents):
            yield commit, entry, parents
        for p, _ in parents:
            push(p, commit.timestamp)


def ancestry(
    repo: Repository, name: str, ref: str = "HEAD", *, max_count: int | None = None
) -> Ancestry:
    """The versions of tensor `name` reachable from `ref`, newest first (at most `max_count`),
    each with what it was derived from, its storage and its norms."""
    start = repo.resolve_ref(ref)
    walk = _Walk(repo, name)
    versions: list[TensorVersion] = []
    for commit, entry, parents in _walk(repo, start, walk):
        versions.append(_version(walk, commit, entry, parents))
        if max_count is not None and len(versions) >= max_count:
            break
    if not versions and walk.truncated and not walk.names:
        raise CoralError(
            f"the history of {ref} cannot be read: its commits are pruned and collected",
            hint="`coral log` shows which commits remain readable",
        )
    if not versions:
        raise _unknown_weight(name, ref, walk.names)
    first_seen: dict[str, str] = {}
    for v in reversed(versions):
        if v.entry is not None:
            v.same_as = first_seen.setdefault(v.entry.tensor_id, v.commit.commit_hash)
            if v.same_as == v.commit.commit_hash:
                v.same_as = None
    return Ancestry(name, ref, start, versions, walk.truncated)


def _version(
    walk: _Walk,
    commit: Commit,
    entry: TreeEntry | None,
    parents: list[tuple[str, TreeEntry | None]],
) -> TensorVersion:
    previous = [TensorRef(pe.tensor_id, pe.name, p) for p, pe in parents if pe is not None]
    if entry is None:
        kind = REMOVED
    elif walk.unreadable.intersection(commit.parent_hashes):
        kind = UNKNOWN
    elif not previous:
        kind = ADDED
    else:
        kind = MERGED if len(parents) > 1 else CHANGED
    base = dict(read_provenance(commit.metadata).get("base") or {})
    version = TensorVersion(commit, kind, entry, previous, base)
    if entry is None:
        return version
    version.stored = walk.storage(entry, previous)
    data = walk.load(entry)
    first = next((pe for _, pe in parents if pe is not None), None)
    old = walk.load(first) if first is not None else None
    if data is not None and old is not None and old.shape == data.shape:
        try:
            metrics = change_metrics(old, data)
        except (TypeError, ValueError):
            metrics = None
        if metrics is not None:
            version.norm, version.change_l2 = metrics.norm_b, metrics.l2
            version.relative = metrics.relative
    if version.norm is None and data is not None:
        version.norm = _l2(data)
    return version


def _unknown_weight(name: str, ref: str, names: set[str]) -> WeightNotFoundError:
    close = difflib.get_close_matches(name, sorted(names), n=_CLOSE_NAMES, cutoff=0.5)
    hint = (
        "did you mean " + ", ".join(close) + "?"
        if close
        else f"list the tensors with `coral show {ref}`"
    )
    return WeightNotFoundError(f"no weight named {name!r} in the history of {ref}", hint=hint)

"""Garbage collection: delete every object that nothing reachable needs.

Roots: all branches and tags (and tag objects), HEAD, every commit any reflog entry names, and
every tensor in the staging area. From the roots: commits -> parents and trees -> tensors;
the store adds the chunks those tensors need, delta references included. A pruned commit
(`coral.version_control.pruning`) is kept and its parents are followed, but its tree is live
only while a branch, tag or HEAD names the commit itself — being reachable through a
descendant or through the reflog is not enough — so gc deletes the tree and every tensor
nothing live shares with it. The walk and the deletion run under the repository lock held
exclusively, so no writer can store an object and reference it while gc decides it is garbage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import CHUNK, TENSOR
from coral.version_control import pruning
from coral.version_control.objects import COMMIT, TAG, TREE

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


@dataclass
class LiveSet:
    """What gc keeps."""

    commits: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    tensors: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)  # reachable but absent (fsck reports them)


@dataclass
class GCResult:
    """Objects removed (or that would be, with dry_run) per kind, and bytes freed."""

    removed: dict[str, int] = field(default_factory=dict)
    freed_bytes: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "removed": dict(self.removed),
            "freed_bytes": self.freed_bytes,
            "kept": dict(self.kept),
            "dry_run": self.dry_run,
        }


def live_objects(repo: Repository) -> LiveSet:
    """Everything reachable from refs, HEAD, the reflog and the staging area (the trees of
    pruned commits only when a ref or HEAD names the commit)."""
    live = LiveSet()
    roots = set(repo.refs.all_ref_targets().values())
    head = repo.refs.head().commit
    if head:
        roots.add(head)
    named = set(roots)
    pruned = pruning.pruned(repo.database)
    roots |= repo.refs.reflog_commits()
    live.tags = {t.tag_id for t in repo.refs.list_tags() if t.tag_id}
    stack = list(roots)
    while stack:
        cid = stack.pop()
        if cid in live.commits:
            continue
        try:
            commit = repo.read_commit(cid)
        except (ObjectNotFoundError, CorruptObjectError):
            live.missing.append(f"commit {cid}")
            continue
        live.commits.add(cid)
        stack.extend(commit.parent_hashes)
        if commit.tree_id in live.trees:
            continue
        if cid in pruned and (cid not in named or not repo.store.has_blob(TREE, commit.tree_id)):
            continue  # its weights go (or went, in an earlier gc: not a missing object)
        live.trees.add(commit.tree_id)
        try:
            tree = repo.read_tree(commit.tree_id)
        except (ObjectNotFoundError, CorruptObjectError):
            live.missing.append(f"tree {commit.tree_id}")
            continue
        live.tensors |= tree.tensor_ids()
    live.tensors |= repo.staging.tensor_ids()
    return live


def collect_garbage(
    repo: Repository, *, dry_run: bool = False, grace_seconds: float = 0.0, force: bool = False
) -> GCResult:
    """Remove unreachable objects (none when dry_run; then report what would go).

    Refuses (CorruptObjectError) when a reachable commit or tree cannot be read — what it
    references would look unreachable — unless force=True.
    """
    store = repo.store
    with repo.lock.exclusive():
        live = live_objects(repo)
        if live.missing and not force and not dry_run:
            first = live.missing[0].split()
            raise CorruptObjectError(
                first[1],
                None,
                f"gc stopped: {len(live.missing)} reachable object(s) are missing or "
                f"corrupt (first: {live.missing[0]}), so what they reference cannot be traced",
                hint="run `coral fsck` to list them and copy them back from a backup of "
                ".coral/objects; Repository.gc(force=True) collects anyway, deleting what only "
                "they referenced",
            )
        live_blobs = {COMMIT: live.commits, TREE: live.trees, TAG: live.tags}
        result = GCResult(
            dry_run=dry_run,
            kept={
                TENSOR: len(live.tensors),
                COMMIT: len(live.commits),
                TREE: len(live.trees),
                TAG: len(live.tags),
            },
        )
        if dry_run:
            result.removed = _would_remove(repo, live, live_blobs)
            return result
        dead = [t for t in store.list() if t not in live.tensors]
        report = store.gc(live.tensors, live_blobs, grace_seconds=grace_seconds)
        _forget_fingerprints(repo, [t for t in dead if not store.exists(t)])
        gone = [c for c in pruning.pruned(repo.database) if not store.has_blob(COMMIT, c)]
        pruning.remove(repo.database, gone)  # deleted commits need no pruned mark
    result.removed = dict(report.removed)
    result.freed_bytes = report.freed_bytes
    for cid in list(repo._commits):
        if cid not in live.commits:
            repo._commits.pop(cid, None)
    for tid in list(repo._trees):
        if tid not in live.trees:
            repo._trees.pop(tid, None)
    return result


def _would_remove(
    repo: Repository, live: LiveSet, live_blobs: dict[str, set[str]]
) -> dict[str, int]:
    store = repo.store
    out: dict[str, int] = {}
    dead_tensors = [t for t in store.list() if t not in live.tensors]
    if dead_tensors:
        out[TENSOR] = len(dead_tensors)
    keep = store.live_chunks(live.tensors)
    dead_chunks = sum(1 for c in store.list_blobs(CHUNK) if c not in keep)
    if dead_chunks:
        out[CHUNK] = dead_chunks
    for kind, keep_ids in live_blobs.items():
        n = sum(1 for b in store.list_blobs(kind) if b not in keep_ids)
        if n:
            out[kind] = n
    return out


def _forget_fingerprints(repo: Repository, removed: list[str]) -> None:
    index = repo._fingerprint_index() if removed else None
    if index is None:
        return
    # derived data: a stale fingerprint only yields a reference that is gone
    with contextlib.suppress(Exception):
        index.remove(removed)

"""Garbage collection: delete every object that nothing reachable needs.

Roots: all branches and tags (and tag objects), HEAD, every commit any reflog entry names, and
every tensor staged or stashed (`stash`). From the roots: commits -> parents and trees -> tensors;
the store adds the chunks those tensors need, delta references included. A pruned commit
(`coral.version_control.pruning`: training retention prunes the checkpoints it no longer keeps)
is kept and its parents are followed, but its tree is live only while a branch, tag or HEAD
names the commit itself — being reachable through a descendant or through the reflog is not
enough — so gc deletes the tree and every tensor nothing live shares with it; reading the commit
afterwards raises PrunedCommitError. The walk and the deletion run under the repository lock
held exclusively, so no writer can store an object and reference it while gc decides it is
garbage. Before it deletes anything, gc refuses while a live object is damaged or missing
(`coral.storage.damage_scan`), unless forced. `dry_run` deletes nothing and reports what
would go and the bytes it takes now.
Progress goes to an optional `progress(phase, done, total)` callback (`progress.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.backend import LocalBackend
from coral.storage.base import CHUNK, TENSOR
from coral.storage.damage_scan import Damage, find_damage
from coral.storage.repack import maintenance_lock
from coral.version_control import pruning
from coral.version_control.objects import COMMIT, FILE, TAG, TREE
from coral.version_control.progress import Phase, Progress
from coral.version_control.stash import StashStore

if TYPE_CHECKING:
    from coral.version_control.repo_protocol import CollectableRepository, StoredHistory


@dataclass
class LiveSet:
    """What gc keeps."""

    commits: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    tensors: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)  # model-file blobs of live trees and staging
    missing: list[str] = field(default_factory=list)  # reachable but absent (fsck reports them)


@dataclass
class GCResult:
    """Objects removed (or that would be, with dry_run) per kind, and bytes freed (or that
    would be: what those objects take in the store now)."""

    removed: dict[str, int] = field(default_factory=dict)
    freed_bytes: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    live_commits: set[str] = field(default_factory=set, repr=False)  # what stays readable
    live_trees: set[str] = field(default_factory=set, repr=False)

    def forget_collected(
        self, commits: MutableMapping[str, Any], trees: MutableMapping[str, Any]
    ) -> None:
        """Drop what gc deleted from caches of commits and trees (by id)."""
        for cache, live in ((commits, self.live_commits), (trees, self.live_trees)):
            for gone in [k for k in cache if k not in live]:
                del cache[gone]

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


def live_objects(repo: CollectableRepository, progress: Progress | None = None) -> LiveSet:
    """Everything reachable from refs, HEAD, the reflog, the staging area and the stash (the
    trees of pruned commits only when a ref or HEAD names the commit)."""
    live = LiveSet()
    phase = Phase(progress, "tracing history", len(repo.store.list_blobs(COMMIT)))
    roots = set(repo.refs.all_ref_targets().values())
    head = repo.refs.head().commit
    if head:
        roots.add(head)
    named = set(roots)
    pruned = pruning.pruned(repo.database)
    roots |= repo.refs.reflog_commits()
    stashed = StashStore(repo.database).roots()
    roots |= stashed.commits
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
        phase.advance()
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
        live.files |= {f.blob_id for f in tree.files.values()}
    staged_tensors, staged_files = repo.staging.roots()  # every session's and the shared area's
    live.tensors |= staged_tensors | stashed.tensors
    live.files |= staged_files | stashed.files
    phase.finish()
    return live


def collect_garbage(
    repo: CollectableRepository,
    *,
    dry_run: bool = False,
    grace_seconds: float = 0.0,
    force: bool = False,
    progress: Progress | None = None,
) -> GCResult:
    """Remove unreachable objects (none when dry_run; then report what would go and its bytes).

    Refuses (CorruptObjectError, nothing deleted) while a live object is damaged or missing —
    what it references would look unreachable, and a damaged record copied into a new pack
    would shadow a good copy restored from a backup — unless force=True.
    """
    store = repo.store
    with repo.lock.exclusive():
        if dry_run:
            store.wait_for_maintenance()  # measure settled packs, as gc itself would see them
        live = live_objects(repo, progress)
        live_blobs = {COMMIT: live.commits, TREE: live.trees, TAG: live.tags, FILE: live.files}
        if not force and not dry_run:
            _refuse_if_damaged(repo, live, live_blobs, progress)
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
            result.removed, result.freed_bytes = _would_remove(repo, live, live_blobs, progress)
            return result
        dead = [t for t in store.list() if t not in live.tensors]
        collecting = Phase(progress, "deleting unreachable objects")
        report = store.gc(live.tensors, live_blobs, grace_seconds=grace_seconds)
        _remove_failed_writes(store)  # no writer holds the lock: each temporary is a leftover
        collecting.advance(sum(report.removed.values()))
        collecting.finish()
        _forget_fingerprints(repo, [t for t in dead if not store.exists(t)])
        gone = [c for c in pruning.pruned(repo.database) if not store.has_blob(COMMIT, c)]
        pruning.remove(repo.database, gone)  # deleted commits need no pruned mark
    result.removed = dict(report.removed)
    result.freed_bytes = report.freed_bytes
    result.live_commits = live.commits
    result.live_trees = live.trees
    return result


_LISTED = 10  # damaged objects named in gc's refusal (fsck lists them all)


def _refuse_if_damaged(
    repo: CollectableRepository,
    live: LiveSet,
    live_blobs: dict[str, set[str]],
    progress: Progress | None = None,
) -> None:
    """CorruptObjectError listing the damaged or missing objects among those gc traces or
    copies (`coral.storage.damage_scan`); raised before anything is deleted."""
    damage = [Damage(kind, oid, None, f"{kind} cannot be read") for kind, oid in _missing(live)]
    phase = Phase(progress, "checking live objects")
    damage += find_damage(repo.store, live.tensors, live_blobs, phase.advance)
    phase.finish()
    if not damage:
        return
    listed = "".join(f"\n  {d}" for d in damage[:_LISTED])
    if len(damage) > _LISTED:
        listed += f"\n  ... and {len(damage) - _LISTED} more"
    first = damage[0]
    error = CorruptObjectError(
        first.object_id[:10],  # printed at 10 characters, like every hash
        None,
        f"gc stopped, nothing deleted: {len(damage)} live object(s) are damaged or missing, "
        f"so what they reference cannot be told from garbage:{listed}",
        hint="run `coral fsck` for the full report and restore the damaged files from a backup "
        "of .coral/objects, then run gc again; Repository.gc(force=True) collects anyway, "
        "deleting what only they referenced",
    )
    error.object_id = first.object_id
    raise error


def _missing(live: LiveSet) -> list[tuple[str, str]]:
    """(kind, id) of the reachable objects the walk could not read."""
    return [(kind, oid) for kind, _, oid in (m.partition(" ") for m in live.missing)]


def _would_remove(
    repo: StoredHistory,
    live: LiveSet,
    live_blobs: dict[str, set[str]],
    progress: Progress | None = None,
) -> tuple[dict[str, int], int]:
    """(objects per kind, bytes) that gc would delete now."""
    store = repo.store
    keep = store.live_chunks(live.tensors)
    dead: list[tuple[str, str]] = [(TENSOR, t) for t in store.list() if t not in live.tensors]
    dead += [(CHUNK, c) for c in store.list_blobs(CHUNK) if c not in keep]
    for kind, keep_ids in live_blobs.items():
        dead += [(kind, b) for b in store.list_blobs(kind) if b not in keep_ids]
    out: dict[str, int] = {}
    freed = 0
    phase = Phase(progress, "measuring unreachable objects", len(dead))
    for kind, oid in dead:
        out[kind] = out.get(kind, 0) + 1
        freed += _stored_size(store, kind, oid)
        phase.advance()
    phase.finish()
    return out, freed


def _stored_size(store: Any, kind: str, object_id: str) -> int:
    """Bytes `object_id` takes in the store: its pack record, else its loose file."""
    index = getattr(store, "index", None)
    loc = index.get(object_id) if index is not None else None
    if loc is not None:
        return int(loc.entry.length)
    loose = getattr(store, "loose", None)
    if loose is None:
        return 0
    try:
        return int(loose.path(kind, object_id).stat().st_size)
    except OSError:
        return 0


def _remove_failed_writes(store: Any) -> None:
    """Delete the temporary files that failed or killed writes left in a local store (held:
    the repository lock keeps writers out, the maintenance lock a background repack)."""
    backend = store.backend.unwrap()
    if isinstance(backend, LocalBackend):
        with maintenance_lock(store, wait=True):
            backend.remove_stale_temporaries(0.0)


def _forget_fingerprints(repo: CollectableRepository, removed: list[str]) -> None:
    index = repo.writer.fingerprint_index() if removed else None
    if index is None:
        return
    # derived data: a stale fingerprint only yields a reference that is gone
    with contextlib.suppress(Exception):
        index.remove(removed)

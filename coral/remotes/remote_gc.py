"""Garbage collection on a remote: delete packs nothing reachable from its refs needs.

A pack goes only when none of its objects is reachable from a ref (branches and tags, with
their commits' history, trees, model files, tensors, chunks and delta bases) and it is older
than a grace period, so the packs of a push still under way are never taken. While gc runs
it holds `locks/gc` (a create-only object); a push refuses to move refs while it exists, and
gc gives up without deleting anything when a ref moved while it was computing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from coral.errors import RemoteError
from coral.remotes import transfer
from coral.remotes.layout import RemoteLayout
from coral.storage.backend import KeyNotFoundError, PreconditionFailedError, PutMode
from coral.storage.base import CHUNK, TENSOR
from coral.storage.manifest import TensorManifest
from coral.storage.pack import PACK_DIR, PACK_SUFFIX
from coral.version_control.objects import COMMIT, TAG, TREE, Commit, Tag, Tree

GC_LOCK = "locks/gc"
DEFAULT_GRACE = 3600.0  # seconds: a pack younger than this may belong to a push under way


class RemoteGCBusyError(RemoteError):
    default_hint = "another `coral remote gc` is running; wait for it (or delete locks/gc)"


@dataclass
class RemoteGCResult:
    dry_run: bool
    live_objects: int = 0
    packs_kept: int = 0
    deleted: list[str] = field(default_factory=list)  # pack ids (would be, when dry_run)
    bytes_freed: int = 0
    young: int = 0  # unreachable packs kept for the grace period
    aborted: str | None = None  # why nothing was deleted, when refs moved meanwhile

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "live_objects": self.live_objects,
            "packs_kept": self.packs_kept,
            "packs_deleted": list(self.deleted),
            "bytes_freed": self.bytes_freed,
            "young_packs_kept": self.young,
            "aborted": self.aborted,
        }


def gc_locked(layout: RemoteLayout) -> bool:
    """Whether a remote gc holds the lock (pushes do not move refs meanwhile)."""
    try:
        layout.backend.stat(GC_LOCK)
    except KeyNotFoundError:
        return False
    return True


def collect(
    layout: RemoteLayout, *, grace_seconds: float = DEFAULT_GRACE, dry_run: bool = False
) -> RemoteGCResult:
    """Delete (or with `dry_run` list) the remote's unreachable packs older than the grace."""
    if layout.read_format() is None:
        raise RemoteError(f"{layout.url} holds no Coral repository", hint="nothing to collect")
    result = RemoteGCResult(dry_run)
    if not dry_run:
        _lock(layout)
    try:
        refs = {n: r.commit for n, r in layout.list_refs().items()}
        tags = [str(r.doc.get("tag") or "") for r in layout.list_refs().values()]
        live = _reachable(layout, list(refs.values()), tags)
        result.live_objects = len(live)
        now = time.time()
        dead: list[tuple[str, int]] = []
        for info in layout.backend.list(PACK_DIR + "/"):
            if not info.key.endswith(PACK_SUFFIX):
                continue
            pack_id = info.key.rsplit("/", 1)[-1][: -len(PACK_SUFFIX)]
            contents = layout._trailer(pack_id, info.size)
            if any(e.object_id in live for e in contents.entries):
                result.packs_kept += 1
            elif now - info.mtime < grace_seconds:
                result.young += 1
            else:
                dead.append((info.key, info.size))
        moved = {n: r.commit for n, r in layout.list_refs().items()} != refs
        if moved:
            result.aborted = "refs moved while gc ran; run it again"
            return result
        for key, size in dead:
            if not dry_run:
                layout.backend.delete(key)
            result.deleted.append(key.rsplit("/", 1)[-1][: -len(PACK_SUFFIX)])
            result.bytes_freed += size
    finally:
        if not dry_run:
            layout.backend.delete(GC_LOCK)
    return result


def _lock(layout: RemoteLayout) -> None:
    doc = json.dumps({"since": time.time()}).encode()
    try:
        layout.backend.put(GC_LOCK, doc, PutMode.CREATE)
    except PreconditionFailedError:
        raise RemoteGCBusyError(f"{layout.url}: a gc is already running (locks/gc)") from None


def _reachable(layout: RemoteLayout, commits: list[str], tag_ids: list[str]) -> set[str]:
    """Every object id the refs need, read from the remote and verified before parsing."""
    index = layout.refresh_index()
    meta_ids = [o for o, loc in index.items() if loc.kind in (COMMIT, TREE, TAG)]
    meta = transfer.download_blobs(layout, index, meta_ids)
    live: set[str] = set()
    tensors: set[str] = set()
    stack = [c for c in commits if c]
    for tid in tag_ids:
        if tid and tid in meta:
            live.add(tid)
            stack.append(Tag.decode(meta[tid], tid).commit_hash)
    while stack:
        cid = stack.pop()
        if cid in live or cid not in meta:
            continue
        live.add(cid)
        commit = Commit.decode(meta[cid], cid)
        stack.extend(commit.parent_hashes)
        if commit.tree_id in meta and commit.tree_id not in live:
            live.add(commit.tree_id)
            tree = Tree.decode(meta[commit.tree_id], commit.tree_id)
            tensors.update(e.tensor_id for e in tree.entries.values())
            live.update(f.blob_id for f in tree.files.values())
    manifests = transfer.download(layout, index, [t for t in tensors if t in index])
    chunks: list[str] = []
    for tid, data in manifests.items():
        live.add(tid)
        try:
            chunks.extend(TensorManifest.decode(data).chunks)
        except ValueError:
            continue  # a damaged manifest keeps its tensor; fsck of a clone reports it
    while chunks:
        cid = chunks.pop()
        if cid in live:
            continue
        live.add(cid)
        loc = index.get(cid)
        if loc is not None and loc.kind == CHUNK:
            chunks.extend(loc.refs)
    live.update(t for t in tensors if index.get(t) is not None and index[t].kind == TENSOR)
    return live

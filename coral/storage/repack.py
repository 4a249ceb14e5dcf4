"""Repack and collect: re-encoding and garbage removal that write new packs, never edit old ones.

Order, for crash safety: new records go to a new pack, which is fsynced and published; only
then are the packs (or loose files) it supersedes deleted. A kill at any instant leaves every
object readable from at least one pack; an object held twice is resolved to the newer pack.

`repack` (automatic after commits, and part of `gc`):
1. hints (older chunk, newer chunk) written with FULL chunks become reverse deltas: the older
   chunk is re-encoded against the newer one when that is smaller and the chains stay within
   `max_chain_depth` (else the older one stays FULL: a keyframe);
2. packs with a quarter or more superseded bytes, and small packs once there are many, are
   compacted: their current records are copied into a new pack and the old packs deleted.
`collect` (gc) additionally drops unreachable objects and converts loose files to packs.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.backend import LocalBackend
from coral.storage.base import CHUNK, TENSOR, GCReport
from coral.storage.chunk_encoder import Reference, encode_reverse
from coral.storage.chunk_format import ChunkEncoding, parse_header
from coral.storage.loose import LOOSE_KINDS
from coral.storage.pack import NOT_A_CHUNK, PackWriter, pack_key, record_checksum
from coral.storage.pack_index import PackInfo

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

DEAD_SHARE = 0.25  # compact a pack once this share of its bytes is superseded
SMALL_PACK = 4 << 20  # packs below this are merged ...
SMALL_PACKS = 8  # ... once there are this many
STALE_TMP_SECONDS = 600.0
_FULL = int(ChunkEncoding.FULL)


@contextmanager
def maintenance_lock(store: StoreInternals, *, wait: bool) -> Iterator[bool]:
    """One repack or gc at a time per store (across processes); yields False when busy."""
    if fcntl is None or not store.backend.capabilities.local_path:
        yield True
        return
    path = store.backend.path("tmp")
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / "maintenance.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def repack(store: StoreInternals) -> dict[str, int]:
    """Reverse-delta the hinted chunks and compact packs; returns counts of what it did."""
    with maintenance_lock(store, wait=False) as held:
        if not held:
            return {}
        return _repack_locked(store)


def _repack_locked(store: StoreInternals) -> dict[str, int]:
    store.index.refresh(force=True)
    done = {"reversed": _reverse(store)}
    done["compacted"] = _compact(store, _compaction_candidates(store))
    return done


def _referrers(store: StoreInternals) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for cid in store.index.ids(CHUNK):
        loc = store.index.get(cid)
        if loc is not None:
            for ref in loc.refs:
                out[ref].append(cid)
    return out


def _run(referrers: dict[str, list[str]], chunk_id: str, limit: int) -> int:
    """Longest chain of deltas that ends at `chunk_id` (how deep its referrers reach)."""
    best, frontier, depth = 0, {chunk_id}, 0
    while frontier and depth <= limit:
        nxt = {r for c in frontier for r in referrers.get(c, ())}
        if nxt:
            depth += 1
            best = depth
        frontier = nxt
    return best


def _chain(store: StoreInternals, chunk_id: str, limit: int, pending: dict[str, str]) -> set[str]:
    """Every chunk `chunk_id` decodes through: its references as indexed, and as re-encoded
    earlier in this pass (`pending`: chunk -> its new reference)."""
    seen: set[str] = set()
    frontier = {chunk_id}
    while frontier and len(seen) < 64 * limit:
        seen |= frontier
        nxt: set[str] = set()
        for c in frontier:
            if c in pending:
                nxt.add(pending[c])
                continue
            loc = store.index.get(c)
            if loc is not None:
                nxt.update(loc.refs)
        frontier = nxt - seen
    return seen


def _depth(store: StoreInternals, chunk_id: str, limit: int, pending: dict[str, str]) -> int:
    """Longest delta path from a chunk down to FULL, counting this pass's re-encodings."""
    depth, frontier = 0, {chunk_id}
    while depth <= 4 * limit:
        nxt: set[str] = set()
        for c in frontier:
            if c in pending:
                nxt.add(pending[c])
            elif (loc := store.index.get(c)) is not None:
                nxt.update(loc.refs)
        if not nxt:
            return depth
        depth += 1
        frontier = nxt
    return depth


def _reverse(store: StoreInternals) -> int:
    config = store.config
    if not config.reverse_deltas or config.mode == "fast":
        return 0
    referrers = _referrers(store)
    limit = config.max_chain_depth
    writer = PackWriter(store.backend, fsync=config.fsync)
    rewritten: dict[str, str] = {}  # older chunk -> the newer one it is now a delta against
    try:
        for older, newer in store.index.hints():
            lo, ln = store.index.get(older), store.index.get(newer)
            if lo is None or ln is None or older in rewritten or older == newer:
                continue
            if lo.encoding != _FULL or older in _chain(store, newer, limit, rewritten):
                continue  # already a delta, or reversing would make a cycle
            depth_newer = _depth(store, newer, limit, rewritten)
            if _run(referrers, older, limit) + 1 + depth_newer > limit:
                continue  # the older chunk stays FULL: a keyframe
            try:
                head = parse_header(store.read_record(CHUNK, older, check=False)[:4096])
                raw_old, _ = store._chunk_raw(older)
                raw_new, _ = store._chunk_raw(newer)
            except (ValueError, ObjectNotFoundError, CorruptObjectError):
                continue  # fsck reports damage; the repack only skips it
            if raw_old.nbytes != raw_new.nbytes:
                continue
            ref = Reference(newer, raw_new, depth_newer)
            enc = encode_reverse(older, raw_old, head.itemsize, head.dtype, ref, config)
            if len(enc.data) >= lo.length:
                continue
            writer.add(CHUNK, older, enc.data, int(enc.encoding), enc.refs)
            rewritten[older] = newer
            referrers[newer].append(older)
        if not len(writer):
            writer.abort()
            return 0
        store.index.add_pack(writer.finish(), writer.size)
    except BaseException:
        writer.abort()
        raise
    return len(rewritten)


def _compaction_candidates(store: StoreInternals) -> list[PackInfo]:
    packs = store.index.packs()
    out = [p for p in packs if store.index.live_bytes(p.pack_id) < (1 - DEAD_SHARE) * p.data_end]
    chosen = {p.pack_id for p in out}
    small = [p for p in packs if p.size < SMALL_PACK and p.pack_id not in chosen]
    if len(small) >= SMALL_PACKS:
        out.extend(small)
    return out


def _compact(
    store: StoreInternals,
    packs: list[PackInfo],
    keep: object = None,
    report: GCReport | None = None,
) -> int:
    """Copy the current (and, for gc, live) records of `packs` into a new pack, then delete
    them. `keep(kind, id) -> bool` filters what gc keeps. A record that fails its checksum is
    never copied (the newer pack would shadow a good copy restored from a backup): its pack is
    kept as it is."""
    if not packs:
        return 0
    writer = PackWriter(store.backend, fsync=store.config.fsync)
    index = store.index
    damaged: set[str] = set()
    try:
        for info in packs:
            removed: dict[str, int] = {}
            freed = 0
            for entry in info.entries:
                loc = index.get(entry.object_id)
                if loc is None or loc.pack_id != info.pack_id or entry.object_id in writer:
                    continue
                if keep is not None and not keep(entry.kind, entry.object_id):  # type: ignore[operator]
                    removed[entry.kind] = removed.get(entry.kind, 0) + 1
                    freed += entry.length
                    continue
                data = store._read_at(loc)
                if record_checksum(data) != loc.entry.checksum:
                    damaged.add(info.pack_id)
                    continue
                writer.add(entry.kind, entry.object_id, data, entry.encoding, entry.refs)
            if info.pack_id in damaged:
                continue  # kept with its hints and garbage
            if report is not None:
                for kind, n in removed.items():
                    report.removed[kind] = report.removed.get(kind, 0) + n
                report.freed_bytes += freed
            for older, newer in info.hints:
                lo = index.get(older)
                if lo is None or lo.encoding != _FULL or newer not in index:
                    continue
                if keep is not None and not (keep(CHUNK, older) and keep(CHUNK, newer)):  # type: ignore[operator]
                    continue  # gc collects one of them: the hint goes with it
                writer.hint(older, newer)
        if len(writer) or writer.hints:
            index.add_pack(writer.finish(), writer.size)
        else:
            writer.abort()
    except BaseException:
        writer.abort()
        raise
    for info in packs:
        if info.pack_id not in damaged:
            _delete_pack(store, info.pack_id)
    return len(packs) - len(damaged)


def _delete_pack(store: StoreInternals, pack_id: str) -> None:
    """The file goes first: a refresh in between then drops the pack as `remove_pack` does."""
    store.backend.delete(pack_key(pack_id))
    store.index.remove_pack(pack_id)
    store.retire_pack(pack_id)


def collect(
    store: StoreInternals,
    live_tensors: set[str],
    live_blobs: dict[str, set[str]],
    grace_seconds: float = 0.0,
) -> GCReport:
    """gc: repack, then drop unreachable objects older than the grace period, and move live
    loose files into packs."""
    report = GCReport()
    with maintenance_lock(store, wait=True):
        _repack_locked(store)
        index = store.index
        cutoff = time.time() - grace_seconds
        young_packs = {p.pack_id for p in index.packs() if _pack_mtime(store, p) > cutoff}
        roots = set(live_tensors)
        if grace_seconds > 0:  # a tensor spared for its youth keeps its (older) chunks too
            for tid in store.list():
                loc = index.get(tid)
                young = (
                    loc.pack_id in young_packs
                    if loc is not None
                    else store.loose.mtime(TENSOR, tid) > cutoff
                )
                if young:
                    roots.add(tid)
        live_chunks = store.live_chunks(roots)

        def keep(kind: str, oid: str) -> bool:
            if kind == TENSOR:
                return oid in roots
            if kind == CHUNK:
                return oid in live_chunks
            return kind not in live_blobs or oid in live_blobs[kind]

        def is_young(kind: str, oid: str) -> bool:
            loc = index.get(oid)
            if loc is not None:
                return loc.pack_id in young_packs
            return store.loose.mtime(kind, oid) > cutoff

        def keep_or_young(kind: str, oid: str) -> bool:
            return keep(kind, oid) or is_young(kind, oid)

        dirty = [
            p
            for p in index.packs()
            if any(
                not keep_or_young(e.kind, e.object_id)
                for e in p.entries
                if (loc := index.get(e.object_id)) is not None and loc.pack_id == p.pack_id
            )
        ]
        _compact(store, dirty, keep_or_young, report)
        _convert_loose(store, keep_or_young, report)
        store._cache.clear()
        backend = store.backend
        if isinstance(backend.unwrap(), LocalBackend):
            backend.unwrap().remove_stale_temporaries(STALE_TMP_SECONDS)  # type: ignore[attr-defined]
    return report


def _pack_mtime(store: StoreInternals, info: PackInfo) -> float:
    try:
        return store.backend.stat(pack_key(info.pack_id)).mtime
    except Exception:
        return 0.0


def _convert_loose(store: StoreInternals, keep: object, report: GCReport) -> None:
    """Copy live loose objects into a pack; delete every loose file it made redundant."""
    loose = store.loose
    kept: list[tuple[str, str]] = []
    dropped: list[tuple[str, str]] = []
    writer = PackWriter(store.backend, fsync=store.config.fsync)
    try:
        for kind in LOOSE_KINDS:
            for oid in list(loose.ids(kind)):
                if oid in store.index:
                    kept.append((kind, oid))
                    continue
                if not keep(kind, oid):  # type: ignore[operator]
                    dropped.append((kind, oid))
                    continue
                data = loose.read(kind, oid)
                if data is None:
                    continue
                encoding, refs = NOT_A_CHUNK, tuple[str, ...]()
                if kind == CHUNK:
                    try:
                        head = parse_header(data)
                    except ValueError:
                        continue  # damaged: left in place for fsck to report
                    encoding, refs = int(head.encoding), head.refs
                writer.add(kind, oid, data, encoding, refs)
                kept.append((kind, oid))
        if len(writer):
            store.index.add_pack(writer.finish(), writer.size)
        else:
            writer.abort()
    except BaseException:
        writer.abort()
        raise
    for kind, oid in kept:
        loose.delete(kind, oid)
    for kind, oid in dropped:
        freed = loose.delete(kind, oid)
        if freed:
            report.removed[kind] = report.removed.get(kind, 0) + 1
            report.freed_bytes += freed
    if kept or dropped:
        loose.prune_empty_dirs()


def live_chunks(store: StoreInternals, tensors: Iterable[str]) -> set[str]:
    """Every chunk the given tensors need, delta references included (tensors a partial clone
    has not fetched are skipped, not fetched)."""
    live: set[str] = set()
    stack: list[str] = []
    for tid in tensors:
        try:
            stack.extend(store._manifest(tid, fetch=False).chunks)
        except (ObjectNotFoundError, CorruptObjectError):
            continue
    while stack:
        cid = stack.pop()
        if cid in live:
            continue
        live.add(cid)
        try:
            stack.extend(store._chunk_refs(cid)[1])
        except (ObjectNotFoundError, CorruptObjectError):
            continue
    return live

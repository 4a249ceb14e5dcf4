"""Re-encoding stored tensors under other settings, through a scratch store.

`coral optimize` uses it both ways: `--analyze` trial-encodes a sample under each candidate
`StoreConfig` and measures the records (`measured_bytes`); `--apply` re-encodes every tensor,
verifies the scratch copy and installs it into the repository's store (`install`), then drops
the chunks nothing needs any more (`drop_unused_chunks`).

The scratch store is an ordinary `PackStore` in a temporary folder: the same chunking, encoder,
delta references and repack as a commit, never the repository's packs. Tensors go in generation
by generation (`store_many` deltas only against tensors already stored), then one repack turns
superseded versions into reverse deltas, as the background repack does after commits.
`install` copies the scratch store's records into ONE new pack of the target (written once,
published by a rename): a kill before it leaves the target as it was; after it every object
it holds resolves to its new record (the newer pack wins, both decode to the same bytes), and
the new records reference only each other, so no mix of old and new forms a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from coral.core.weight_tensor import WeightTensor
from coral.errors import CorruptObjectError
from coral.storage.base import TENSOR
from coral.storage.config import StoreConfig
from coral.storage.pack import PackWriter
from coral.storage.pack_store import PackStore


@dataclass(frozen=True)
class Item:
    """A tensor to re-encode and the tensor it is delta-encoded against (if any)."""

    tensor_id: str
    reference: str | None = None


def scratch_store(root: Path, config: StoreConfig) -> PackStore:
    """A throw-away store under `root` with `config` (no fsync: nothing in it must survive)."""
    return PackStore(root, replace(config, fsync=False))


def generations(items: Iterable[Item]) -> list[list[Item]]:
    """Items grouped so that every reference is in an earlier group (a reference that is not
    among the items, or that forms a loop, is dropped)."""
    by_id = {i.tensor_id: i for i in items}
    level: dict[str, int] = {}

    def depth(tid: str) -> int:
        chain: list[str] = []  # tid and the references it goes through, not levelled yet
        cur: str | None = tid
        while cur in by_id and cur not in level and cur not in chain:
            chain.append(cur)
            cur = by_id[cur].reference
        base = level.get(cur, -1) if cur is not None else -1  # -1: outside the items, a loop
        for t in reversed(chain):
            base += 1
            level[t] = base
        return level[tid]

    groups: list[list[Item]] = []
    for tid, item in by_id.items():
        d = depth(tid)
        ref = item.reference
        if ref is not None and (ref not in level or level[ref] >= d):
            item = Item(tid, None)  # a loop, or not re-encoded: no reference
        while len(groups) <= d:
            groups.append([])
        groups[d].append(item)
    return groups


def encode_into(
    scratch: PackStore,
    load: Callable[[str], WeightTensor],
    items: Sequence[Item],
    advance: Callable[[int], None] | None = None,
) -> None:
    """Store `items` (loaded with `load(tensor_id)`) into `scratch`, each against its reference,
    then repack. Raises CorruptObjectError when a loaded tensor does not hash to its id."""
    for group in generations(items):
        weights = []
        for item in group:
            weight = load(item.tensor_id)
            if weight.compute_hash(force=True) != item.tensor_id:
                raise CorruptObjectError(
                    item.tensor_id, None, "tensor content does not match its hash"
                )
            weights.append((weight, item.reference))
        scratch.store_many(weights)
        if advance is not None:
            advance(len(group))
    scratch.repack()


def measured_bytes(store: PackStore, tensor_ids: Iterable[str]) -> dict[str, int]:
    """Bytes each tensor's records take in `store`: its manifest and the chunks it is the first
    of `tensor_ids` to need (a chunk two tensors share is counted once, for the first)."""
    seen: set[str] = set()
    out: dict[str, int] = {}
    for tid in tensor_ids:
        loc = store.index.get(tid)
        total = loc.length if loc is not None else 0
        for cid in store.manifest(tid).chunks:
            if cid in seen:
                continue
            seen.add(cid)
            chunk = store.index.get(cid)
            total += chunk.length if chunk is not None else 0
        out[tid] = total
    return out


def verify_all(
    store: PackStore, tensor_ids: Iterable[str], advance: Callable[[int], None] | None = None
) -> None:
    """Decode every tensor and check it against its BLAKE3 name (CorruptObjectError if not)."""
    for tid in tensor_ids:
        store.verify(TENSOR, tid)
        if advance is not None:
            advance(1)


def install(scratch: PackStore, target: PackStore) -> int:
    """Copy every current record of `scratch` into one new pack of `target`; returns its
    size in bytes."""
    writer = PackWriter(target.backend, fsync=target.config.fsync)
    try:
        for info in scratch.index.packs():
            for entry in info.entries:
                loc = scratch.index.get(entry.object_id)
                if loc is None or loc.pack_id != info.pack_id or entry.object_id in writer:
                    continue
                data = scratch.read_record(entry.kind, entry.object_id)
                writer.add(entry.kind, entry.object_id, data, entry.encoding, entry.refs)
        if not len(writer):
            writer.abort()
            return 0
        target.index.add_pack(writer.finish(), writer.size)
    except BaseException:
        writer.abort()
        raise
    return writer.size


def drop_unused_chunks(store: PackStore) -> int:
    """Collect the chunks no tensor of `store` needs (every tensor, and every other object,
    is kept); returns the bytes freed."""
    return store.gc(set(store.list()), {}).freed_bytes

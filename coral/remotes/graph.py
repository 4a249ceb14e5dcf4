"""Which objects a set of commits needs: commits, trees, model files, tags, tensors, chunks and
their delta bases.

Walks stop at commits the other side already has (a complete push or fetch leaves a commit's
whole history behind it there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from coral.storage.base import CHUNK, TENSOR
from coral.version_control.objects import COMMIT, FILE, TAG, TREE, Commit, Tag, Tree

ReadBlob = Callable[[str, str], bytes]  # (kind, id) -> verified bytes


@dataclass
class ObjectSet:
    """Object ids by kind, in the order they should travel (bases before what uses them)."""

    ids: dict[str, list[str]] = field(
        default_factory=lambda: {CHUNK: [], TENSOR: [], FILE: [], TREE: [], TAG: [], COMMIT: []}
    )
    seen: set[str] = field(default_factory=set)

    def add(self, kind: str, oid: str) -> bool:
        if oid in self.seen:
            return False
        self.seen.add(oid)
        self.ids.setdefault(kind, []).append(oid)
        return True

    def __len__(self) -> int:
        return len(self.seen)

    def items(self) -> list[tuple[str, str]]:
        order = (CHUNK, TENSOR, FILE, TREE, TAG, COMMIT)
        return [(k, oid) for k in order for oid in self.ids.get(k, [])]

    @property
    def tensors(self) -> list[str]:
        return self.ids.get(TENSOR, [])

    @property
    def commits(self) -> list[str]:
        return self.ids.get(COMMIT, [])


def commit_closure(
    starts: Iterable[str],
    read: ReadBlob,
    have_commit: Callable[[str], bool],
    out: ObjectSet,
) -> list[Tree]:
    """Add the commits reachable from `starts` that the other side lacks, and their trees;
    returns the trees (their tensors are added by `tensor_closure`)."""
    trees: list[Tree] = []
    stack = [c for c in starts if c]
    while stack:
        cid = stack.pop()
        if cid in out.seen or have_commit(cid):
            continue
        commit = Commit.decode(read(COMMIT, cid), cid)
        out.add(COMMIT, cid)
        if out.add(TREE, commit.tree_id):
            tree = Tree.decode(read(TREE, commit.tree_id), commit.tree_id)
            trees.append(tree)
            for entry in tree.files.values():  # the model's files travel with its tree
                out.add(FILE, entry.blob_id)
        stack.extend(commit.parent_hashes)
    return trees


def tag_objects(tag_ids: Iterable[str], read: ReadBlob, out: ObjectSet) -> list[Tag]:
    tags = []
    for tid in tag_ids:
        if tid and out.add(TAG, tid):
            tags.append(Tag.decode(read(TAG, tid), tid))
    return tags


def tensor_closure(
    tensor_ids: Iterable[str],
    manifest_chunks: Callable[[str], tuple[str, ...]],
    chunk_refs: Callable[[str], tuple[str, ...]],
    have: Callable[[str, str], bool],
    out: ObjectSet,
) -> None:
    """Add tensors the other side lacks, with every chunk (and delta base) it lacks."""
    for tid in tensor_ids:
        if tid in out.seen or have(TENSOR, tid):
            continue
        chunks = list(manifest_chunks(tid))
        while chunks:
            cid = chunks.pop()
            if cid in out.seen or have(CHUNK, cid):
                continue
            chunks.extend(chunk_refs(cid))
            out.add(CHUNK, cid)
        out.add(TENSOR, tid)

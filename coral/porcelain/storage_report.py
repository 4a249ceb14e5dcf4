"""Storage analytics over the whole history: per commit what deduplication and delta encoding
saved, the largest tensors, delta-chain depths, encodings, and what could be done about it.

One pass over every commit reachable from a ref; each distinct tensor's storage facts are read
once. Per commit, a tensor counts as *new* when no earlier commit of the walk (oldest first)
holds it — the rule `coral stats` uses, so both agree on every number.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from coral.core.training_names import is_training_state
from coral.core.units import human_bytes
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import ObjectStats
from coral.version_control import pruning
from coral.version_control.repository import Repository

LOW_RATIO = 1.1  # compression below this: the data is (nearly) incompressible


@dataclass(frozen=True)
class CommitStorage:
    """What one commit costs: its logical size, the part already stored by earlier commits
    (deduplicated), and what its new tensors take on disk (delta encoded and compressed)."""

    commit: str
    message: str
    timestamp: float
    tensors: int
    new_tensors: int
    delta_tensors: int  # new tensors stored (partly) as deltas
    logical_bytes: int
    new_logical_bytes: int
    stored_bytes: int

    @property
    def dedup_saved(self) -> int:
        return self.logical_bytes - self.new_logical_bytes

    @property
    def delta_saved(self) -> int:
        """Bytes saved on the new tensors by delta encoding and compression (may be < 0)."""
        return self.new_logical_bytes - self.stored_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "message": self.message,
            "timestamp": self.timestamp,
            "tensors": self.tensors,
            "new_tensors": self.new_tensors,
            "delta_tensors": self.delta_tensors,
            "logical_bytes": self.logical_bytes,
            "new_logical_bytes": self.new_logical_bytes,
            "stored_bytes": self.stored_bytes,
            "dedup_saved": self.dedup_saved,
            "delta_saved": self.delta_saved,
        }


@dataclass(frozen=True)
class TensorStorage:
    """One distinct stored tensor: the first name it had, and how it is stored."""

    name: str
    tensor_id: str
    shape: tuple[int, ...]
    dtype: str
    logical_bytes: int
    stored_bytes: int
    encoding: str
    chain_depth: int
    versions: int  # (commit, name) entries that hold it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tensor": self.tensor_id,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "encoding": self.encoding,
            "chain_depth": self.chain_depth,
            "versions": self.versions,
        }


@dataclass(frozen=True)
class Suggestion:
    """A finding worth acting on and what to do about it (the analysis recommendation 18 asks
    an `optimize --analyze` command for)."""

    title: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "detail": self.detail}


@dataclass
class StorageReport:
    commits: list[CommitStorage]  # oldest first
    largest: list[TensorStorage]  # by logical size, largest first
    chain_depths: dict[int, int]  # delta-chain depth -> distinct tensors
    encodings: dict[str, int]  # encoding -> distinct tensors
    versions: int = 0  # (commit, name) entries over history
    distinct: int = 0  # distinct tensors
    logical_bytes: int = 0  # every commit's size, summed
    unique_bytes: int = 0  # distinct tensors' logical size
    stored_bytes: int = 0  # distinct tensors on disk
    training_stored_bytes: int = 0
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "distinct_tensors": self.distinct,
            "logical_bytes": self.logical_bytes,
            "unique_bytes": self.unique_bytes,
            "stored_bytes": self.stored_bytes,
            "ratio": self.ratio,
            "training_state_stored_bytes": self.training_stored_bytes,
            "chain_depths": {str(k): v for k, v in sorted(self.chain_depths.items())},
            "encodings": dict(sorted(self.encodings.items())),
            "largest": [t.to_dict() for t in self.largest],
            "suggestions": [s.to_dict() for s in self.suggestions],
            "commits": [c.to_dict() for c in self.commits],
        }


def _stats(repo: Repository, tensor_id: str) -> ObjectStats | None:
    try:
        st = repo.store.stats(tensor_id)
    except (ObjectNotFoundError, CorruptObjectError):
        return None
    return st if isinstance(st, ObjectStats) else None


def storage_report(repo: Repository, *, top: int = 20) -> StorageReport:
    """The storage report of every commit reachable from a branch, tag or HEAD."""
    commits = list(repo.iter_commits())
    commits.reverse()
    pruned = pruning.pruned(repo.database)
    report = StorageReport([], [], {}, {})
    seen: dict[str, tuple[Any, ObjectStats | None, bool]] = {}  # id -> (entry, stats, training)
    uses: Counter[str] = Counter()
    for commit in commits:
        try:
            tree = repo.read_tree(commit.tree_id)
        except ObjectNotFoundError:
            if commit.commit_hash in pruned:
                continue  # gc took it: left out, as `coral stats` does
            raise
        logical = new_logical = stored = new = deltas = 0
        for entry in tree.entries.values():
            logical += entry.nbytes
            uses[entry.tensor_id] += 1
            if entry.tensor_id in seen:
                continue
            st = _stats(repo, entry.tensor_id)
            seen[entry.tensor_id] = (entry, st, is_training_state(entry.name))
            new += 1
            new_logical += entry.nbytes
            stored += st.stored_bytes if st else 0
            deltas += bool(st and st.encoding not in ("full", "empty"))
        report.commits.append(
            CommitStorage(
                commit.commit_hash,
                commit.message,
                commit.timestamp,
                len(tree.entries),
                new,
                deltas,
                logical,
                new_logical,
                stored,
            )
        )
        report.logical_bytes += logical
    depths: Counter[int] = Counter()
    encodings: Counter[str] = Counter()
    distinct = []
    for tid, (entry, st, training) in seen.items():
        report.unique_bytes += entry.nbytes
        if st is None:
            continue
        report.stored_bytes += st.stored_bytes
        if training:
            report.training_stored_bytes += st.stored_bytes
        depths[st.chain_depth] += 1
        encodings[st.encoding.split("(", 1)[0]] += 1
        distinct.append(
            TensorStorage(
                entry.name,
                tid,
                entry.shape,
                entry.dtype,
                entry.nbytes,
                st.stored_bytes,
                st.encoding,
                st.chain_depth,
                uses[tid],
            )
        )
    distinct.sort(key=lambda t: (-t.logical_bytes, -t.stored_bytes, t.name))
    report.versions = sum(uses.values())
    report.distinct = len(seen)
    report.largest = distinct[:top]
    report.chain_depths = dict(sorted(depths.items()))
    report.encodings = dict(sorted(encodings.items()))
    report.suggestions = suggestions(report, distinct)
    return report


def suggestions(report: StorageReport, tensors: list[TensorStorage]) -> list[Suggestion]:
    """Findings worth acting on, from the report's own numbers."""
    out: list[Suggestion] = []
    if not tensors:
        return out
    stored = report.stored_bytes or 1
    low = [t for t in tensors if t.stored_bytes and t.logical_bytes / t.stored_bytes < LOW_RATIO]
    low_bytes = sum(t.stored_bytes for t in low)
    if low and low_bytes / stored > 0.2:
        out.append(
            Suggestion(
                f"{len(low)} tensors compress below {LOW_RATIO}x ({human_bytes(low_bytes)}, "
                f"{low_bytes / stored:.0%} of what is stored)",
                "their bytes look random to the codec (quantized or already compressed data); "
                "committing them less often saves more than any encoding can",
            )
        )
    if report.training_stored_bytes / stored > 0.3:
        out.append(
            Suggestion(
                f"training state takes {human_bytes(report.training_stored_bytes)} "
                f"({report.training_stored_bytes / stored:.0%} of what is stored)",
                "optimizer moments change every step and delta-encode poorly; a CheckpointManager "
                "retention policy can keep them only on the newest checkpoints",
            )
        )
    full_changed = [
        c for c in report.commits[1:] if c.new_tensors and not c.delta_tensors and c.stored_bytes
    ]
    if len(full_changed) > max(2, len(report.commits) // 4):
        out.append(
            Suggestion(
                f"{len(full_changed)} commits store every new tensor in full",
                "no delta against the previous version was smaller: the tensors changed "
                "completely (a re-initialised head, a new dtype) or were renamed",
            )
        )
    deepest = max(report.chain_depths, default=0)
    if deepest >= 8:
        out.append(
            Suggestion(
                f"{report.chain_depths[deepest]} tensors sit at delta-chain depth {deepest}",
                "reading them decodes that many deltas; old versions read slower than new ones",
            )
        )
    big = sum(t.stored_bytes for t in report.largest[:10])
    if len(tensors) > 20 and big / stored > 0.5:
        out.append(
            Suggestion(
                f"the 10 largest tensors hold {big / stored:.0%} of what is stored",
                "embeddings and heads dominate: freeze them when fine-tuning and they are "
                "stored once",
            )
        )
    return out

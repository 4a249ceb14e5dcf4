"""Reading history for every front end: the log (with its graph), a commit, a tensor.

`coral log` / `coral show`, the terminal browser and the web dashboard all call these; they
return plain dataclasses and never print.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from coral.core.training_names import is_training_state
from coral.core.value_stats import histogram, value_stats
from coral.errors import CoralError
from coral.storage.base import ObjectStats
from coral.version_control import history, pruning
from coral.version_control.errors import WeightNotFoundError
from coral.version_control.objects import Commit, FileEntry, TreeEntry
from coral.version_control.repository import Repository

EXPERIMENT_LINKS = "experiment_commits"  # the experiments component's link table


# -- decorations and graph ----------------------------------------------------------------------


def decorations(repo: Repository) -> dict[str, list[str]]:
    """commit hash -> ["HEAD -> main", "tag: v1", ...] as git prints them."""
    head = repo.head()
    labels: dict[str, list[str]] = {}
    for b in repo.list_branches():
        label = f"HEAD -> {b.name}" if head.branch == b.name else b.name
        labels.setdefault(b.commit_hash, []).append(label)
    if head.detached and head.commit:
        labels.setdefault(head.commit, []).insert(0, "HEAD")
    for t in repo.list_tags():
        labels.setdefault(t.commit_hash, []).append(f"tag: {t.name}")
    for lst in labels.values():
        lst.sort(key=lambda s: (not s.startswith("HEAD"), s.startswith("tag:"), s))
    return labels


def graph_rows(commits: list[Commit]) -> list[tuple[str, Commit | None]]:
    """(graph prefix, commit or None for a connector row), git-style, newest first."""
    lanes: list[str] = []
    rows: list[tuple[str, Commit | None]] = []
    shown = {c.commit_hash for c in commits}
    for c in commits:
        h = c.commit_hash
        if h not in lanes:
            lanes.append(h)
        col = lanes.index(h)
        others = [i for i, lane in enumerate(lanes) if lane == h and i != col]
        if others:  # branches that forked here join their lane first: "|/"
            chars = [" "] * (2 * len(lanes))
            for i in range(len(lanes)):
                if i in others:
                    chars[2 * i - 1] = "/"
                else:
                    chars[2 * i] = "|"
            rows.append(("".join(chars).rstrip(), None))
            lanes = [lane for i, lane in enumerate(lanes) if i not in others]
        rows.append((" ".join("*" if i == col else "|" for i in range(len(lanes))), c))
        parents = [p for p in c.parent_hashes if p in shown]
        if not parents:
            lanes.pop(col)
            continue
        lanes[col] = parents[0]
        added = []
        for p in parents[1:]:
            if p not in lanes:
                lanes.append(p)
                added.append(len(lanes) - 1)
        if added:
            chars = [" "] * (2 * len(lanes))
            for i in range(len(lanes)):
                if i in added:
                    chars[2 * i - 1] = "\\"
                else:
                    chars[2 * i] = "|"
            rows.append(("".join(chars).rstrip(), None))
    return rows


def linked_experiments(repo: Repository, commits: list[Commit]) -> dict[str, list[Any]]:
    """Commit hash -> experiments that produced it (empty when experiment tracking is absent)."""
    if EXPERIMENT_LINKS not in repo.database.tables():  # never tracked: nothing to import
        return {}
    try:
        from coral.experiments.lookup import experiments_for_commits
    except ImportError:
        return {}
    return experiments_for_commits(repo, [c.commit_hash for c in commits])


def commit_subject(repo: Repository, commit_hash: str) -> str:
    """The first line of a commit's message ("" when this repository lacks the commit, e.g.
    a remote-tracking ref to one never fetched)."""
    try:
        lines = repo.read_commit(commit_hash).message.strip().splitlines()
    except CoralError:
        return ""
    return lines[0] if lines else ""


def pruned_state(repo: Repository, commit_hash: str, pruned: set[str] | None = None) -> str | None:
    """None, "pruned", or "pruned, weights collected" (gc took its weights)."""
    if commit_hash not in (pruning.pruned(repo.database) if pruned is None else pruned):
        return None
    collected = pruning.status(repo, commit_hash) == pruning.COLLECTED
    return "pruned, weights collected" if collected else "pruned"


# -- the log ------------------------------------------------------------------------------------


@dataclass
class LogEntry:
    """One commit of the log, with what is printed beside it."""

    commit: Commit
    refs: list[str] = field(default_factory=list)  # "HEAD -> main", "tag: v1", ...
    experiments: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    pruned: str | None = None  # see pruned_state

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.commit.to_dict(),
            "refs": list(self.refs),
            "experiments": [{"experiment_id": i, "name": n} for i, n in self.experiments],
            "pruned": self.pruned,
        }


LOG_PAGE = 256  # commits decorated at a time by `iter_log_entries`


def log_entries(
    repo: Repository, ref: str | None = None, max_count: int | None = None
) -> list[LogEntry]:
    """Commits reachable from `ref` (default HEAD), newest first, decorated."""
    return list(iter_log_entries(repo, ref, max_count))


def iter_log_entries(
    repo: Repository, ref: str | None = None, max_count: int | None = None
) -> Iterator[LogEntry]:
    """`log_entries`, read and decorated `LOG_PAGE` commits at a time: the first page is out
    before the rest of a long history has been read."""
    if ref is None and repo.refs.head().commit is None:
        return
    walk = history.iter_history(repo.read_commit, [repo.resolve_ref(ref or "HEAD")])
    labels = decorations(repo)
    pruned = pruning.pruned(repo.database)
    left = max_count
    while left is None or left > 0:
        size = LOG_PAGE if left is None else min(LOG_PAGE, left)
        commits = list(itertools.islice(walk, size))
        if not commits:
            return
        experiments = linked_experiments(repo, commits)
        for c in commits:
            yield LogEntry(
                c,
                labels.get(c.commit_hash, []),
                [(e.experiment_id, e.name) for e in experiments.get(c.commit_hash, [])],
                pruned_state(repo, c.commit_hash, pruned),
            )
        if left is not None:
            left -= len(commits)


# -- a commit -----------------------------------------------------------------------------------


@dataclass
class TensorRow:
    """One tensor of a commit: what it is, how it is stored, how it changed from the parent."""

    entry: TreeEntry
    change: str  # "added", "changed", "identical" (vs the first parent; "added" for a root)
    stored: ObjectStats | None = None  # with storage=True

    @property
    def name(self) -> str:
        return self.entry.name

    def to_dict(self) -> dict[str, Any]:
        out = {**self.entry.to_dict(), "change": self.change}
        if self.stored is not None:
            out["stored_bytes"] = self.stored.stored_bytes
            out["encoding"] = self.stored.encoding
            out["chain_depth"] = self.stored.chain_depth
        return out


@dataclass
class CommitDetail:
    commit: Commit
    refs: list[str]
    tensors: list[TensorRow]  # those selected (training state left out unless asked)
    total_tensors: int  # in the commit's tree
    training_state: list[str]  # names left out (empty with include_training_state)
    training_state_bytes: int
    removed: list[str]  # tensors the first parent has and this commit does not
    files: list[FileEntry]
    pruned: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.commit.to_dict(),
            "refs": list(self.refs),
            "tensors": [t.to_dict() for t in self.tensors],
            "training_state_tensors": len(self.training_state),
            "removed_tensors": list(self.removed),
            "files": [f.to_dict() for f in self.files],
            "pruned": self.pruned,
        }


def commit_detail(
    repo: Repository,
    ref: str = "HEAD",
    *,
    layers: str | None = None,
    include_training_state: bool = False,
    storage: bool = False,
) -> CommitDetail:
    """A commit and its tensors (`layers`: a glob), each with its change against the first
    parent; `storage` adds each tensor's stored size, encoding and delta depth."""
    commit = repo.get_commit(ref)
    tree = repo.read_tree(commit.tree_id)
    names = repo.list_weights(commit.commit_hash, layers)
    state = [] if include_training_state else [n for n in names if is_training_state(n)]
    left_out = set(state)
    parent = (
        repo.read_tree(repo.read_commit(commit.parent_hashes[0]).tree_id).entries
        if commit.parent_hashes
        else {}
    )
    rows = []
    for n in names:
        if n in left_out:
            continue
        e = tree.entries[n]
        before = parent.get(n)
        change = "added" if before is None else "identical" if before == e else "changed"
        stats = repo.store.stats(e.tensor_id) if storage else None
        rows.append(TensorRow(e, change, stats if isinstance(stats, ObjectStats) else None))
    return CommitDetail(
        commit=commit,
        refs=decorations(repo).get(commit.commit_hash, []),
        tensors=rows,
        total_tensors=len(tree.entries),
        training_state=state,
        training_state_bytes=sum(tree.entries[n].nbytes for n in state),
        removed=sorted(n for n in parent if n not in tree.entries),
        files=list(tree.files.values()),
        pruned=pruned_state(repo, commit.commit_hash),
    )


# -- a tensor -----------------------------------------------------------------------------------


@dataclass
class TensorDetail:
    commit: Commit
    entry: TreeEntry
    values: dict[str, Any]  # value_stats: mean, std, min, max, zeros, nan, inf, ...
    histogram: tuple[list[int], list[float]]  # counts, bin edges (finite values)
    stored: ObjectStats | None

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        out: dict[str, Any] = {
            "name": e.name,
            "commit": self.commit.commit_hash,
            "tensor": e.tensor_id,
            "shape": list(e.shape),
            "dtype": e.dtype,
            "bytes": e.nbytes,
            "layer_type": e.layer_type,
            "model_name": e.model_name,
            "extra": e.extra,
            "values": self.values,
            "histogram": {"counts": self.histogram[0], "edges": self.histogram[1]},
        }
        if self.stored is not None:
            s = self.stored
            out["storage"] = {
                "stored_bytes": s.stored_bytes,
                "encoding": s.encoding,
                "chain_depth": s.chain_depth,
                "chunks": s.chunks,
                "compression_ratio": s.compression_ratio,
            }
        return out


def tensor_detail(repo: Repository, ref: str, name: str, *, bins: int = 40) -> TensorDetail:
    """One tensor of a commit: its values' statistics and histogram, and how it is stored."""
    commit = repo.get_commit(ref)
    entry = repo.read_tree(commit.tree_id).entries.get(name)
    if entry is None:
        raise WeightNotFoundError(
            f"no weight named {name!r} in {ref} ({commit.short_hash})",
            hint=f"list the tensors with `coral show {ref}`",
        )
    data = repo.load_entry(entry).data
    stats = repo.store.stats(entry.tensor_id)
    return TensorDetail(
        commit,
        entry,
        value_stats(data),
        histogram(data, bins),
        stats if isinstance(stats, ObjectStats) else None,
    )

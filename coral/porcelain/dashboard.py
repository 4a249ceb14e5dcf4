"""What the web dashboard shows around the log: the history a page at a time with its graph,
the activity feed (reflog, remote-tracking refs, publishes), remotes, and a commit's tensors a
page at a time (a 1 000-tensor model is never listed in one go). Nothing here writes.
"""

from __future__ import annotations

import fnmatch
import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from coral.core.training_names import is_training_state
from coral.porcelain.history import (
    LogEntry,
    TensorRow,
    decorations,
    graph_rows,
    linked_experiments,
    pruned_state,
)
from coral.storage.base import ObjectStats
from coral.version_control import pruning
from coral.version_control.objects import Commit, FileEntry
from coral.version_control.repository import Repository

ALL_REFS = "--all"  # HistoryIndex(repo, ALL_REFS): every branch, tag and HEAD


# -- pages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """Which slice of a long list is shown: 0-based `number`, `size` items, `total` in all."""

    number: int
    size: int
    total: int

    @property
    def count(self) -> int:
        """How many pages there are (at least one, even when empty)."""
        return max(1, math.ceil(self.total / self.size)) if self.size else 1

    @property
    def start(self) -> int:
        return self.number * self.size

    @property
    def stop(self) -> int:
        return min(self.total, self.start + self.size)

    def to_dict(self) -> dict[str, int]:
        return {
            "page": self.number,
            "per_page": self.size,
            "total": self.total,
            "pages": self.count,
        }


def page_of(number: int, size: int, total: int) -> Page:
    """The page `number` of `total` items, clamped to the last page."""
    size = max(1, size)
    last = max(0, math.ceil(total / size) - 1)
    return Page(min(max(0, number), last), size, total)


# -- the history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    """One line of the history: a graph prefix (as `coral log --graph` draws it) and a commit,
    or a connector line (entry None)."""

    graph: str
    entry: LogEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "commit": self.entry.to_dict() if self.entry else None}


@dataclass
class HistoryPage:
    rows: list[HistoryRow]
    page: Page

    def to_dict(self) -> dict[str, Any]:
        return {**self.page.to_dict(), "rows": [r.to_dict() for r in self.rows]}


def history_key(repo: Repository, ref: str | None = None) -> tuple[str, ...]:
    """What a `HistoryIndex` depends on: the commit `ref` names, or every ref's and HEAD's
    (cheap: refs only). A new commit anywhere changes it."""
    if ref == ALL_REFS:
        targets = sorted(repo.refs.all_ref_targets().items())
        return (*(f"{n}={c}" for n, c in targets), f"HEAD={repo.head_commit() or ''}")
    if ref is None and repo.head_commit() is None:
        return ("",)
    return (repo.resolve_ref(ref or "HEAD"),)


class HistoryIndex:
    """The history of one ref (`ALL_REFS`: of every ref), newest first, walked once with its
    graph; pages are then slices. Commits are small: 10⁴ of them cost a few MB."""

    def __init__(self, repo: Repository, ref: str | None = None) -> None:
        self.ref = ref
        self.key = history_key(repo, ref)
        walk = repo.iter_commits() if ref == ALL_REFS else repo.log(branch=ref)
        self.commits: list[Commit] = list(walk)
        self._rows = graph_rows(self.commits)
        # index in _rows of the first row of the i-th commit (connector rows go with the next)
        self._starts: list[int] = []
        pending = 0
        for i, (_, commit) in enumerate(self._rows):
            if commit is None:
                continue
            self._starts.append(pending)
            pending = i + 1

    def __len__(self) -> int:
        return len(self.commits)

    def position(self, commit_hash: str) -> int | None:
        """Where a commit is in the history (0 = newest), None when it is not in it."""
        for i, c in enumerate(self.commits):
            if c.commit_hash == commit_hash:
                return i
        return None

    def page(self, repo: Repository, number: int, size: int = 50) -> HistoryPage:
        """Page `number` (0-based, clamped) of `size` commits, decorated with refs, linked
        experiments and pruned state (read for this page only)."""
        page = page_of(number, size, len(self.commits))
        if not self.commits:
            return HistoryPage([], page)
        first = self._starts[page.start]
        last = self._starts[page.stop] if page.stop < len(self._starts) else len(self._rows)
        rows = self._rows[first:last]
        shown = [c for _, c in rows if c is not None]
        labels = decorations(repo)
        experiments = linked_experiments(repo, shown)
        pruned = pruning.pruned(repo.database)
        out = []
        for graph, c in rows:
            if c is None:
                out.append(HistoryRow(graph))
                continue
            entry = LogEntry(
                c,
                labels.get(c.commit_hash, []),
                [(e.experiment_id, e.name) for e in experiments.get(c.commit_hash, [])],
                pruned_state(repo, c.commit_hash, pruned),
            )
            out.append(HistoryRow(graph, entry))
        return HistoryPage(out, page)


# -- a commit's tensors, a page at a time -------------------------------------------------------


@dataclass
class TensorPage:
    """Some tensors of a commit with how each is stored and how it changed from the parent."""

    commit: Commit
    rows: list[TensorRow]
    page: Page
    total_tensors: int  # in the commit's tree
    matching: int  # after the name filter and the training-state rule
    logical_bytes: int  # of the matching tensors
    training_state: int  # tensors left out as training state
    removed: list[str] = field(default_factory=list)  # in the first parent, not here
    files: list[FileEntry] = field(default_factory=list)  # the model's files (config, ...)
    pattern: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.page.to_dict(),
            "commit": self.commit.commit_hash,
            "removed_tensors": list(self.removed),
            "files": [f.to_dict() for f in self.files],
            "total_tensors": self.total_tensors,
            "matching": self.matching,
            "logical_bytes": self.logical_bytes,
            "training_state_left_out": self.training_state,
            "pattern": self.pattern,
            "tensors": [t.to_dict() for t in self.rows],
        }


def tensor_page(
    repo: Repository,
    ref: str,
    number: int = 0,
    size: int = 100,
    *,
    pattern: str | None = None,
    include_training_state: bool = False,
) -> TensorPage:
    """Page `number` of a commit's tensors (names matching the glob `pattern`, or containing it
    when it has no wildcard), each with its change against the first parent and its stored size,
    encoding and delta depth (read for this page only)."""
    commit = repo.get_commit(ref)
    tree = repo.read_tree(commit.tree_id)
    names = sorted(tree.entries)
    training = 0 if include_training_state else sum(1 for n in names if is_training_state(n))
    if not include_training_state:
        names = [n for n in names if not is_training_state(n)]
    if pattern:
        glob = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, glob)]
    page = page_of(number, size, len(names))
    parent = (
        repo.read_tree(repo.read_commit(commit.parent_hashes[0]).tree_id).entries
        if commit.parent_hashes
        else {}
    )
    rows = []
    for n in names[page.start : page.stop]:
        e = tree.entries[n]
        before = parent.get(n)
        change = "added" if before is None else "identical" if before == e else "changed"
        rows.append(TensorRow(e, change, _stats(repo, e.tensor_id)))
    return TensorPage(
        commit=commit,
        rows=rows,
        page=page,
        total_tensors=len(tree.entries),
        matching=len(names),
        logical_bytes=sum(tree.entries[n].nbytes for n in names),
        training_state=training,
        removed=sorted(n for n in parent if n not in tree.entries),
        files=sorted(tree.files.values(), key=lambda f: f.path),
        pattern=pattern,
    )


def _stats(repo: Repository, tensor_id: str) -> ObjectStats | None:
    try:
        stats = repo.store.stats(tensor_id)
    except Exception:  # pruned and collected, or damaged: the row shows no storage facts
        return None
    return stats if isinstance(stats, ObjectStats) else None


# -- the activity feed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """One thing that happened: a commit, merge, branch or tag created or deleted, a remote's
    ref seen at a push or fetch, a publish to a registry."""

    kind: str  # commit, merge, branch, tag, delete, update, remote, publish
    ref: str  # main, v1, origin/main, huggingface:org/model
    commit: str | None
    message: str
    timestamp: float
    ok: bool = True  # False: a publish that failed
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "commit": self.commit,
            "message": self.message,
            "timestamp": self.timestamp,
            "ok": self.ok,
            "url": self.url,
        }


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _kind(ref: str, new: str | None, message: str) -> str:
    if new is None:
        return "delete"
    if ref.startswith("refs/tags/"):
        return "tag"
    word = message.split(":", 1)[0].split(" ", 1)[0].lower()
    if word in ("commit", "merge", "branch"):
        return word
    return "update"


def _reflog(repo: Repository, limit: int) -> list[Activity]:
    rows = repo.database.query(
        "SELECT ref, old_id, new_id, message, created_at FROM reflog WHERE ref != 'HEAD' "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        Activity(_kind(ref, new, msg), _short_ref(ref), new or old, msg, float(ts))
        for ref, old, new, msg, ts in rows
    ]


def _remote_refs(repo: Repository, limit: int) -> list[Activity]:
    if "remote_refs" not in repo.database.tables():
        return []
    rows = repo.database.query(
        "SELECT remote, name, commit_id, updated_at FROM remote_refs "
        "ORDER BY updated_at DESC LIMIT ?",
        (limit,),
    )
    out = []
    for remote, name, commit, ts in rows:
        short = name[len("heads/") :] if name.startswith("heads/") else name
        out.append(Activity("remote", f"{remote}/{short}", commit, "pushed or fetched", float(ts)))
    return out


def _publishes(repo: Repository, limit: int) -> list[Activity]:
    return [
        Activity(
            "publish",
            f"{p.registry}:{p.model_name}",
            p.commit,
            p.summary,
            p.timestamp,
            p.success,
            p.url,
        )
        for p in publish_history(repo, limit)
    ]


def activity_feed(repo: Repository, limit: int = 50, offset: int = 0) -> list[Activity]:
    """What happened, newest first: reflog entries of branches and tags, remote-tracking refs
    as of their last push or fetch, and publishes."""
    want = offset + limit
    items = [*_reflog(repo, want), *_remote_refs(repo, want), *_publishes(repo, want)]
    items.sort(key=lambda a: -a.timestamp)
    return items[offset : offset + limit]


# -- remotes and publishes ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishRow:
    """One publish attempt (secrets in URLs already redacted)."""

    registry: str
    model_name: str
    version: str | None
    url: str | None
    success: bool
    error: str | None
    commit: str | None
    timestamp: float

    @property
    def summary(self) -> str:
        if not self.success:
            return f"publish failed: {self.error or 'unknown error'}"
        return f"published {self.model_name}" + (f" version {self.version}" if self.version else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "model_name": self.model_name,
            "version": self.version,
            "url": self.url,
            "success": self.success,
            "error": self.error,
            "commit": self.commit,
            "timestamp": self.timestamp,
        }


def publish_history(repo: Repository, limit: int | None = 100) -> list[PublishRow]:
    """Publishes, newest first; nothing (and no table created) where none was ever made."""
    if "publish_history" not in repo.database.tables():
        return []
    from coral.registry.history import PublishHistory

    try:
        results = PublishHistory(repo.database).query(limit=limit)
    except sqlite3.Error:
        return []
    return [
        PublishRow(
            r.registry.value,
            r.model_name,
            r.version,
            r.url,
            r.success,
            r.error,
            r.metadata.get("commit_hash"),
            r.published_at.timestamp(),
        )
        for r in results
    ]


@dataclass
class RemoteRow:
    name: str
    url: str  # redacted
    backend: str
    tracking: dict[str, str] = field(default_factory=dict)  # "origin/main" -> commit

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "backend": self.backend,
            "tracking": dict(self.tracking),
        }


def remotes(repo: Repository) -> list[RemoteRow]:
    """Configured remotes (no secrets) with their remote-tracking refs."""
    from coral.remotes.remote import RemoteManager

    manager = RemoteManager(repo.coral_dir / "remotes.json")
    tracking = repo.remote_refs.list()
    out = []
    names = sorted(set(manager.list()) | {n.split("/", 1)[0] for n in tracking})
    for name in names:
        try:
            public = manager.config(name).public_dict()
        except Exception:  # tracking refs of a remote that was removed
            public = {"url": "", "backend": "(removed)"}
        refs = {n: c for n, c in tracking.items() if n.split("/", 1)[0] == name}
        out.append(RemoteRow(name, str(public.get("url", "")), str(public.get("backend")), refs))
    return out


# -- a diff between two commits -----------------------------------------------------------------


@dataclass
class CommitDiff:
    """Two commits compared tensor by tensor (training state left out unless asked for)."""

    from_commit: Commit
    to_commit: Commit
    result: Any  # coral.version_control.diff.DiffResult
    training_state: int  # tensors left out as training state
    files: dict[str, str]  # model file path -> added / removed / changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_commit.commit_hash,
            "to": self.to_commit.commit_hash,
            **{k: v for k, v in self.result.to_dict().items() if k not in ("from", "to")},
            "tensors": [
                {
                    "name": t.name,
                    "category": t.category,
                    "old_shape": list(t.old_shape) if t.old_shape is not None else None,
                    "new_shape": list(t.new_shape) if t.new_shape is not None else None,
                    "old_dtype": t.old_dtype,
                    "new_dtype": t.new_dtype,
                    "metrics": t.metrics.to_dict() if t.metrics else None,
                }
                for t in self.result.tensors
            ],
            "training_state_left_out": self.training_state,
            "files": dict(self.files),
        }


def diff_commits(
    repo: Repository, from_ref: str, to_ref: str, *, include_training_state: bool = False
) -> CommitDiff:
    """`Repository.diff` of two commits (with norms), training state left out by default."""
    a, b = repo.get_commit(from_ref), repo.get_commit(to_ref)
    old, new = repo.read_tree(a.tree_id), repo.read_tree(b.tree_id)
    hidden = 0
    select = None
    if not include_training_state:
        hidden = len({n for t in (old, new) for n in t.entries if is_training_state(n)})

        def select(name: str) -> bool:
            return not is_training_state(name)

    result = repo.diff(a.commit_hash, b.commit_hash, select=select)
    result.from_ref, result.to_ref = from_ref, to_ref
    files = {}
    for path in sorted(set(old.files) | set(new.files)):
        x, y = old.files.get(path), new.files.get(path)
        if x != y:
            files[path] = "added" if x is None else "removed" if y is None else "changed"
    return CommitDiff(a, b, result, hidden, files)

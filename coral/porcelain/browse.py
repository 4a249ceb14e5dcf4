"""The log a page at a time, and the refs at a glance: what `coral browse` opens on.

A `LogPager` walks the history lazily (newest first) and hands out pages of rows with their
graph, so the first screenful of a 10⁴-commit history costs what a 10-commit one does; the graph
lanes carry over from one page to the next (`GraphLanes` draws what `graph_rows` draws).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from coral.porcelain.history import (
    LogEntry,
    commit_subject,
    decorations,
    linked_experiments,
    pruned_state,
)
from coral.version_control import pruning
from coral.version_control.objects import Commit
from coral.version_control.repository import Repository

ALL = None  # LogPager(refs=ALL): every branch, tag and HEAD (`git log --all`)

# -- refs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefItem:
    """One ref as a list shows it."""

    kind: str  # "branch", "tag", "remote"
    name: str  # "main", "v1", "origin/main"
    commit_hash: str
    current: bool = False  # the branch HEAD is on
    note: str = ""  # a tag's description, else the commit's subject


@dataclass
class RefsOverview:
    """Where HEAD is; branches, tags, remote-tracking refs, remotes; how much is staged."""

    branch: str | None
    head: str | None
    branches: list[RefItem] = field(default_factory=list)
    tags: list[RefItem] = field(default_factory=list)
    remotes: list[RefItem] = field(default_factory=list)
    remote_names: list[str] = field(default_factory=list)  # configured, fetched or not
    staged: int = 0

    @property
    def detached(self) -> bool:
        return self.branch is None and self.head is not None

    def items(self) -> list[RefItem]:
        return [*self.branches, *self.tags, *self.remotes]


def refs_overview(repo: Repository) -> RefsOverview:
    """Branches (HEAD's marked), tags, remote-tracking refs and the number of staged changes."""
    from coral.remotes.remote import RemoteManager

    head = repo.head()
    out = RefsOverview(head.branch, head.commit, staged=len(repo.staged_changes()))
    for b in repo.list_branches():
        out.branches.append(
            RefItem(
                "branch", b.name, b.commit_hash, b.is_current, commit_subject(repo, b.commit_hash)
            )
        )
    for t in repo.list_tags():
        note = t.description or commit_subject(repo, t.commit_hash)
        out.tags.append(RefItem("tag", t.name, t.commit_hash, note=note))
    for name, commit in repo.remote_refs.list().items():
        out.remotes.append(RefItem("remote", name, commit, note=commit_subject(repo, commit)))
    configured = RemoteManager(repo.coral_dir / "remotes.json").list()
    out.remote_names = sorted(set(configured) | {r.name.split("/", 1)[0] for r in out.remotes})
    return out


def ref_labels(repo: Repository) -> dict[str, list[str]]:
    """commit hash -> labels as `coral log` prints them, plus remote-tracking refs."""
    labels = decorations(repo)
    for name, commit in repo.remote_refs.list().items():
        labels.setdefault(commit, []).append(name)
    return labels


# -- the graph, one commit at a time -------------------------------------------------------------


class GraphLanes:
    """`graph_rows` for a history that arrives a page at a time: every parent is taken to come
    later in the walk (it does: the walk visits everything reachable)."""

    def __init__(self) -> None:
        self.lanes: list[str] = []

    def _joint(self, marks: set[int], char: str) -> str:
        chars = [" "] * (2 * len(self.lanes))
        for i in range(len(self.lanes)):
            if i in marks:
                chars[2 * i - 1] = char
            else:
                chars[2 * i] = "|"
        return "".join(chars).rstrip()

    def add(self, commit: Commit) -> list[tuple[str, Commit | None]]:
        """The rows `commit` adds: connector rows (None) and its own row."""
        rows: list[tuple[str, Commit | None]] = []
        h = commit.commit_hash
        if h not in self.lanes:
            self.lanes.append(h)
        col = self.lanes.index(h)
        others = {i for i, lane in enumerate(self.lanes) if lane == h and i != col}
        if others:  # branches that forked here join their lane first: "|/"
            rows.append((self._joint(others, "/"), None))
            self.lanes = [lane for i, lane in enumerate(self.lanes) if i not in others]
        rows.append((" ".join("*" if i == col else "|" for i in range(len(self.lanes))), commit))
        parents = commit.parent_hashes
        if not parents:
            self.lanes.pop(col)
            return rows
        self.lanes[col] = parents[0]
        added = set()
        for p in parents[1:]:
            if p not in self.lanes:
                self.lanes.append(p)
                added.add(len(self.lanes) - 1)
        if added:
            rows.append((self._joint(added, "\\"), None))
        return rows


# -- the log, a page at a time ------------------------------------------------------------------


@dataclass(frozen=True)
class LogRow:
    """One line of the log: a graph prefix and a commit, or a connector line (entry None)."""

    graph: str
    entry: LogEntry | None = None

    @property
    def commit(self) -> Commit | None:
        return self.entry.commit if self.entry is not None else None


class LogPager:
    """The history of `refs` (default: every branch, tag and HEAD), newest first, read a page at
    a time; nothing past the last page asked for is read."""

    def __init__(self, repo: Repository, refs: Sequence[str] | None = ALL) -> None:
        self.repo = repo
        self.refs = list(refs) if refs is not None else None
        self._walk: Iterator[Commit] | None = None
        self._lanes = GraphLanes()
        self._labels: dict[str, list[str]] | None = None
        self._pruned: set[str] | None = None
        self.commits = 0  # handed out so far
        self.done = False

    def _start(self) -> Iterator[Commit]:
        if self._walk is None:
            repo = self.repo
            self._walk = repo.iter_commits(self.refs)  # None: every branch, tag and HEAD
            self._labels = ref_labels(repo)
            self._pruned = pruning.pruned(repo.database)
        return self._walk

    def next_page(self, count: int) -> list[LogRow]:
        """The next `count` commits (fewer at the end; `done` is then set), with their graph
        and connector rows, labels, linked experiments and pruned state."""
        walk = self._start()
        commits: list[Commit] = []
        for commit in walk:
            commits.append(commit)
            if len(commits) >= count:
                break
        else:
            self.done = True
        self.commits += len(commits)
        experiments = linked_experiments(self.repo, commits)
        labels = self._labels or {}
        rows: list[LogRow] = []
        for c in commits:
            for graph, row_commit in self._lanes.add(c):
                if row_commit is None:
                    rows.append(LogRow(graph))
                    continue
                entry = LogEntry(
                    c,
                    labels.get(c.commit_hash, []),
                    [(e.experiment_id, e.name) for e in experiments.get(c.commit_hash, [])],
                    pruned_state(self.repo, c.commit_hash, self._pruned),
                )
                rows.append(LogRow(graph, entry))
        return rows


def ancestry(rows: Sequence[LogRow], index: int) -> set[str]:
    """Hashes of the commit at `rows[index]` and its ancestors among `rows` (a log is in
    history order: a child comes before its parents, so one pass down suffices)."""
    start = rows[index].commit if 0 <= index < len(rows) else None
    if start is None:
        return set()
    wanted = {start.commit_hash}
    found: set[str] = set()
    for row in rows[index:]:
        c = row.commit
        if c is not None and c.commit_hash in wanted:
            found.add(c.commit_hash)
            wanted.update(c.parent_hashes)
    return found

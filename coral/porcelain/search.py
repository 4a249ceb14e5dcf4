"""Searching the history: commit messages, metrics and tensor names, newest first.

A query is either a metric comparison (`val_loss<0.4`, `acc>=0.9`, `step=100`) or text. Text
matches (case-insensitively) a commit's message, the names of its metrics, and the tensors it
added, changed or removed against its first parent (as `git log -- PATH` lists the commits
that touched a file); text with `*`, `?` or `[` is a glob over tensor names. Hits are yielded
as they are found, so a caller can show the first ones at once and stop whenever it likes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from coral.version_control.objects import Commit
from coral.version_control.repository import Repository

MESSAGE, METRIC, TENSOR = "message", "metric", "tensor"
_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=|==|!=|<|>|=)\s*([-+0-9.eEinfa]+)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
}
_TREE_CACHE = 4096  # trees whose matching entries are remembered during one search


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: `metric op value`, or text (a glob when it has glob characters)."""

    text: str
    metric: str | None = None
    op: str | None = None
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> SearchQuery:
        m = _COMPARISON.match(text)
        if m:
            with contextlib.suppress(ValueError):  # not a number: search the text as it is
                return cls(text.strip(), m.group(1), m.group(2), float(m.group(3)))
        return cls(text.strip())

    @property
    def is_glob(self) -> bool:
        return self.metric is None and any(ch in self.text for ch in "*?[")

    def matches_text(self, value: str) -> bool:
        return bool(self.text) and self.text.lower() in value.lower()

    def matches_name(self, name: str) -> bool:
        """A tensor name: the glob, else a case-insensitive substring."""
        if self.is_glob:
            return fnmatch.fnmatchcase(name, self.text)
        return self.matches_text(name)

    def matches_metric(self, metrics: dict[str, object]) -> list[str]:
        """`name=value` of each metric the query picks."""
        out = []
        for key, value in metrics.items():
            if self.metric is not None:
                ok = key == self.metric and isinstance(value, int | float)
                if not ok or self.op is None or self.value is None:
                    continue
                if not _OPERATORS[self.op](float(value), self.value):  # type: ignore[arg-type]
                    continue
            elif not self.matches_text(key):
                continue
            out.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        return out


@dataclass(frozen=True)
class SearchHit:
    """A commit that matches, how (message, metric or tensor), and what matched."""

    commit: Commit
    kind: str
    what: str


class _TouchedTensors:
    """Names matching a query that a commit added, changed or removed against its first parent."""

    def __init__(self, repo: Repository, query: SearchQuery) -> None:
        self.repo = repo
        self.query = query
        self._by_tree: dict[str, dict[str, str]] = {}

    def _matching(self, tree_id: str) -> dict[str, str]:
        got = self._by_tree.get(tree_id)
        if got is None:
            tree = self.repo.read_tree(tree_id)
            got = {n: e.tensor_id for n, e in tree.entries.items() if self.query.matches_name(n)}
            if len(self._by_tree) >= _TREE_CACHE:
                self._by_tree.pop(next(iter(self._by_tree)))
            self._by_tree[tree_id] = got
        return got

    def __call__(self, commit: Commit) -> list[str]:
        try:
            now = self._matching(commit.tree_id)
            before = (
                self._matching(self.repo.read_commit(commit.parent_hashes[0]).tree_id)
                if commit.parent_hashes
                else {}
            )
        except Exception:  # a pruned commit whose tree gc collected: nothing to search
            return []
        return sorted(n for n in set(now) | set(before) if now.get(n) != before.get(n))


def search_history(
    repo: Repository,
    query: str | SearchQuery,
    refs: Sequence[str] | None = None,
    *,
    tensors: bool = True,
) -> Iterator[SearchHit]:
    """Hits for `query` over the history of `refs` (default: every branch, tag and HEAD),
    newest first; one commit may give a hit of each kind. `tensors=False` skips reading trees."""
    q = query if isinstance(query, SearchQuery) else SearchQuery.parse(query)
    if not q.text:
        return
    touched = _TouchedTensors(repo, q) if tensors and q.metric is None else None
    for commit in repo.iter_commits(list(refs) if refs is not None else None):
        if q.metric is None and not q.is_glob:
            lines = [ln for ln in commit.message.splitlines() if q.matches_text(ln)]
            if lines:
                yield SearchHit(commit, MESSAGE, lines[0].strip())
        metrics = q.matches_metric(commit.metrics) if not q.is_glob else []
        if metrics:
            yield SearchHit(commit, METRIC, ", ".join(metrics))
        names = touched(commit) if touched is not None else []
        if names:
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            yield SearchHit(commit, TENSOR, ", ".join(names[:3]) + more)

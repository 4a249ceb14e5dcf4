"""`coral changelog A B`: what happened from A to B, as Markdown.

The commits of B's history that are not in A's (newest first), the metrics of both ends and
their deltas (a tag's own metrics count for its end), and the tensors added, removed and
changed with their relative change ‖Δ‖/‖a‖ from the diff engine; model files that changed.

>>> log = changelog(repo, "v1.0.0", "v1.1.0")
>>> print(log.to_markdown())
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from coral.porcelain.compare import _file_changes, tensor_select
from coral.version_control import history
from coral.version_control.diff import IDENTICAL, DiffResult, Progress
from coral.version_control.objects import Commit
from coral.version_control.repository import Repository
from coral.version_control.writer import first_line


@dataclass(frozen=True)
class MetricDelta:
    """One metric at both ends; `delta` is new − old when both are numbers."""

    name: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "delta": self.delta}


@dataclass
class Changelog:
    """From `from_ref` to `to_ref`: commits, metric deltas, tensor changes, model files."""

    from_ref: str
    to_ref: str
    from_commit: str
    to_commit: str
    commits: list[Commit]
    metrics: list[MetricDelta]
    diff: DiffResult
    files: dict[str, str] = field(default_factory=dict)  # path -> added / removed / changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_ref,
            "to": self.to_ref,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "commits": [
                {
                    "commit": c.commit_hash,
                    "subject": first_line(c.message),
                    "author": c.author,
                    "datetime": c.datetime.isoformat(),
                }
                for c in self.commits
            ],
            "metrics": [m.to_dict() for m in self.metrics],
            "tensors": self.diff.to_dict(),
            "files": dict(self.files),
        }

    def to_markdown(self) -> str:
        """The changelog as a Markdown document."""
        a, b = self.from_ref, self.to_ref
        counts = self.diff.counts()
        lines = [
            f"# Changelog: {a} → {b}",
            "",
            f"`{self.from_commit[:10]}` → `{self.to_commit[:10]}`: "
            f"{_plural(len(self.commits), 'commit')}; tensors: {counts['changed']} changed, "
            f"{counts['shape_changed']} reshaped, {counts['added']} added, "
            f"{counts['removed']} removed.",
            "",
            "## Commits",
            "",
        ]
        lines += [
            f"- `{c.commit_hash[:10]}` {_cell(first_line(c.message))} "
            f"({_cell(_author(c.author))}, {c.datetime:%Y-%m-%d})"
            for c in self.commits
        ] or [f"No commits in {b} that {a} lacks."]
        lines += ["", "## Metrics", ""]
        if self.metrics:
            lines += [f"| metric | {_cell(a)} | {_cell(b)} | change |", "|---|---:|---:|---:|"]
            lines += [
                f"| {_cell(m.name)} | {_value(m.old)} | {_value(m.new)} | {_delta(m.delta)} |"
                for m in self.metrics
            ]
        else:
            lines.append("No metrics recorded at either end.")
        lines += ["", "## Tensors", ""]
        rows = [t for t in self.diff.tensors if t.category != IDENTICAL]
        if rows:
            lines += ["| tensor | change | shape | relative change |", "|---|---|---|---:|"]
            for t in rows:
                shape = _shape(t.new_shape if t.new_shape is not None else t.old_shape)
                if t.category == "shape_changed":
                    shape = f"{_shape(t.old_shape)} → {_shape(t.new_shape)}"
                rel = _percent(t.metrics.relative) if t.metrics is not None else ""
                kind = t.category.replace("_", " ")
                lines.append(f"| `{_cell(t.name)}` | {kind} | {shape} | {rel} |")
        else:
            lines.append("No tensor changed.")
        if self.files:
            lines += ["", "## Model files", ""]
            lines += [f"- `{_cell(p)}` {k}" for p, k in self.files.items()]
        return "\n".join(lines) + "\n"


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _author(author: str) -> str:
    return author.split(" <", 1)[0] if " <" in author else author


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return ""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _value(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.6g}"
    return _cell(str(x))


def _delta(x: float | None) -> str:
    if x is None:
        return ""
    return "0" if x == 0 else f"{x:+.4g}"


def _percent(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if math.isnan(x):
        return "nan"
    return f"{x * 100:.3g}%"


def metrics_at(repo: Repository, ref: str) -> dict[str, Any]:
    """The metrics of `ref`'s commit, updated with a tag's own when `ref` names a tag."""
    metrics = dict(repo.get_commit(ref).metrics)
    tag = repo.refs.get_tag(ref)
    if tag is not None:
        metrics.update(tag.metrics)
    return metrics


def commits_between(repo: Repository, from_commit: str, to_commit: str) -> list[Commit]:
    """Commits reachable from `to_commit` but not from `from_commit`, newest first."""
    excluded = history.ancestors(repo.read_commit, from_commit)
    return [
        c
        for c in history.iter_history(repo.read_commit, [to_commit])
        if c.commit_hash not in excluded
    ]


def changelog(
    repo: Repository,
    from_ref: str,
    to_ref: str,
    *,
    include_training_state: bool = False,
    progress: Progress | None = None,
) -> Changelog:
    """What changed from `from_ref` to `to_ref` (RefNotFoundError for an unknown ref)."""
    a, b = repo.resolve_ref(from_ref), repo.resolve_ref(to_ref)
    old, new = metrics_at(repo, from_ref), metrics_at(repo, to_ref)
    metrics = [MetricDelta(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))]
    select = tensor_select(None, include_training_state)
    diff = repo.diff(a, b, select=select, progress=progress)
    diff.from_ref, diff.to_ref = from_ref, to_ref
    files = _file_changes(repo.get_tree(a), repo.get_tree(b))
    return Changelog(from_ref, to_ref, a, b, commits_between(repo, a, b), metrics, diff, files)

"""Metrics as series a chart draws: the metrics recorded with commits, over the history, and
the metric curves of tracked experiments (step, value). Read-only: no experiment table is
created where none exists."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from coral.version_control.objects import Commit
from coral.version_control.repository import Repository


def _number(value: Any) -> float | None:
    """A finite-or-not float of a metric value; None for text, booleans and missing values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class CommitMetrics:
    """Metrics recorded with commits, oldest commit first: `series[name][i]` is the value at
    `commits[i]` (None where that commit did not record it)."""

    commits: list[Commit]
    series: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.series)

    def to_dict(self) -> dict[str, Any]:
        return {
            "commits": [
                {"hash": c.commit_hash, "message": c.message, "timestamp": c.timestamp}
                for c in self.commits
            ],
            "series": {
                n: [None if v is None or not math.isfinite(v) else v for v in vs]
                for n, vs in self.series.items()
            },
        }


def commit_metrics(
    repo: Repository,
    ref: str | None = None,
    *,
    limit: int | None = 500,
    names: list[str] | None = None,
) -> CommitMetrics:
    """The numeric metrics of the newest `limit` commits reachable from `ref` (default HEAD),
    oldest first; only `names` when given."""
    if ref is None and repo.head_commit() is None:
        return CommitMetrics([])
    commits = list(reversed(repo.log(max_commits=limit, branch=ref)))
    found: dict[str, list[float | None]] = {}
    for i, c in enumerate(commits):
        for name, value in c.metrics.items():
            number = _number(value)
            if number is None or (names and name not in names):
                continue
            found.setdefault(name, [None] * len(commits))[i] = number
    return CommitMetrics(commits, dict(sorted(found.items())))


# -- experiments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment as a picker lists it (no metric points)."""

    experiment_id: str
    name: str
    status: str
    created_at: float
    branch: str | None
    metrics: list[str]
    commits: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
            "branch": self.branch,
            "metrics": list(self.metrics),
            "commits": list(self.commits),
        }


@dataclass(frozen=True)
class Curve:
    """One metric of one experiment: (step, value) in logging order (the step is the point's
    index when it was logged without one)."""

    experiment_id: str
    experiment: str
    metric: str
    points: list[tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "experiment": self.experiment,
            "metric": self.metric,
            "points": [[x, y if math.isfinite(y) else None] for x, y in self.points],
        }


def _store(repo: Repository) -> Any:
    from coral.experiments.store import ExperimentStore

    path = repo.db_path
    return ExperimentStore(path) if ExperimentStore.exists_in(path) else None


def experiments(repo: Repository, limit: int | None = 200) -> list[ExperimentInfo]:
    """Tracked experiments, newest first ([] where none was ever tracked)."""
    from coral.experiments import queries

    store = _store(repo)
    if store is None:
        return []
    try:
        loaded = queries.load(store, store.rows(limit=limit), include_metrics=False)
    finally:
        store.close()
    return [
        ExperimentInfo(
            e.experiment_id,
            e.name,
            e.status.value,
            e.created_at.timestamp(),
            e.branch,
            sorted(e.summary),
            list(e.commits),
        )
        for e in loaded
    ]


def experiment_curves(
    repo: Repository, experiment_ids: list[str], metrics: list[str] | None = None
) -> list[Curve]:
    """The curves of the given experiments (full ids), one per experiment and metric (every
    metric it logged, or those named); unknown ids are left out."""
    from coral.experiments import queries

    store = _store(repo)
    if store is None or not experiment_ids:
        return []
    try:
        known = queries.load_ids(store, experiment_ids)
        curves: list[Curve] = []
        for eid, exp in known.items():
            points: dict[str, list[tuple[float, float]]] = {}
            for name, value, step, _, _ in store.metric_points(eid, metrics or None):
                series = points.setdefault(name, [])
                series.append((float(step if step is not None else len(series)), value))
            curves.extend(Curve(eid, exp.name, n, p) for n, p in sorted(points.items()))
    finally:
        store.close()
    return curves

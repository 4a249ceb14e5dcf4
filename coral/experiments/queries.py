"""Reading experiments back: rows to `Experiment`s, filters, best runs, comparisons, totals.

Functions of an `ExperimentStore`; `ExperimentTracker` calls them after writing what it still
buffers, and the commit lookups (`lookup.py`) call them directly.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from coral.experiments.errors import (
    AmbiguousExperimentError,
    ExperimentError,
    ExperimentNotFoundError,
)
from coral.experiments.store import ExperimentStore
from coral.experiments.types import Experiment, ExperimentMetric, ExperimentStatus

StatusArg = ExperimentStatus | str


def dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts)


def parse_statuses(
    status: StatusArg | Iterable[StatusArg] | None,
) -> list[ExperimentStatus] | None:
    if status is None:
        return None
    if isinstance(status, (ExperimentStatus, str)):
        return [ExperimentStatus.parse(status)]
    return [ExperimentStatus.parse(s) for s in status]


def resolve_id(store: ExperimentStore, experiment_id: str) -> str:
    """The full id of an experiment given its id or a unique prefix."""
    text = str(experiment_id).strip()
    if not text:
        raise ExperimentNotFoundError("empty experiment id")
    found = store.resolve(text)
    if not found:
        raise ExperimentNotFoundError(f"no experiment {text!r}")
    if len(found) > 1:
        raise AmbiguousExperimentError(
            f"experiment id {text!r} is ambiguous: {', '.join(found[:5])}"
        )
    return found[0]


def load(
    store: ExperimentStore, rows: Sequence[dict[str, Any]], include_metrics: bool
) -> list[Experiment]:
    """`Experiment`s of experiment rows (tags, commits, summaries; points if asked for)."""
    ids = [r["experiment_id"] for r in rows]
    tags = store.tags_of(ids)
    commits = store.commits_of(ids)
    summaries = store.summaries(ids)
    out = []
    for r in rows:
        eid = r["experiment_id"]
        metrics: list[ExperimentMetric] = []
        if include_metrics:
            metrics = [
                ExperimentMetric(n, v, s, datetime.fromtimestamp(t), json.loads(m) if m else {})
                for n, v, s, t, m in store.metric_points(eid)
            ]
        out.append(
            Experiment(
                experiment_id=eid,
                name=r["name"],
                description=r["description"],
                status=ExperimentStatus.parse(r["status"]),
                created_at=datetime.fromtimestamp(r["created_at"]),
                started_at=dt(r["started_at"]),
                ended_at=dt(r["ended_at"]),
                metrics=metrics,
                params=json.loads(r["params"] or "{}"),
                tags=tags[eid],
                commit_hash=r["commit_hash"],
                branch=r["branch"],
                parent_experiment=r["parent_experiment"],
                notes=r["notes"],
                error_message=r["error_message"],
                commits=[c for c, _, _ in commits[eid]],
                pid=r["pid"],
                host=r["host"],
                summary=summaries[eid],
            )
        )
    return out


def load_ids(
    store: ExperimentStore, ids: Sequence[str], include_metrics: bool = False
) -> dict[str, Experiment]:
    """id -> Experiment of the given ids (newest first; unknown ids left out)."""
    if not ids:
        return {}
    rows = store.rows(f"experiment_id IN ({', '.join('?' for _ in ids)})", list(ids))
    return {e.experiment_id: e for e in load(store, rows, include_metrics)}


def list_filter(
    status: StatusArg | Iterable[StatusArg] | None,
    tags: Iterable[str] | None,
    name: str | None,
) -> tuple[str, list[Any]]:
    """(WHERE clause, arguments) selecting by status, by tags (all of them) and by name
    (exact, or a glob such as "bert-*")."""
    where: list[str] = []
    args: list[Any] = []
    statuses = parse_statuses(status)
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        args.extend(s.value for s in statuses)
    if name is not None:
        if any(c in name for c in "*?["):
            where.append("name GLOB ?")
        else:
            where.append("name = ?")
        args.append(name)
    for tag in dict.fromkeys(tags or []):
        where.append("experiment_id IN (SELECT experiment_id FROM experiment_tags WHERE tag=?)")
        args.append(str(tag))
    return " AND ".join(where), args


def find_best(
    store: ExperimentStore,
    metric: str,
    mode: str = "min",
    status: StatusArg | Iterable[StatusArg] | None = None,
    limit: int | None = 5,
) -> list[dict[str, Any]]:
    """The experiments with the best value of `metric` (see `ExperimentTracker.find_best`)."""
    if mode not in ("min", "max"):
        raise ExperimentError(f"mode must be 'min' or 'max', not {mode!r}")
    col, step_col, order = (
        ("min_value", "min_step", "ASC") if mode == "min" else ("max_value", "max_step", "DESC")
    )
    sql = (
        f"SELECT s.experiment_id, s.{col}, s.{step_col}, s.last_value, s.count "
        "FROM experiment_series s JOIN experiments e USING (experiment_id) "
        f"WHERE s.name=? AND s.{col} IS NOT NULL"
    )
    args: list[Any] = [metric]
    statuses = parse_statuses(status)
    if statuses:
        sql += f" AND e.status IN ({', '.join('?' for _ in statuses)})"
        args.extend(s.value for s in statuses)
    sql += f" ORDER BY s.{col} {order}, e.created_at ASC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    hits = store.query(sql, args)
    by_id = load_ids(store, [h[0] for h in hits])
    results = []
    for eid, best, step, last, count in hits:
        exp = by_id[eid]
        results.append(
            {
                "experiment_id": eid,
                "name": exp.name,
                "metric": metric,
                "mode": mode,
                "best_value": float(best),
                "step": step,
                "last_value": math.nan if last is None else float(last),
                "count": count,
                "commit_hash": exp.commit_hash,
                "params": dict(exp.params),
                "tags": list(exp.tags),
                "status": exp.status.value,
                "branch": exp.branch,
                "created_at": exp.created_at,
            }
        )
    return results


def compare(
    store: ExperimentStore, ids: Sequence[str], metrics: Sequence[str] | None = None
) -> dict[str, Any]:
    """Side-by-side view of experiments given by full id (see `ExperimentTracker.compare`)."""
    loaded = load_ids(store, ids)
    exps = [loaded[i] for i in ids]
    names = list(metrics) if metrics else sorted({m for e in exps for m in e.summary})
    metric_table: dict[str, dict[str, Any]] = {}
    for m in names:
        metric_table[m] = {
            e.experiment_id: (dict(e.summary[m]) if m in e.summary else None) for e in exps
        }
    param_keys = list(dict.fromkeys(k for e in exps for k in e.params))
    param_table = {k: {e.experiment_id: e.params.get(k) for e in exps} for k in param_keys}
    differing = [
        k
        for k, v in param_table.items()
        if len({json.dumps(x, sort_keys=True, default=str) for x in v.values()}) > 1
    ]
    return {
        "experiments": [
            {
                "experiment_id": e.experiment_id,
                "name": e.name,
                "status": e.status.value,
                "branch": e.branch,
                "commit_hash": e.commit_hash,
                "tags": list(e.tags),
                "started_at": e.started_at,
                "ended_at": e.ended_at,
                "duration": e.duration,
                "parent_experiment": e.parent_experiment,
            }
            for e in exps
        ],
        "metrics": metric_table,
        "params": param_table,
        "differing_params": differing,
    }


def summary(store: ExperimentStore) -> dict[str, Any]:
    """Repository-wide numbers (see `ExperimentTracker.get_summary`)."""
    by_status = {s.value: 0 for s in ExperimentStatus}
    for status, count in store.query("SELECT status, COUNT(*) FROM experiments GROUP BY status"):
        by_status[status] = int(count)
    names = [r[0] for r in store.query("SELECT DISTINCT name FROM experiments ORDER BY name")]
    branches = [
        r[0]
        for r in store.query(
            "SELECT DISTINCT branch FROM experiments WHERE branch IS NOT NULL ORDER BY branch"
        )
    ]
    return {
        "total_experiments": sum(by_status.values()),
        "by_status": by_status,
        "unique_names": len(names),
        "names": names,
        "branches": branches,
        "total_metrics_logged": store.total_points(),
        "running": by_status[ExperimentStatus.RUNNING.value],
        "active_experiment": store.get_active(),
    }


class ExperimentQueries:
    """The reading half of `ExperimentTracker` (a base class of it): experiments of one store.

    `_flush_for(ids)` runs before each read; the tracker writes its buffered points there.
    """

    store: ExperimentStore

    def _flush_for(self, ids: Sequence[str] | None = None) -> None:
        """Make pending writes of experiments `ids` (all when None) visible to a read."""

    def resolve_id(self, experiment_id: str) -> str:
        """The full id of an experiment given its id or a unique prefix."""
        return resolve_id(self.store, experiment_id)

    def get(self, experiment_id: str, include_metrics: bool = True) -> Experiment:
        """One experiment (by id or unique prefix), with its metric points unless told not to."""
        eid = self.resolve_id(experiment_id)
        self._flush_for([eid])
        rows = self.store.rows("experiment_id=?", (eid,))
        return load(self.store, rows, include_metrics)[0]

    def list(
        self,
        status: StatusArg | Iterable[StatusArg] | None = None,
        tags: Iterable[str] | None = None,
        name: str | None = None,
        limit: int | None = None,
        include_metrics: bool = True,
    ) -> builtins.list[Experiment]:
        """Experiments, newest first, filtered by status, by tags (all of them) and by name
        (exact, or a glob such as "bert-*")."""
        where, args = list_filter(status, tags, name)
        self._flush_for()
        rows = self.store.rows(where, args, limit=limit)
        return load(self.store, rows, include_metrics)

    def metric_history(
        self, experiment_id: str, name: str
    ) -> builtins.list[tuple[int | None, float]]:
        """(step, value) of every point of one metric, in logging order."""
        eid = self.resolve_id(experiment_id)
        self._flush_for([eid])
        return [(p[2], p[1]) for p in self.store.metric_points(eid, [name])]

    def commit_links(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        """Each linked commit with how it was linked ("end", "param:<key>", "log", "manual")."""
        eid = self.resolve_id(experiment_id)
        return [
            {"commit_hash": c, "source": s, "recorded_at": dt(t)}
            for c, s, t in self.store.commits_of([eid])[eid]
        ]

    def active_experiment_id(self) -> str | None:
        """The repository's active experiment (shared by all processes), or None."""
        return self.store.get_active()

    def find_best(
        self,
        metric: str,
        mode: str = "min",
        status: StatusArg | Iterable[StatusArg] | None = None,
        limit: int | None = 5,
    ) -> builtins.list[dict[str, Any]]:
        """The experiments with the best value of `metric` (mode "min" or "max"), best first.

        Each result: experiment_id, name, best_value, step (where it was reached), last_value,
        count, commit_hash, params, tags, status, branch, created_at.
        """
        self._flush_for()
        return find_best(self.store, metric, mode, status, limit)

    def compare(
        self, experiment_ids: Sequence[str], metrics: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Side-by-side view of experiments.

        Returns {"experiments": [summary per experiment], "metrics": {metric: {id: {last, min,
        max, count, last_step, min_step, max_step}}}, "params": {param: {id: value}},
        "differing_params": [params whose values differ]}.
        """
        ids = [self.resolve_id(e) for e in experiment_ids]
        self._flush_for(ids)
        return compare(self.store, ids, metrics)

    def get_summary(self) -> dict[str, Any]:
        """Repository-wide numbers: total_experiments, by_status, unique_names, branches,
        total_metrics_logged (plus names and running)."""
        self._flush_for()
        return summary(self.store)

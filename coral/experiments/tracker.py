"""`ExperimentTracker`: experiments of a repository, stored in its database and linked to commits.

    tracker = ExperimentTracker(repo)
    tracker.start("bert-sentiment", params={"lr": 2e-5}, tags=["bert"])
    tracker.log("loss", 0.31, step=100)           # a cheap in-memory append
    tracker.end(commit_hash=repo.commit("trained"))

A process's active experiment is the tracker's current one. The repository also remembers one
active experiment in its database (set by `start`/`resume`, cleared by `end`), which another
process — e.g. `coral experiment log` — reaches with `attach()`.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from coral.experiments.buffer import MetricBuffer
from coral.experiments.errors import (
    AmbiguousExperimentError,
    ExperimentError,
    ExperimentNotFoundError,
    ExperimentRunningError,
    NoActiveExperimentError,
)
from coral.experiments.sinks import ExperimentSink
from coral.experiments.store import ExperimentStore, PendingPoint, to_json
from coral.experiments.types import Experiment, ExperimentMetric, ExperimentStatus

_HEX = re.compile(r"^[0-9a-f]{7,64}$")
_CLOCK_SLACK_S = 1.0  # commit timestamps vs. experiment start/end
_LOG_SCAN_LIMIT = 10_000
_TRACKERS: weakref.WeakSet[ExperimentTracker] = weakref.WeakSet()
_HOST = socket.gethostname()
_now = time.time

StatusArg = ExperimentStatus | str


def db_path_of(repo: Any) -> Path:
    """The SQLite database of a Repository (or of the repository at a path)."""
    for attr in ("db_path",):
        value = getattr(repo, attr, None)
        if value is not None:
            return Path(value)
    coral_dir = getattr(repo, "coral_dir", None)
    if coral_dir is not None:
        return Path(coral_dir) / "coral.db"
    raise ExperimentError(f"{repo!r} is not a Coral repository", hint="pass a Repository")


def _open_repo(repo: Any) -> Any:
    if isinstance(repo, (str, os.PathLike)):
        from coral.version_control.repository import Repository

        return Repository(repo)
    return repo


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts)


def _statuses(status: StatusArg | Iterable[StatusArg] | None) -> list[ExperimentStatus] | None:
    if status is None:
        return None
    if isinstance(status, (ExperimentStatus, str)):
        return [ExperimentStatus.parse(status)]
    return [ExperimentStatus.parse(s) for s in status]


class ExperimentTracker:
    """Start, log into, end, query and compare the experiments of one repository.

    Metric points are buffered in memory and written in batches (every `flush_every` points or
    `flush_interval` seconds, at `end()`, at `flush()` and at interpreter exit), so `log` costs
    about a microsecond. Several trackers and processes may write to one repository at once.
    """

    def __init__(
        self,
        repo: Any,
        *,
        flush_every: int = 1000,
        flush_interval: float = 1.0,
        max_pending: int = 200_000,
        sinks: Iterable[ExperimentSink] = (),
    ) -> None:
        self.repo = _open_repo(repo)
        self.store = ExperimentStore(db_path_of(self.repo))
        self._buffer = MetricBuffer(
            self.store,
            flush_every=flush_every,
            flush_interval=flush_interval,
            max_pending=max_pending,
        )
        self._buffer.listeners.append(self._dispatch_batch)
        self._queue = self._buffer.queue
        self._flush_every = self._buffer.flush_every
        self._current: str | None = None
        self._series: dict[str, list[int]] = {}  # metric name -> [series_id, next step]
        self._sinks: list[ExperimentSink] = list(sinks)
        self._owned_pid = os.getpid()
        _TRACKERS.add(self)
        _install_excepthook()

    # ------------------------------------------------------------------------------------------
    # the current experiment
    @property
    def current_id(self) -> str | None:
        """Id of this tracker's running experiment, or None."""
        return self._current

    @property
    def current(self) -> Experiment | None:
        """This tracker's running experiment (without its metric points), or None."""
        return None if self._current is None else self.get(self._current, include_metrics=False)

    def _require_current(self) -> str:
        if self._current is None:
            raise NoActiveExperimentError("no experiment is running in this tracker")
        return self._current

    def start(
        self,
        name: str,
        description: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        branch: str | None = None,
    ) -> Experiment:
        """Create an experiment in RUNNING state and make it the current one.

        `branch` is the branch the experiment runs on (default: the repository's current
        branch); commits made on it while the experiment runs are linked to it at `end()`.
        """
        return self._begin(
            name,
            description,
            params,
            tags,
            branch,
            parent=None,
            status=ExperimentStatus.RUNNING,
            own=True,
        )

    def create(
        self,
        name: str,
        description: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        branch: str | None = None,
    ) -> Experiment:
        """Record a PENDING experiment (not current; `attach(id)` starts it later)."""
        return self._begin(
            name,
            description,
            params,
            tags,
            branch,
            parent=None,
            status=ExperimentStatus.PENDING,
            own=False,
        )

    def _begin(
        self,
        name: str,
        description: str | None,
        params: Mapping[str, Any] | None,
        tags: Iterable[str] | None,
        branch: str | None,
        parent: str | None,
        status: ExperimentStatus,
        own: bool,
        pid: int | None = None,
    ) -> Experiment:
        if own and self._current is not None:
            raise ExperimentRunningError(
                f"experiment {self._current} is still running in this tracker"
            )
        if not name or not str(name).strip():
            raise ExperimentError("an experiment needs a name")
        now = time.time()
        branch = branch if branch is not None else self._current_branch()
        experiment_id = self._new_id()
        row = {
            "experiment_id": experiment_id,
            "name": str(name),
            "description": description,
            "status": status.value,
            "created_at": now,
            "started_at": now if status is ExperimentStatus.RUNNING else None,
            "ended_at": None,
            "params": to_json(dict(params or {})),
            "commit_hash": None,
            "branch": branch,
            "start_commit": self._branch_head(branch)
            if status is ExperimentStatus.RUNNING
            else None,
            "parent_experiment": parent,
            "notes": None,
            "error_message": None,
            "pid": (pid if pid is not None else os.getpid()) if own else None,
            "host": _HOST,
            "updated_at": now,
        }
        tag_list = list(dict.fromkeys(str(t) for t in (tags or [])))
        self.store.insert_experiment(row, tag_list)
        if own:
            self._activate(experiment_id)
        experiment = self.get(experiment_id, include_metrics=False)
        if own:
            self._announce(experiment, self._sinks)
        return experiment

    def _announce(self, experiment: Experiment, sinks: Iterable[ExperimentSink]) -> None:
        """What a sink sees first: start, then the initial params and tags (as `replay` does)."""
        for sink in builtins.list(sinks):
            with _sink_guard(sink):
                sink.on_start(experiment)
                if experiment.params:
                    sink.on_params(experiment.experiment_id, dict(experiment.params))
                if experiment.tags:
                    sink.on_tags(experiment.experiment_id, builtins.list(experiment.tags))

    def _activate(self, experiment_id: str) -> None:
        self._current = experiment_id
        self._series = {}
        self.store.set_active(experiment_id)
        self._buffer.start()

    def attach(self, experiment_id: str | None = None) -> Experiment:
        """Make an existing experiment this tracker's current one (default: the repository's
        active experiment, e.g. one started by `coral experiment start` in another process).

        A PENDING experiment starts running. Attaching does not take ownership: `close()`
        leaves the experiment running; `end()` ends it.
        """
        if self._current is not None:
            raise ExperimentRunningError(
                f"experiment {self._current} is still running in this tracker"
            )
        if experiment_id is None:
            experiment_id = self.store.get_active()
            if experiment_id is None:
                raise NoActiveExperimentError("this repository has no active experiment")
        experiment_id = self.resolve_id(experiment_id)
        exp = self.get(experiment_id, include_metrics=False)
        if exp.status.finished:
            raise ExperimentError(
                f"experiment {experiment_id} already ended ({exp.status.value})",
                hint=f"start a follow-up with tracker.resume('{experiment_id}')",
            )
        if exp.status is ExperimentStatus.PENDING:
            now = time.time()
            self.store.update(
                experiment_id,
                status=ExperimentStatus.RUNNING.value,
                started_at=now,
                start_commit=self._branch_head(exp.branch),
            )
        self._current = experiment_id
        self._series = {}
        self._buffer.start()
        return self.get(experiment_id, include_metrics=False)

    # ------------------------------------------------------------------------------------------
    # logging
    def log(
        self,
        name: str,
        value: float,
        step: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record one metric value (an in-memory append; written in batches).

        Without `step`, the step is one past the last step logged for `name` here (0 first).
        """
        state = self._series.get(name)
        if state is None:
            state = self._open_series(name)
        step = state[1] if step is None else int(step)
        state[1] = step + 1
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"metric {name!r}: {value!r} is not a number") from exc
        queue = self._queue
        queue.append(
            (state[0], step, value, _now(), None if metadata is None else to_json(metadata))
        )
        if len(queue) >= self._flush_every:
            self._buffer.kick()

    def _open_series(self, name: str) -> list[int]:
        """[series_id, next_step] of metric `name` of the current experiment (first use)."""
        eid = self._current
        if eid is None:
            raise NoActiveExperimentError("no experiment is running in this tracker")
        if not isinstance(name, str) or not name:
            raise ExperimentError(f"a metric name must be a non-empty string, not {name!r}")
        sid = self.store.series_id(eid, name)
        state = self._series[name] = [sid, self._next_step(eid, name)]
        return state

    def _next_step(self, experiment_id: str, name: str) -> int:
        summary = self.store.summaries([experiment_id])[experiment_id].get(name)
        if summary is None or summary["last_step"] is None:
            return 0
        return int(summary["last_step"]) + 1

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record several metrics at one step."""
        for name, value in metrics.items():
            self.log(name, value, step=step, metadata=metadata)

    def log_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Add or change parameters; returns all parameters.

        A value that names a commit of this repository (e.g. `{"best_checkpoint": hash}`)
        also links that commit to the experiment.
        """
        eid = self._require_current()
        merged = self.store.merge_params(eid, dict(params))
        for key, value in params.items():
            commit = self._as_commit(value)
            if commit is not None:
                self.store.link_commit(eid, commit, f"param:{key}", self._commit_time(commit))
        self._emit("on_params", eid, dict(params))
        return merged

    def add_tags(self, tags: Iterable[str] | str) -> list[str]:
        """Add tags (kept in order, without duplicates); returns all tags."""
        eid = self._require_current()
        new = [tags] if isinstance(tags, str) else [str(t) for t in tags]
        self.store.add_tags(eid, new)
        self._emit("on_tags", eid, new)
        return self.store.tags_of([eid])[eid]

    def set_notes(self, notes: str) -> None:
        """Replace the experiment's notes."""
        eid = self._require_current()
        self.store.update(eid, notes=str(notes))
        self._emit("on_notes", eid, str(notes))

    def link_commit(
        self, commit_hash: str, experiment_id: str | None = None, source: str = "manual"
    ) -> None:
        """Link a commit to an experiment (default: the current one)."""
        eid = self.resolve_id(experiment_id) if experiment_id else self._require_current()
        commit = self._full_commit(commit_hash)
        self.store.link_commit(eid, commit, source, self._commit_time(commit))

    def flush(self) -> int:
        """Write pending metric points now; returns how many were written."""
        return self._buffer.flush()

    # ------------------------------------------------------------------------------------------
    # ending
    def end(
        self,
        status: StatusArg = ExperimentStatus.COMPLETED,
        commit_hash: str | None = None,
        error_message: str | None = None,
    ) -> Experiment:
        """End the current experiment: write pending metrics, link the commits made on its
        branch while it ran (and `commit_hash`), record the status.

        The experiment's `commit_hash` is `commit_hash`, else the newest commit linked to it.
        Returns the ended experiment (without its metric points; `get()` loads them).
        """
        eid = self._require_current()
        status = ExperimentStatus.parse(status)
        if status in (ExperimentStatus.PENDING, ExperimentStatus.RUNNING):
            raise ExperimentError(
                f"cannot end an experiment as {status.value}",
                hint="use completed, failed or cancelled",
            )
        self._buffer.stop()  # writes what is pending; the writer thread restarts with the next
        ended = time.time()
        row = self.store.rows("experiment_id=?", (eid,))[0]
        final = self._full_commit(commit_hash) if commit_hash else None
        final_time = self._commit_time(final) if final else None
        discovered = self._commits_during(row, ended)
        with self.store.transaction():  # the links and the new status land together
            if final is not None:  # explicit link first: a link keeps the source it was made with
                self.store.link_commit(eid, final, "end", final_time)
            for commit, committed_at in discovered:
                self.store.link_commit(eid, commit, "log", committed_at)
            if final is None and discovered:
                final = discovered[-1][0]
            fields: dict[str, Any] = {"status": status.value, "ended_at": ended, "pid": None}
            if final is not None:
                fields["commit_hash"] = final
            if error_message is not None:
                fields["error_message"] = error_message
            self.store.update(eid, **fields)
            self.store.clear_active(eid)
        self._current = None
        self._series = {}
        experiment = self.get(eid, include_metrics=False)
        self._emit("on_end", experiment)
        return experiment

    def fail(self, error_message: str | None = None, commit_hash: str | None = None) -> Experiment:
        """End the current experiment as FAILED, recording why."""
        return self.end(
            ExperimentStatus.FAILED,
            commit_hash=commit_hash,
            error_message=error_message or "failed",
        )

    def cancel(self, reason: str | None = None) -> Experiment:
        """End the current experiment as CANCELLED."""
        return self.end(ExperimentStatus.CANCELLED, error_message=reason)

    def detach(self) -> str | None:
        """Leave the current experiment RUNNING without an owning process, for another process
        to `attach` to and end (what `coral experiment start` does). Returns its id."""
        eid = self._current
        if eid is None:
            return None
        self._buffer.stop()
        self.store.update(eid, pid=None)
        self._current = None
        self._series = {}
        return eid

    def close(self) -> None:
        """Write pending metrics, stop the writer thread and close the mirrors.

        A running experiment stays RUNNING: if this process then exits without `end()`, the
        experiment counts as orphaned (`is_orphaned`) and `resume` marks it FAILED."""
        self._buffer.stop()
        for sink in self._sinks:
            with contextlib.suppress(Exception):
                sink.close()
        self._current = None
        self._series = {}

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def run(self, name: str, **kwargs: Any) -> Iterator[Experiment]:
        """`with tracker.run(name, params=...) as exp:` — COMPLETED on success, FAILED on an
        exception, CANCELLED on Ctrl-C."""
        experiment = self.start(name, **kwargs)
        try:
            yield experiment
        except KeyboardInterrupt:
            if self._current == experiment.experiment_id:
                self.cancel("interrupted")
            raise
        except BaseException as exc:
            if self._current == experiment.experiment_id:
                self.fail(f"{type(exc).__name__}: {exc}")
            raise
        else:
            if self._current == experiment.experiment_id:
                self.end()

    def resume(self, experiment_id: str) -> Experiment:
        """Start a new RUNNING experiment continuing `experiment_id` (same name, description,
        params and tags; `parent_experiment` = the original).

        An original still marked RUNNING whose process is gone is marked FAILED first.
        """
        original = self.get(experiment_id, include_metrics=False)
        if original.status is ExperimentStatus.RUNNING and self._orphaned(original):
            self.store.update(
                original.experiment_id,
                status=ExperimentStatus.FAILED.value,
                ended_at=time.time(),
                error_message=f"process {original.pid} on {original.host} exited without ending it",
                pid=None,
            )
            self.store.clear_active(original.experiment_id)
        return self._begin(
            original.name,
            original.description,
            original.params,
            original.tags,
            None,
            parent=original.experiment_id,
            status=ExperimentStatus.RUNNING,
            own=True,
        )

    # ------------------------------------------------------------------------------------------
    # reading
    def resolve_id(self, experiment_id: str) -> str:
        """The full id of an experiment given its id or a unique prefix."""
        text = str(experiment_id).strip()
        if not text:
            raise ExperimentNotFoundError("empty experiment id")
        found = self.store.resolve(text)
        if not found:
            raise ExperimentNotFoundError(f"no experiment {text!r}")
        if len(found) > 1:
            raise AmbiguousExperimentError(
                f"experiment id {text!r} is ambiguous: {', '.join(found[:5])}"
            )
        return found[0]

    def get(self, experiment_id: str, include_metrics: bool = True) -> Experiment:
        """One experiment (by id or unique prefix), with its metric points unless told not to."""
        eid = self.resolve_id(experiment_id)
        if eid == self._current and self._queue:
            self._buffer.flush()
        return self._load(self.store.rows("experiment_id=?", (eid,)), include_metrics)[0]

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
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        statuses = _statuses(status)
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
        if self._queue:
            self._buffer.flush()
        rows = self.store.rows(" AND ".join(where), args, limit=limit)
        return self._load(rows, include_metrics)

    def metric_history(
        self, experiment_id: str, name: str
    ) -> builtins.list[tuple[int | None, float]]:
        """(step, value) of every point of one metric, in logging order."""
        eid = self.resolve_id(experiment_id)
        if eid == self._current and self._queue:
            self._buffer.flush()
        return [(p[2], p[1]) for p in self.store.metric_points(eid, [name])]

    def commits(self, experiment_id: str | None = None) -> builtins.list[str]:
        """Hashes of the commits linked to an experiment (default: the current one), oldest
        first."""
        eid = self.resolve_id(experiment_id) if experiment_id else self._require_current()
        return [c for c, _, _ in self.store.commits_of([eid])[eid]]

    def commit_links(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        """Each linked commit with how it was linked ("end", "param:<key>", "log", "manual")."""
        eid = self.resolve_id(experiment_id)
        return [
            {"commit_hash": c, "source": s, "recorded_at": _dt(t)}
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
        if mode not in ("min", "max"):
            raise ExperimentError(f"mode must be 'min' or 'max', not {mode!r}")
        if self._queue:
            self._buffer.flush()
        col, step_col, order = (
            ("min_value", "min_step", "ASC") if mode == "min" else ("max_value", "max_step", "DESC")
        )
        sql = (
            f"SELECT s.experiment_id, s.{col}, s.{step_col}, s.last_value, s.count "
            "FROM experiment_series s JOIN experiments e USING (experiment_id) "
            f"WHERE s.name=? AND s.{col} IS NOT NULL"
        )
        args: builtins.list[Any] = [metric]
        statuses = _statuses(status)
        if statuses:
            sql += f" AND e.status IN ({', '.join('?' for _ in statuses)})"
            args.extend(s.value for s in statuses)
        sql += f" ORDER BY s.{col} {order}, e.created_at ASC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        hits = self.store.query(sql, args)
        by_id = {
            e.experiment_id: e
            for e in self._load(
                self.store.rows(
                    f"experiment_id IN ({', '.join('?' for _ in hits)})", [h[0] for h in hits]
                )
                if hits
                else [],
                include_metrics=False,
            )
        }
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
        self, experiment_ids: Sequence[str], metrics: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Side-by-side view of experiments.

        Returns {"experiments": [summary per experiment], "metrics": {metric: {id: {last, min,
        max, count, last_step, min_step, max_step}}}, "params": {param: {id: value}},
        "differing_params": [params whose values differ]}.
        """
        ids = [self.resolve_id(e) for e in experiment_ids]
        if self._current in ids and self._queue:
            self._buffer.flush()
        loaded = {
            e.experiment_id: e
            for e in self._load(
                self.store.rows(f"experiment_id IN ({', '.join('?' for _ in ids)})", ids)
                if ids
                else [],
                include_metrics=False,
            )
        }
        exps = [loaded[i] for i in ids]
        names = builtins.list(metrics) if metrics else sorted({m for e in exps for m in e.summary})
        metric_table: dict[str, dict[str, Any]] = {}
        for m in names:
            metric_table[m] = {
                e.experiment_id: (dict(e.summary[m]) if m in e.summary else None) for e in exps
            }
        param_keys = builtins.list(dict.fromkeys(k for e in exps for k in e.params))
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
                    "tags": builtins.list(e.tags),
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

    def get_summary(self) -> dict[str, Any]:
        """Repository-wide numbers: total_experiments, by_status, unique_names, branches,
        total_metrics_logged (plus names and running)."""
        if self._queue:
            self._buffer.flush()
        by_status = {s.value: 0 for s in ExperimentStatus}
        for status, count in self.store.query(
            "SELECT status, COUNT(*) FROM experiments GROUP BY status"
        ):
            by_status[status] = int(count)
        names = [
            r[0] for r in self.store.query("SELECT DISTINCT name FROM experiments ORDER BY name")
        ]
        branches = [
            r[0]
            for r in self.store.query(
                "SELECT DISTINCT branch FROM experiments WHERE branch IS NOT NULL ORDER BY branch"
            )
        ]
        return {
            "total_experiments": sum(by_status.values()),
            "by_status": by_status,
            "unique_names": len(names),
            "names": names,
            "branches": branches,
            "total_metrics_logged": self.store.total_points(),
            "running": by_status[ExperimentStatus.RUNNING.value],
            "active_experiment": self.store.get_active(),
        }

    def is_orphaned(self, experiment: Experiment) -> bool:
        """True for a RUNNING experiment whose process (on this host) no longer exists."""
        return experiment.status is ExperimentStatus.RUNNING and self._orphaned(experiment)

    # ------------------------------------------------------------------------------------------
    # mirrors
    def add_sink(self, sink: ExperimentSink) -> ExperimentSink:
        """Mirror live into `sink` (it sees the running experiment at once)."""
        self._sinks.append(sink)
        if self._current is not None:
            self._announce(self.get(self._current, include_metrics=False), [sink])
        return sink

    def remove_sink(self, sink: ExperimentSink) -> None:
        self._sinks.remove(sink)

    def _emit(self, event: str, *args: Any) -> None:
        for sink in builtins.list(self._sinks):
            with _sink_guard(sink):
                getattr(sink, event)(*args)

    def _dispatch_batch(self, batch: Sequence[PendingPoint]) -> None:
        if not self._sinks:
            return
        groups: dict[str, builtins.list[ExperimentMetric]] = {}
        name_of = self.store.series_name
        for sid, step, value, ts, meta in batch:
            eid, name = name_of(sid)
            groups.setdefault(eid, []).append(
                ExperimentMetric(
                    name,
                    math.nan if value is None else value,
                    step,
                    datetime.fromtimestamp(ts),
                    json.loads(meta) if meta else {},
                )
            )
        for eid, points in groups.items():
            self._emit("on_metrics", eid, points)

    # ------------------------------------------------------------------------------------------
    # internals
    def _new_id(self) -> str:
        while True:
            candidate = uuid.uuid4().hex[:12]
            if not self.store.id_exists(candidate):
                return candidate

    def _load(
        self, rows: Sequence[dict[str, Any]], include_metrics: bool
    ) -> builtins.list[Experiment]:
        ids = [r["experiment_id"] for r in rows]
        tags = self.store.tags_of(ids)
        commits = self.store.commits_of(ids)
        summaries = self.store.summaries(ids)
        out = []
        for r in rows:
            eid = r["experiment_id"]
            metrics: builtins.list[ExperimentMetric] = []
            if include_metrics:
                metrics = [
                    ExperimentMetric(n, v, s, datetime.fromtimestamp(t), json.loads(m) if m else {})
                    for n, v, s, t, m in self.store.metric_points(eid)
                ]
            out.append(
                Experiment(
                    experiment_id=eid,
                    name=r["name"],
                    description=r["description"],
                    status=ExperimentStatus.parse(r["status"]),
                    created_at=datetime.fromtimestamp(r["created_at"]),
                    started_at=_dt(r["started_at"]),
                    ended_at=_dt(r["ended_at"]),
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

    def _current_branch(self) -> str | None:
        try:
            branch = getattr(self.repo, "current_branch", None)
            return branch() if callable(branch) else branch
        except Exception:
            return None

    def _history(self, branch: str | None, limit: int = _LOG_SCAN_LIMIT) -> builtins.list[Any]:
        try:
            if branch:
                return builtins.list(self.repo.log(max_commits=limit, branch=branch))
            return builtins.list(self.repo.log(max_commits=limit))
        except Exception:
            return []

    def _branch_head(self, branch: str | None) -> str | None:
        history = self._history(branch, limit=1)
        return _commit_id(history[0]) if history else None

    def _commits_during(
        self, row: dict[str, Any], ended: float
    ) -> builtins.list[tuple[str, float | None]]:
        """(hash, time) of the commits on the experiment's branch made between its start and
        `ended`, oldest first."""
        started = row["started_at"]
        if started is None:
            return []
        found = []
        for commit in self._history(row["branch"]):
            cid = _commit_id(commit)
            if cid is None:
                continue
            if cid == row["start_commit"]:
                break
            ts = _commit_timestamp(commit)
            if ts is None or started - _CLOCK_SLACK_S <= ts <= ended + _CLOCK_SLACK_S:
                found.append((cid, ts))
        found.reverse()
        return found

    def _commit_time(self, commit_hash: str) -> float | None:
        for name in ("read_commit", "get_commit"):
            reader = getattr(self.repo, name, None)
            if callable(reader):
                try:
                    return _commit_timestamp(reader(commit_hash))
                except Exception:
                    continue
        return None

    def _as_commit(self, value: Any) -> str | None:
        """The full hash if `value` is (a prefix of) a commit of this repository."""
        if not isinstance(value, str) or not _HEX.match(value):
            return None
        try:
            return self._full_commit(value, strict=True)
        except ExperimentError:
            return None

    def _full_commit(self, commit_hash: str, strict: bool = False) -> str:
        """The full hash of a commit given any ref the repository resolves (hash, prefix, tag)."""
        text = str(commit_hash).strip()
        resolve = getattr(self.repo, "resolve_ref", None)
        if callable(resolve):
            try:
                return str(resolve(text))
            except Exception:
                pass
        else:
            for commit in self._history(None):
                cid = _commit_id(commit)
                if cid and cid.startswith(text):
                    return cid
        if strict:
            raise ExperimentError(f"{text} is not a commit of this repository")
        return text

    def _orphaned(self, experiment: Experiment) -> bool:
        if experiment.pid is None or experiment.host != _HOST:
            return False
        if experiment.pid == os.getpid():
            return not any(t._current == experiment.experiment_id for t in builtins.list(_TRACKERS))
        return not _pid_alive(experiment.pid)


def _commit_id(commit: Any) -> str | None:
    for attr in ("commit_hash", "hash", "id"):
        value = getattr(commit, attr, None)
        if isinstance(value, str) and value:
            return value
    return commit if isinstance(commit, str) else None


def _commit_timestamp(commit: Any) -> float | None:
    ts = getattr(commit, "timestamp", None)
    if isinstance(ts, datetime):
        return ts.timestamp()
    return float(ts) if isinstance(ts, (int, float)) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@contextlib.contextmanager
def _sink_guard(sink: ExperimentSink) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # a mirror must never break training
        warnings.warn(
            f"coral: mirror {type(sink).__name__} failed: {exc!r}", RuntimeWarning, stacklevel=3
        )


def experiment_for_commit(repo: Any, commit_hash: str) -> builtins.list[Experiment]:
    """The experiments that produced a commit, newest first.

    `commit_hash` is anything the repository resolves (full or short hash, branch, tag, HEAD~n)
    or a prefix of a linked commit. Metric points are not loaded (each experiment's `summary`
    has per-metric count, min/max and last). Returns [] where no experiment was ever tracked.
    """
    repo = _open_repo(repo)
    if not ExperimentStore.exists_in(db_path_of(repo)):
        return []
    text = str(commit_hash).strip()
    with contextlib.suppress(Exception):  # else: a prefix of a linked commit
        text = str(repo.resolve_ref(text))
    tracker = ExperimentTracker(repo)
    try:
        ids = tracker.store.experiments_for_commit(text)
        if not ids:
            return []
        rows = tracker.store.rows(f"experiment_id IN ({', '.join('?' for _ in ids)})", ids)
        return tracker._load(rows, include_metrics=False)
    finally:
        tracker.store.close()


def experiments_for_commits(
    repo: Any, commit_hashes: Iterable[str]
) -> dict[str, builtins.list[Experiment]]:
    """Full commit hash -> the experiments that produced it, for many commits at once (what
    `coral log` shows); commits no experiment is linked to are left out."""
    repo = _open_repo(repo)
    hashes = builtins.list(commit_hashes)
    if not hashes or not ExperimentStore.exists_in(db_path_of(repo)):
        return {}
    tracker = ExperimentTracker(repo)
    try:
        links = tracker.store.experiments_for_commits(hashes)
        ids = builtins.list(dict.fromkeys(e for eids in links.values() for e in eids))
        if not ids:
            return {}
        loaded = {
            e.experiment_id: e
            for e in tracker._load(
                tracker.store.rows(f"experiment_id IN ({', '.join('?' for _ in ids)})", ids),
                include_metrics=False,
            )
        }
        order = {eid: i for i, eid in enumerate(loaded)}  # newest first
        return {
            c: sorted((loaded[e] for e in eids), key=lambda x: order[x.experiment_id])
            for c, eids in links.items()
        }
    finally:
        tracker.store.close()


def active_experiment(repo: Any) -> Experiment | None:
    """The repository's active experiment (the one `coral experiment log` writes to), or None."""
    tracker = ExperimentTracker(repo)
    try:
        eid = tracker.store.get_active()
        return None if eid is None else tracker.get(eid, include_metrics=False)
    finally:
        tracker.store.close()


# ----------------------------------------------------------------------------------------------
# uncaught exceptions end this process's running experiments as FAILED (CANCELLED on Ctrl-C)
_hook_lock = threading.Lock()
_hook_installed = False


def _install_excepthook() -> None:
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = sys.excepthook

        def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
            for tracker in builtins.list(_TRACKERS):
                if tracker._current is None or tracker._owned_pid != os.getpid():
                    continue
                try:
                    if issubclass(exc_type, KeyboardInterrupt):
                        tracker.cancel("interrupted (KeyboardInterrupt)")
                    else:
                        tracker.fail(f"{exc_type.__name__}: {exc}")
                except Exception:
                    pass
            previous(exc_type, exc, tb)

        sys.excepthook = hook
        _hook_installed = True

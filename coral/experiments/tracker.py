"""`ExperimentTracker`: experiments of a repository, stored in its database and linked to commits.

    tracker = ExperimentTracker(repo)
    tracker.start("bert-sentiment", params={"lr": 2e-5}, tags=["bert"])
    tracker.log("loss", 0.31, step=100)           # a cheap in-memory append
    tracker.end(commit_hash=repo.commit("trained"))

A process's active experiment is the tracker's current one. The repository also remembers one
active experiment in its database (set by `start`/`resume`, cleared by `end`), which another
process — e.g. `coral experiment log` — reaches with `attach()`.

This module is the tracker's life cycle (start, log, end, resume, mirrors). Reading back is
`queries.py`, the repository side (branches, commits) `repo_link.py`, the buffered writer
`buffer.py`, the tables `store.py`, and the lookups by commit `lookup.py`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from coral.experiments import liveness
from coral.experiments.buffer import MetricBuffer
from coral.experiments.errors import (
    ExperimentError,
    ExperimentRunningError,
    NoActiveExperimentError,
)
from coral.experiments.lookup import (
    active_experiment,
    experiment_for_commit,
    experiments_for_commits,
)
from coral.experiments.queries import ExperimentQueries, StatusArg
from coral.experiments.repo_link import CommitLinks, RepoArg, db_path_of, open_repo
from coral.experiments.sinks import ExperimentSink, announce, group_points, sink_guard
from coral.experiments.store import ExperimentStore, PendingPoint, to_json
from coral.experiments.types import Experiment, ExperimentStatus

__all__ = [
    "ExperimentTracker",
    "StatusArg",
    "active_experiment",
    "db_path_of",
    "experiment_for_commit",
    "experiments_for_commits",
]

_now = time.time


class ExperimentTracker(ExperimentQueries):
    """Start, log into, end, query and compare the experiments of one repository.

    Metric points are buffered in memory and written in batches (every `flush_every` points or
    `flush_interval` seconds, at `end()`, at `flush()` and at interpreter exit), so `log` costs
    about a microsecond. Several trackers and processes may write to one repository at once.
    """

    def __init__(
        self,
        repo: RepoArg,
        *,
        flush_every: int = 1000,
        flush_interval: float = 1.0,
        max_pending: int = 200_000,
        sinks: Iterable[ExperimentSink] = (),
    ) -> None:
        self.repo = open_repo(repo)
        self.links = CommitLinks(self.repo)
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
        liveness.register(self)

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
        branch = branch if branch is not None else self.links.current_branch()
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
            "start_commit": self.links.branch_head(branch)
            if status is ExperimentStatus.RUNNING
            else None,
            "parent_experiment": parent,
            "notes": None,
            "error_message": None,
            "pid": (pid if pid is not None else os.getpid()) if own else None,
            "host": liveness.HOST,
            "updated_at": now,
        }
        tag_list = list(dict.fromkeys(str(t) for t in (tags or [])))
        self.store.insert_experiment(row, tag_list)
        if own:
            self._activate(experiment_id)
        experiment = self.get(experiment_id, include_metrics=False)
        if own:
            announce(experiment, self._sinks)
        return experiment

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
                start_commit=self.links.branch_head(exp.branch),
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
            commit = self.links.as_commit(value)
            if commit is not None:
                self.store.link_commit(eid, commit, f"param:{key}", self.links.commit_time(commit))
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
        commit = self.links.full_commit(commit_hash)
        self.store.link_commit(eid, commit, source, self.links.commit_time(commit))

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
        final = self.links.full_commit(commit_hash) if commit_hash else None
        final_time = self.links.commit_time(final) if final else None
        discovered = self.links.commits_during(
            row["branch"], row["started_at"], row["start_commit"], ended
        )
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
        if original.status is ExperimentStatus.RUNNING and liveness.is_orphaned(original):
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
    # reading: `ExperimentQueries` (queries.py), after writing what this tracker buffers
    def _flush_for(self, ids: Sequence[str] | None = None) -> None:
        """Write pending points before a read that covers this tracker's experiment
        (`ids`; every experiment when None)."""
        if self._queue and (ids is None or self._current in ids):
            self._buffer.flush()

    def commits(self, experiment_id: str | None = None) -> builtins.list[str]:
        """Hashes of the commits linked to an experiment (default: the current one), oldest
        first."""
        eid = self.resolve_id(experiment_id) if experiment_id else self._require_current()
        return [c for c, _, _ in self.store.commits_of([eid])[eid]]

    def is_orphaned(self, experiment: Experiment) -> bool:
        """True for a RUNNING experiment whose process (on this host) no longer exists."""
        return experiment.status is ExperimentStatus.RUNNING and liveness.is_orphaned(experiment)

    # ------------------------------------------------------------------------------------------
    # mirrors
    def add_sink(self, sink: ExperimentSink) -> ExperimentSink:
        """Mirror live into `sink` (it sees the running experiment at once)."""
        self._sinks.append(sink)
        if self._current is not None:
            announce(self.get(self._current, include_metrics=False), [sink])
        return sink

    def remove_sink(self, sink: ExperimentSink) -> None:
        self._sinks.remove(sink)

    def _emit(self, event: str, *args: Any) -> None:
        for sink in builtins.list(self._sinks):
            with sink_guard(sink):
                getattr(sink, event)(*args)

    def _dispatch_batch(self, batch: Sequence[PendingPoint]) -> None:
        if not self._sinks:
            return
        for eid, points in group_points(batch, self.store.series_name).items():
            self._emit("on_metrics", eid, points)

    # ------------------------------------------------------------------------------------------
    # internals
    def _new_id(self) -> str:
        while True:
            candidate = uuid.uuid4().hex[:12]
            if not self.store.id_exists(candidate):
                return candidate

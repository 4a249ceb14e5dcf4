"""`ExperimentSink`: where an experiment is mirrored to (MLflow, TensorBoard, W&B bridges).

A sink receives an experiment's life as events. Attached to a tracker (`tracker.add_sink`) it
mirrors live: metric batches arrive from the tracker's writer thread after they are stored, so
a slow mirror never slows the training loop. `replay` feeds a stored experiment through a sink
after the fact; every bridge's `mirror()` is `replay` into its sink.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from coral.experiments.store import PendingPoint
from coral.experiments.types import Experiment, ExperimentMetric

REPLAY_BATCH = 5000


class ExperimentSource(Protocol):
    """Where `replay` reads a stored experiment from (an `ExperimentTracker`)."""

    def get(self, experiment_id: str, include_metrics: bool = True) -> Experiment: ...


class ExperimentSink:
    """Base class: every event is a no-op; bridges override what they mirror."""

    def on_start(self, experiment: Experiment) -> None:
        """The experiment started (or a live sink was attached to a running one)."""

    def on_params(self, experiment_id: str, params: dict[str, Any]) -> None:
        """Parameters were set or changed (`params` holds the changed keys)."""

    def on_tags(self, experiment_id: str, tags: list[str]) -> None:
        """Tags were added."""

    def on_notes(self, experiment_id: str, notes: str) -> None:
        """The notes were replaced."""

    def on_metrics(self, experiment_id: str, metrics: Sequence[ExperimentMetric]) -> None:
        """A batch of metric points (in logging order) was stored."""

    def on_end(self, experiment: Experiment) -> None:
        """The experiment ended (status, commit and commits are final)."""

    def close(self) -> None:
        """Release files, runs and connections."""


@contextlib.contextmanager
def sink_guard(sink: ExperimentSink) -> Iterator[None]:
    """Turn a live mirror's failure into a warning: a mirror must never break training."""
    try:
        yield
    except Exception as exc:
        warnings.warn(
            f"coral: mirror {type(sink).__name__} failed: {exc!r}", RuntimeWarning, stacklevel=3
        )


def announce(experiment: Experiment, sinks: Iterable[ExperimentSink]) -> None:
    """What a live sink sees first: start, then the initial params and tags (as `replay`)."""
    for sink in list(sinks):
        with sink_guard(sink):
            sink.on_start(experiment)
            if experiment.params:
                sink.on_params(experiment.experiment_id, dict(experiment.params))
            if experiment.tags:
                sink.on_tags(experiment.experiment_id, list(experiment.tags))


def group_points(
    batch: Sequence[PendingPoint], name_of: Callable[[int], tuple[str, str]]
) -> dict[str, list[ExperimentMetric]]:
    """A stored batch of points as ExperimentMetrics per experiment id (in logging order);
    `name_of(series_id)` is (experiment id, metric name)."""
    groups: dict[str, list[ExperimentMetric]] = {}
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
    return groups


def replay(
    tracker: ExperimentSource, experiment_id: str, sink: ExperimentSink, close: bool = True
) -> Experiment:
    """Feed a stored experiment through `sink`: start, params, tags, notes, metrics, end."""
    experiment = tracker.get(experiment_id)
    try:
        sink.on_start(experiment)
        if experiment.params:
            sink.on_params(experiment.experiment_id, dict(experiment.params))
        if experiment.tags:
            sink.on_tags(experiment.experiment_id, list(experiment.tags))
        if experiment.notes:
            sink.on_notes(experiment.experiment_id, experiment.notes)
        points = experiment.metrics
        for i in range(0, len(points), REPLAY_BATCH):
            sink.on_metrics(experiment.experiment_id, points[i : i + REPLAY_BATCH])
        if experiment.status.finished:
            sink.on_end(experiment)
    finally:
        if close:
            sink.close()
    return experiment

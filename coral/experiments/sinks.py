"""`ExperimentSink`: where an experiment is mirrored to (MLflow, TensorBoard, W&B bridges).

A sink receives an experiment's life as events. Attached to a tracker (`tracker.add_sink`) it
mirrors live: metric batches arrive from the tracker's writer thread after they are stored, so
a slow mirror never slows the training loop. `replay` feeds a stored experiment through a sink
after the fact; every bridge's `mirror()` is `replay` into its sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coral.experiments.types import Experiment, ExperimentMetric

if TYPE_CHECKING:
    from coral.experiments.tracker import ExperimentTracker

REPLAY_BATCH = 5000


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


def replay(
    tracker: ExperimentTracker, experiment_id: str, sink: ExperimentSink, close: bool = True
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

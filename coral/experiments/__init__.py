"""Experiment tracking (chapter 8.1): experiments, metrics and params stored in the repository's
database and linked to the commits they produced."""

from coral.experiments.errors import (
    AmbiguousExperimentError,
    ExperimentError,
    ExperimentNotFoundError,
    ExperimentRunningError,
    NoActiveExperimentError,
)
from coral.experiments.sinks import ExperimentSink, replay
from coral.experiments.tracker import (
    ExperimentTracker,
    active_experiment,
    experiment_for_commit,
    experiments_for_commits,
)
from coral.experiments.types import Experiment, ExperimentMetric, ExperimentStatus

__all__ = [
    "AmbiguousExperimentError",
    "Experiment",
    "ExperimentError",
    "ExperimentMetric",
    "ExperimentNotFoundError",
    "ExperimentRunningError",
    "ExperimentSink",
    "ExperimentStatus",
    "ExperimentTracker",
    "NoActiveExperimentError",
    "active_experiment",
    "experiment_for_commit",
    "experiments_for_commits",
    "replay",
]

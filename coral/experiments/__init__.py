"""Experiment tracking (chapter 8.1): experiments, metrics and params stored in the repository's
database and linked to the commits they produced.

The names below are imported on first use (`coral log` reads links through `lookup` alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_exports

if TYPE_CHECKING:
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

_MODULES = {
    "AmbiguousExperimentError": "errors",
    "Experiment": "types",
    "ExperimentError": "errors",
    "ExperimentMetric": "types",
    "ExperimentNotFoundError": "errors",
    "ExperimentRunningError": "errors",
    "ExperimentSink": "sinks",
    "ExperimentStatus": "types",
    "ExperimentTracker": "tracker",
    "NoActiveExperimentError": "errors",
    "active_experiment": "tracker",
    "experiment_for_commit": "tracker",
    "experiments_for_commits": "tracker",
    "replay": "sinks",
}
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
__getattr__ = lazy_exports(__name__, _MODULES)

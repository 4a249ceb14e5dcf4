"""Errors of the experiment tracker (all `CoralError`s with a hint)."""

from __future__ import annotations

from coral.errors import CoralError


class ExperimentError(CoralError):
    """Something about experiments the user can fix."""


class ExperimentNotFoundError(ExperimentError):
    default_hint = "list experiments with `coral experiment list`"


class AmbiguousExperimentError(ExperimentError):
    default_hint = "use more characters of the experiment id"


class NoActiveExperimentError(ExperimentError):
    default_hint = (
        "start one with tracker.start(...) / `coral experiment start NAME`, "
        "or attach to one with tracker.attach(ID)"
    )


class ExperimentRunningError(ExperimentError):
    default_hint = (
        "end it first with tracker.end() / tracker.fail(), or use another ExperimentTracker"
    )

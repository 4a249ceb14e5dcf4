"""The experiment-tracking value types of chapter 8.1: status, metric point, experiment."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class ExperimentStatus(Enum):
    """Where an experiment is in its life."""

    PENDING = "pending"  # created but not started
    RUNNING = "running"  # currently executing
    COMPLETED = "completed"  # successfully finished
    FAILED = "failed"  # terminated with an error
    CANCELLED = "cancelled"  # manually cancelled

    @classmethod
    def parse(cls, value: ExperimentStatus | str) -> ExperimentStatus:
        """An `ExperimentStatus` from itself, its value ("completed") or its name ("COMPLETED")."""
        if isinstance(value, ExperimentStatus):
            return value
        text = str(value).strip().lower()
        for status in cls:
            if status.value == text:
                return status
        from coral.experiments.errors import ExperimentError

        raise ExperimentError(
            f"unknown experiment status {value!r}",
            hint="use one of: " + ", ".join(s.value for s in cls),
        )

    @property
    def finished(self) -> bool:
        """True for COMPLETED, FAILED and CANCELLED."""
        return self in (
            ExperimentStatus.COMPLETED,
            ExperimentStatus.FAILED,
            ExperimentStatus.CANCELLED,
        )


@dataclass
class ExperimentMetric:
    """One logged metric value at one step."""

    name: str
    value: float
    step: int | None = None
    timestamp: datetime = field(default_factory=datetime.now)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "step": self.step,
            "timestamp": self.timestamp.isoformat(),
            "metadata": dict(self.metadata),
        }


@dataclass
class Experiment:
    """An experiment: what ran (params, branch), what it measured (metrics), what it produced."""

    experiment_id: str
    name: str
    description: str | None = None
    status: ExperimentStatus = ExperimentStatus.PENDING
    created_at: datetime = field(default_factory=datetime.now)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    metrics: list[ExperimentMetric] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    commit_hash: str | None = None
    branch: str | None = None
    parent_experiment: str | None = None
    notes: str | None = None
    # Beyond chapter 8.1's fields:
    error_message: str | None = None
    commits: list[str] = field(default_factory=list)  # every commit linked to it, oldest first
    pid: int | None = None  # process that ran it (None once it ended)
    host: str | None = None
    # per metric: count, min/min_step, max/max_step, last/last_step (kept by the store)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to now while it runs)."""
        if self.started_at is None:
            return None
        end = self.ended_at or datetime.now()
        return (end - self.started_at).total_seconds()

    def metric_names(self) -> list[str]:
        """Names of the logged metrics, in order of first appearance."""
        return list(dict.fromkeys(m.name for m in self.metrics))

    def get_metric(self, name: str) -> list[ExperimentMetric]:
        """Every point logged for `name`, in the order logged."""
        return [m for m in self.metrics if m.name == name]

    def latest(self, name: str) -> float | None:
        """The last value logged for `name` (None if never logged)."""
        points = self.get_metric(name)
        return points[-1].value if points else None

    def best(self, name: str, mode: str = "min") -> float | None:
        """The smallest (mode="min") or largest (mode="max") non-NaN value of `name`."""
        values = [m.value for m in self.get_metric(name) if not math.isnan(m.value)]
        if not values:
            return None
        return min(values) if mode == "min" else max(values)

    def to_dict(self, include_metrics: bool = True) -> dict[str, Any]:
        """JSON-friendly form."""
        out: dict[str, Any] = {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "description": self.description,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "params": dict(self.params),
            "tags": list(self.tags),
            "commit_hash": self.commit_hash,
            "branch": self.branch,
            "parent_experiment": self.parent_experiment,
            "notes": self.notes,
            "error_message": self.error_message,
            "commits": list(self.commits),
            "summary": {k: dict(v) for k, v in self.summary.items()},
        }
        if include_metrics:
            out["metrics"] = [m.to_dict() for m in self.metrics]
        return out

"""Mirror Coral experiments into MLflow tracking: one MLflow run per experiment.

    from coral.experiments.bridges import mlflow as mlflow_bridge
    run_id = mlflow_bridge.mirror(tracker, exp_id, tracking_uri="http://127.0.0.1:5000")
    mlflow_bridge.attach(tracker, tracking_uri=...)      # live: every later event is mirrored

Params, metrics (with steps and timestamps), tags, notes, status and times are copied; the run
carries tags `coral.experiment_id`, `coral.branch`, `coral.commit_hash` and `coral.commits`.
MLflow params are immutable, so a param changed after it was first sent (e.g.
`best_checkpoint`) is kept current in the tag `coral.param.<name>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from coral.experiments.bridges import safe_key
from coral.experiments.sinks import ExperimentSink, replay
from coral.experiments.types import Experiment, ExperimentMetric, ExperimentStatus

_STATUS = {
    ExperimentStatus.COMPLETED: "FINISHED",
    ExperimentStatus.FAILED: "FAILED",
    ExperimentStatus.CANCELLED: "KILLED",
    ExperimentStatus.RUNNING: "RUNNING",
    ExperimentStatus.PENDING: "SCHEDULED",
}
_MAX_METRICS = 1000
_MAX_PARAMS_TAGS = 100
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
ID_TAG = "coral.experiment_id"


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class MLflowSink(ExperimentSink):
    """Writes experiments as MLflow runs through `MlflowClient`.

    `experiment_name` is the MLflow experiment (default: the Coral experiment's name). An
    existing mirror run of the same Coral experiment is replaced when `replace` is true.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        replace: bool = True,
        client: Any = None,
    ) -> None:
        if client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=tracking_uri)
        self.client = client
        self.experiment_name = experiment_name
        self.replace = replace
        self.runs: dict[str, str] = {}  # coral experiment id -> MLflow run id
        self._sent_params: dict[str, dict[str, str]] = {}

    # -- events -----------------------------------------------------------------------------------
    def on_start(self, experiment: Experiment) -> None:
        name = self.experiment_name or experiment.name
        found = self.client.get_experiment_by_name(name)
        mlflow_experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        for old in self.client.search_runs(
            [mlflow_experiment_id], filter_string=f"tags.`{ID_TAG}` = '{experiment.experiment_id}'"
        ):
            if self.replace:
                self.client.delete_run(old.info.run_id)
        tags = {
            ID_TAG: experiment.experiment_id,
            "coral.branch": experiment.branch or "",
            "mlflow.runName": experiment.name,
        }
        if experiment.description:
            tags["mlflow.note.content"] = experiment.description[:_MAX_TAG_LEN]
        if experiment.parent_experiment:
            tags["coral.parent_experiment"] = experiment.parent_experiment
        run = self.client.create_run(
            mlflow_experiment_id,
            start_time=_ms(experiment.started_at or experiment.created_at),
            tags=tags,
            run_name=experiment.name,
        )
        self.runs[experiment.experiment_id] = run.info.run_id
        self._sent_params[experiment.experiment_id] = {}

    def on_params(self, experiment_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        run_id = self.runs.get(experiment_id)
        if run_id is None:
            return
        sent = self._sent_params.setdefault(experiment_id, {})
        new, changed = [], []
        for key, value in params.items():
            k, v = safe_key(key), str(value)[:_MAX_PARAM_LEN]
            if k not in sent:
                sent[k] = v
                new.append(Param(k, v))
            elif sent[k] != v:
                changed.append(RunTag(f"coral.param.{k}", v[:_MAX_TAG_LEN]))
        for i in range(0, len(new), _MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, params=new[i : i + _MAX_PARAMS_TAGS])
        for i in range(0, len(changed), _MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, tags=changed[i : i + _MAX_PARAMS_TAGS])

    def on_tags(self, experiment_id: str, tags: list[str]) -> None:
        from mlflow.entities import RunTag

        run_id = self.runs.get(experiment_id)
        if run_id is None or not tags:
            return
        batch = [RunTag(safe_key(t)[:250], "true") for t in tags]
        for i in range(0, len(batch), _MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, tags=batch[i : i + _MAX_PARAMS_TAGS])

    def on_notes(self, experiment_id: str, notes: str) -> None:
        run_id = self.runs.get(experiment_id)
        if run_id is not None:
            self.client.set_tag(run_id, "coral.notes", notes[:_MAX_TAG_LEN])

    def on_metrics(self, experiment_id: str, metrics: Sequence[ExperimentMetric]) -> None:
        from mlflow.entities import Metric

        run_id = self.runs.get(experiment_id)
        if run_id is None:
            return
        batch = [
            Metric(
                safe_key(m.name),
                m.value,
                int(m.timestamp.timestamp() * 1000),
                int(m.step) if m.step is not None else 0,
            )
            for m in metrics
        ]
        for i in range(0, len(batch), _MAX_METRICS):
            self.client.log_batch(run_id, metrics=batch[i : i + _MAX_METRICS])

    def on_end(self, experiment: Experiment) -> None:
        from mlflow.entities import RunTag

        run_id = self.runs.get(experiment.experiment_id)
        if run_id is None:
            return
        tags = [
            RunTag("coral.status", experiment.status.value),
            RunTag("coral.commit_hash", experiment.commit_hash or ""),
            RunTag("coral.commits", ",".join(experiment.commits)[:_MAX_TAG_LEN]),
        ]
        if experiment.error_message:
            tags.append(RunTag("coral.error", experiment.error_message[:_MAX_TAG_LEN]))
        if experiment.notes:
            tags.append(RunTag("coral.notes", experiment.notes[:_MAX_TAG_LEN]))
        self.client.log_batch(run_id, tags=tags)
        # params may have changed after the run started (e.g. best_checkpoint)
        self.on_params(experiment.experiment_id, experiment.params)
        self.client.set_terminated(
            run_id, status=_STATUS[experiment.status], end_time=_ms(experiment.ended_at)
        )


def attach(
    tracker: Any, tracking_uri: str | None = None, experiment_name: str | None = None, **kwargs: Any
) -> MLflowSink:
    """Mirror `tracker`'s experiments into MLflow live, from now on."""
    sink = MLflowSink(tracking_uri=tracking_uri, experiment_name=experiment_name, **kwargs)
    tracker.add_sink(sink)
    return sink


def mirror(
    tracker: Any,
    experiment_id: str,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    replace: bool = True,
) -> str:
    """Copy a stored experiment into MLflow; returns the MLflow run id."""
    sink = MLflowSink(tracking_uri=tracking_uri, experiment_name=experiment_name, replace=replace)
    experiment = replay(tracker, experiment_id, sink)
    return sink.runs[experiment.experiment_id]


__all__ = ["MLflowSink", "attach", "mirror"]

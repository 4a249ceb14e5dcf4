"""Mirrors into MLflow (a real local server), TensorBoard event files and W&B offline runs.

Each is read back with the other tool's own reader: MlflowClient, TensorBoard's
EventAccumulator, and the W&B transaction log parsed from disk."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from coral.experiments import Experiment, ExperimentStatus, ExperimentTracker
from coral.version_control.repository import Repository
from tests.experiments.conftest import weights


def _train(
    repo: Repository, tracker: ExperimentTracker, name: str = "mirror-me", fail: bool = False
) -> Experiment:
    """A small run: per-step train_loss, per-epoch val metrics, a checkpoint commit, notes."""
    exp = tracker.start(
        name,
        description="bridge test",
        params={"lr": 0.01, "layers": [2, 3]},
        tags=["bridge", "test"],
    )
    for epoch in range(3):
        for step in range(20):
            tracker.log("train_loss", 1.0 / (epoch * 20 + step + 1), step=epoch * 20 + step)
        tracker.log_metrics(
            {"val_loss": 0.5 - 0.1 * epoch, "val_acc": 0.7 + 0.1 * epoch}, step=epoch
        )
        repo.add_all_weights(weights(epoch))
        tracker.log_params({"best_checkpoint": repo.commit(f"epoch {epoch}")})
    tracker.log("weird name!", float("nan"), step=0)
    tracker.add_tags(["done"])
    tracker.set_notes("converged")
    if fail:
        tracker.fail(error_message="boom")
    else:
        tracker.end()
    return tracker.get(exp.experiment_id)


# ---- TensorBoard -------------------------------------------------------------------------------
def _accumulator(run_dir: Path) -> Any:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _assert_tensorboard_matches(run_dir: Path, exp: Experiment) -> None:
    acc = _accumulator(run_dir)
    assert set(acc.Tags()["scalars"]) == {"train_loss", "val_loss", "val_acc", "weird name_"}
    for name in ("train_loss", "val_loss", "val_acc"):
        points = exp.get_metric(name)
        events = acc.Scalars(name)
        assert [e.step for e in events] == [m.step for m in points]
        assert [e.value for e in events] == pytest.approx([m.value for m in points], rel=1e-6)
        assert [e.wall_time for e in events] == pytest.approx(
            [m.timestamp.timestamp() for m in points]
        )
    assert math.isnan(acc.Scalars("weird name_")[0].value)
    tensors = set(acc.Tags()["tensors"])
    assert {
        "coral/experiment",
        "coral/params",
        "coral/tags",
        "coral/notes",
        "coral/result",
        "_hparams_/session_start_info",
    } <= tensors
    result = acc.Tensors("coral/result")[-1].tensor_proto.string_val[0].decode()
    assert exp.status.value in result and (exp.commit_hash or "")[:12] in result


def test_tensorboard_mirror(repo: Repository, tracker: ExperimentTracker, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from coral.experiments.bridges import tensorboard as tb

    exp = _train(repo, tracker)
    run_dir = tb.mirror(tracker, exp.experiment_id, tmp_path / "tb")
    assert run_dir == tmp_path / "tb" / f"mirror-me-{exp.experiment_id}"
    _assert_tensorboard_matches(run_dir, exp)
    tb.mirror(tracker, exp.experiment_id[:6], tmp_path / "tb")  # again: replaced, not doubled
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    _assert_tensorboard_matches(run_dir, exp)


def test_tensorboard_live(repo: Repository, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from coral.experiments.bridges import tensorboard as tb

    tracker = ExperimentTracker(repo, flush_every=10)
    sink = tb.attach(tracker, tmp_path / "live")
    exp = _train(repo, tracker)
    _assert_tensorboard_matches(sink.run_dirs[exp.experiment_id], exp)
    tracker.close()


# ---- Weights & Biases (offline) ----------------------------------------------------------------
@pytest.fixture
def wandb_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing may be reached anyway
    for var, sub in (
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
    ):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / sub))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path / "wandb-out"


def _assert_wandb_matches(run_dir: Path, exp: Experiment) -> None:
    from tests.experiments.wandb_log import read_run

    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith(exp.experiment_id)
    logs = list(run_dir.glob("run-*.wandb"))
    assert [p.name for p in logs] == [f"run-{exp.experiment_id}.wandb"]
    run = read_run(logs[0])
    assert run["run"]["run_id"] == exp.experiment_id
    assert run["run"]["display_name"] == exp.name and run["run"]["project"] == "coral"
    assert set(run["run"]["tags"]) <= set(exp.tags)
    for key, value in exp.params.items():
        assert run["config"][key] == value
    for name in ("train_loss", "val_loss", "val_acc"):
        rows = [r for r in run["history"] if name in r]
        assert [r[f"coral_step/{name}"] for r in rows] == [m.step for m in exp.get_metric(name)]
        assert [r[name] for r in rows] == pytest.approx([m.value for m in exp.get_metric(name)])
    # val_loss and val_acc of one epoch share a history row
    assert all("val_acc" in r for r in run["history"] if "val_loss" in r)
    assert run["summary"]["coral/status"] == exp.status.value
    assert run["summary"]["coral/commit_hash"] == exp.commit_hash
    assert run["summary"]["coral/commits"] == exp.commits
    assert run["exit_code"] == (0 if exp.status is ExperimentStatus.COMPLETED else 1)


def test_wandb_offline_mirror(
    repo: Repository, tracker: ExperimentTracker, wandb_offline: Path
) -> None:
    from coral.experiments.bridges import wandb as wb

    exp = _train(repo, tracker, fail=True)
    run_dir = wb.mirror(tracker, exp.experiment_id, wandb_offline)
    assert run_dir.parent == wandb_offline / "wandb"
    _assert_wandb_matches(run_dir, exp)


def test_wandb_offline_live(repo: Repository, wandb_offline: Path) -> None:
    from coral.experiments.bridges import wandb as wb

    tracker = ExperimentTracker(repo, flush_every=25)
    sink = wb.attach(tracker, wandb_offline)
    exp = _train(repo, tracker)
    _assert_wandb_matches(sink.run_dirs[exp.experiment_id], exp)
    tracker.close()


# ---- MLflow (real server) ----------------------------------------------------------------------
def _assert_mlflow_matches(client: Any, run_id: str, exp: Experiment) -> None:
    run = client.get_run(run_id)
    expected_status = {"completed": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
    assert run.info.status == expected_status[exp.status.value]
    assert run.info.run_name == exp.name
    tags = run.data.tags
    assert tags["coral.experiment_id"] == exp.experiment_id and tags["coral.branch"] == "main"
    assert tags["coral.commit_hash"] == exp.commit_hash
    assert tags["coral.commits"] == ",".join(exp.commits)
    assert tags["coral.notes"] == "converged" and tags["mlflow.note.content"] == "bridge test"
    assert all(tags[t] == "true" for t in exp.tags)
    assert run.data.params["lr"] == "0.01" and run.data.params["layers"] == "[2, 3]"
    # params are immutable in MLflow: a param that changed while the run was mirrored live keeps
    # its first value, and its current value is the tag coral.param.<name>
    assert run.data.params["best_checkpoint"] in exp.commits
    current = tags.get("coral.param.best_checkpoint", run.data.params["best_checkpoint"])
    assert current == exp.params["best_checkpoint"]
    for name in ("train_loss", "val_loss", "val_acc"):
        history = sorted(
            client.get_metric_history(run_id, name), key=lambda m: (m.step, m.timestamp)
        )
        points = exp.get_metric(name)
        assert [m.step for m in history] == [p.step for p in points]
        assert [m.value for m in history] == pytest.approx([p.value for p in points])
        assert [m.timestamp for m in history] == [
            int(p.timestamp.timestamp() * 1000) for p in points
        ]
    assert math.isnan(client.get_metric_history(run_id, "weird name_")[0].value)
    assert run.info.start_time == int(exp.started_at.timestamp() * 1000)  # type: ignore[union-attr]
    assert run.info.end_time == int(exp.ended_at.timestamp() * 1000)  # type: ignore[union-attr]


@pytest.mark.server
def test_mlflow_mirror(repo: Repository, tracker: ExperimentTracker, mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from coral.experiments.bridges import mlflow as mb

    client = MlflowClient(tracking_uri=mlflow_uri)
    done = _train(repo, tracker, name="mlflow-done")
    failed = _train(repo, tracker, name="mlflow-failed", fail=True)
    run_done = mb.mirror(tracker, done.experiment_id, tracking_uri=mlflow_uri)
    run_failed = mb.mirror(
        tracker, failed.experiment_id, tracking_uri=mlflow_uri, experiment_name="coral-mirrors"
    )
    _assert_mlflow_matches(client, run_done, done)
    _assert_mlflow_matches(client, run_failed, failed)
    assert (
        client.get_experiment(client.get_run(run_failed).info.experiment_id).name == "coral-mirrors"
    )
    again = mb.mirror(tracker, done.experiment_id, tracking_uri=mlflow_uri)  # replaces the old run
    assert again != run_done
    exp_id = client.get_run(again).info.experiment_id
    live = client.search_runs(
        [exp_id], filter_string=f"tags.`coral.experiment_id` = '{done.experiment_id}'"
    )
    assert [r.info.run_id for r in live] == [again]
    _assert_mlflow_matches(client, again, done)


@pytest.mark.server
def test_mlflow_live(repo: Repository, mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from coral.experiments.bridges import mlflow as mb

    client = MlflowClient(tracking_uri=mlflow_uri)
    tracker = ExperimentTracker(repo, flush_every=20)
    sink = mb.attach(tracker, tracking_uri=mlflow_uri, experiment_name="coral-live")
    running = tracker.start("warmup", params={"lr": 0.5})
    tracker.log("loss", 1.0, step=0)
    tracker.flush()
    run_id = sink.runs[running.experiment_id]
    mid = client.get_run(run_id)
    assert mid.info.status == "RUNNING" and mid.data.metrics["loss"] == 1.0
    tracker.end()
    assert client.get_run(run_id).info.status == "FINISHED"
    exp = _train(repo, tracker, name="live-run")
    _assert_mlflow_matches(client, sink.runs[exp.experiment_id], exp)
    tracker.close()

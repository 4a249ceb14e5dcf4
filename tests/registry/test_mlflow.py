"""Publishing to MLflow: a real `mlflow server` on 127.0.0.1 (tests/servers/mlflow_server.py),
checked through `MlflowClient`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from coral.integrations.formats import load_weights
from coral.registry import ModelPublisher, RegistryType
from coral.version_control.repository import Repository
from tests.registry.conftest import assert_bit_exact, special_weights
from tests.servers.process import free_port

pytestmark = pytest.mark.server


def test_spec_publish_mlflow(
    repo: Repository, mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    publisher = ModelPublisher(repo)
    # fmt: off
    # -- chapter 8.2, unchanged but for the tracking server's address --
    # Publish to MLflow Registry
    result = publisher.publish_mlflow(
        model_name="customer-sentiment-classifier",
        commit_ref="v1.0",
        tracking_uri=mlflow_uri,
        experiment_name="sentiment-analysis",
        description="Production model for sentiment classification",
        tags={
            "stage": "production",
            "team": "ml-platform",
            "framework": "pytorch"
        },
        metrics={
            "test_accuracy": 0.934,
            "test_f1": 0.927
        }
    )

    print(f"MLflow version: {result.version}")
    print(f"Run ID: {result.metadata['run_id']}")
    print(f"Registry URL: {result.url}")
    # -- end --
    # fmt: on

    assert result.success, result.error
    assert result.registry is RegistryType.MLFLOW
    printed = capsys.readouterr().out
    assert f"MLflow version: {result.version}" in printed
    assert "View run" not in printed  # MLflow's own stdout chatter is kept out
    run_id = result.metadata["run_id"]
    assert (
        result.url
        == f"{mlflow_uri}/#/models/customer-sentiment-classifier/versions/{result.version}"
    )

    client = MlflowClient(tracking_uri=mlflow_uri)
    assert result.version is not None
    version = client.get_model_version("customer-sentiment-classifier", result.version)
    assert version.status == "READY"
    assert version.run_id == run_id
    assert version.description == "Production model for sentiment classification"
    commit = repo.resolve_ref("v1.0")
    assert version.tags["stage"] == "production" and version.tags["team"] == "ml-platform"
    assert version.tags["coral.commit"] == commit
    registered = client.get_registered_model("customer-sentiment-classifier")
    assert registered.description == "Production model for sentiment classification"

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "sentiment-analysis"
    assert run.data.metrics["test_accuracy"] == 0.934 and run.data.metrics["test_f1"] == 0.927
    assert run.data.metrics["val_accuracy"] == 0.91  # the tag's metrics
    assert run.data.params["coral_commit"] == commit
    assert run.data.params["weight_count"] == str(len(special_weights(2)))
    assert run.data.tags["coral.branch"] == "main" and run.data.tags["coral.tags"] == "v1.0"

    # The registered artifacts are the weights, bit-exact, and the Coral metadata.
    local = Path(client.download_artifacts(run_id, "model", str(tmp_path)))
    assert sorted(p.name for p in local.iterdir()) == ["coral_metadata.json", "model.safetensors"]
    assert_bit_exact(load_weights(local / "model.safetensors"), special_weights(2))
    meta = json.loads((local / "coral_metadata.json").read_text())
    assert meta["commit"] == commit and meta["metrics"]["test_f1"] == 0.927


def test_new_versions_and_history(repo: Repository, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    name = f"coral-versions-{time.time_ns()}"
    publisher = ModelPublisher(repo)
    first = publisher.publish_mlflow(name, commit_ref="HEAD~2", tracking_uri=mlflow_uri)
    second = publisher.publish_mlflow(name, commit_ref="HEAD", tracking_uri=mlflow_uri)
    assert first.success and second.success, (first.error, second.error)
    assert (first.version, second.version) == ("1", "2")

    versions = MlflowClient(tracking_uri=mlflow_uri).search_model_versions(f"name='{name}'")
    by_version = {v.version: v.tags["coral.commit"] for v in versions}
    assert by_version == {"1": repo.resolve_ref("HEAD~2"), "2": repo.resolve_ref("HEAD")}

    latest = publisher.get_latest(name, registry=RegistryType.MLFLOW)
    assert latest is not None and latest.version == "2"
    assert latest.metadata["run_id"] == second.metadata["run_id"]


def test_dead_tracking_server_is_a_failed_result(repo: Repository) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = ModelPublisher(repo).publish_mlflow("unreachable", tracking_uri=dead)
    assert result.success is False
    assert result.registry is RegistryType.MLFLOW
    assert "cannot reach" in (result.error or "") and dead in (result.error or "")
    assert "run_id" not in result.metadata  # refused up front, before MLflow's own retries
    assert ModelPublisher(repo).get_history(registry=RegistryType.MLFLOW)[0].success is False


def test_unknown_ref_is_a_failed_result(repo: Repository, mlflow_uri: str) -> None:
    result = ModelPublisher(repo).publish_mlflow("x", commit_ref="v9.9", tracking_uri=mlflow_uri)
    assert not result.success and "v9.9" in (result.error or "")

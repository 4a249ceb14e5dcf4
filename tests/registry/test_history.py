"""Publishing history: kept in the repository database, filtered, newest first."""

from __future__ import annotations

from pathlib import Path

from coral.registry import ModelPublisher, RegistryType
from coral.version_control.repository import Repository


def test_spec_types() -> None:
    # fmt: off
    # -- chapter 8.2, unchanged --
    from coral.registry import RegistryType

    RegistryType.HUGGINGFACE  # HuggingFace Hub  # noqa: B018
    RegistryType.MLFLOW       # MLflow Model Registry  # noqa: B018
    RegistryType.LOCAL        # Local filesystem export  # noqa: B018

    from datetime import datetime

    from coral.registry import PublishResult

    result = PublishResult(
        success=True,
        registry=RegistryType.HUGGINGFACE,
        model_name="my-org/my-model",
        version="1.0.0",
        url="https://huggingface.co/my-org/my-model",
        error=None,
        metadata={"commit_ref": "abc123", "weight_count": 124},
        published_at=datetime.now()
    )
    # -- end --
    # fmt: on
    assert result.to_dict()["registry"] == "huggingface"
    assert {r.value for r in RegistryType} == {"huggingface", "mlflow", "local"}


def test_history_filters_and_order(repo: Repository, tmp_path: Path) -> None:
    publisher = ModelPublisher(repo)
    first = publisher.publish_local(tmp_path / "a", commit_ref="HEAD~2", format="npz")
    failed = publisher.publish_local(tmp_path / "b", commit_ref="missing")
    second = publisher.publish_local(tmp_path / "a", commit_ref="v1.0", format="npz", force=True)

    history = publisher.get_history()
    assert [r.success for r in history] == [True, False, True]
    assert history[0].version == second.version
    assert history[2].version == first.version
    assert history[1].error == failed.error
    assert history[1].metadata["commit_ref"] == "missing"

    assert [r.version for r in publisher.get_history(success_only=True)] == [
        second.version,
        first.version,
    ]
    assert len(publisher.get_history(limit=1)) == 1
    assert publisher.get_history(registry=RegistryType.HUGGINGFACE) == []
    assert len(publisher.get_history(registry=RegistryType.LOCAL, success_only=True, limit=10)) == 2

    stored = history[0]
    assert stored.registry is RegistryType.LOCAL
    assert stored.model_name == second.model_name
    assert stored.url == second.url
    assert stored.metadata == second.metadata
    assert abs((stored.published_at - second.published_at).total_seconds()) < 1e-3


def test_get_latest(repo: Repository, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    publisher = ModelPublisher(repo)
    assert publisher.get_latest("exports/m") is None
    publisher.publish_local("exports/m", commit_ref="HEAD~1", format="npz")
    latest = publisher.publish_local("exports/m", commit_ref="HEAD", format="npz", force=True)
    publisher.publish_local("exports/m", commit_ref="nope")  # failures never count

    found = publisher.get_latest("exports/m", registry=RegistryType.LOCAL)
    assert found is not None and found.version == latest.version
    by_path = publisher.get_latest(str(tmp_path / "exports" / "m"))
    assert by_path is not None and by_path.version == latest.version
    assert publisher.get_latest("exports/m", registry=RegistryType.MLFLOW) is None


def test_history_survives_reopening(repo: Repository, tmp_path: Path) -> None:
    ModelPublisher(repo).publish_local(tmp_path / "x", format="npz")
    with Repository(repo.path) as again:
        history = ModelPublisher(again).get_history()
    assert len(history) == 1 and history[0].success
    rows = repo.database.query("SELECT version FROM schema_versions WHERE component = 'registry'")
    assert rows and rows[0][0] == 1

"""Publishing to a Hugging Face Hub: the real `huggingface_hub` client against the tests' own
Hub-compatible server on 127.0.0.1 (tests/servers/hub_server.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral.integrations.formats import load_weights
from coral.registry import ModelPublisher, PublishResult, RegistryType
from coral.version_control.repository import Repository
from tests.registry.conftest import HUB_TOKEN, assert_bit_exact, special_weights
from tests.servers.hub_server import HubServer
from tests.servers.process import free_port

pytestmark = pytest.mark.server


def _api(hub: HubServer):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=HUB_TOKEN)


def test_spec_publish_huggingface(
    repo: Repository, hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fmt: off
    # -- chapter 8.2, unchanged --
    from coral.registry import ModelPublisher

    publisher = ModelPublisher(repo)

    # Publish to HuggingFace with model card
    result = publisher.publish_huggingface(
        repo_id="my-org/bert-sentiment",
        commit_ref="main",  # Coral commit reference
        private=False,
        description="BERT fine-tuned for sentiment analysis on customer reviews",
        base_model="bert-base-uncased",
        metrics={
            "accuracy": 0.934,
            "f1": 0.927,
            "precision": 0.941,
            "recall": 0.914
        },
        tags=["sentiment-analysis", "bert", "nlp"],
        token=None  # Uses HF_TOKEN environment variable
    )

    if result.success:
        print(f"Published to: {result.url}")
        print("Model card generated with metrics and metadata")
    else:
        print(f"Publishing failed: {result.error}")
    # -- end --
    # fmt: on

    assert result.success, result.error
    assert f"Published to: {hub.url}/my-org/bert-sentiment" in capsys.readouterr().out
    assert result.registry is RegistryType.HUGGINGFACE
    assert result.model_name == "my-org/bert-sentiment"
    api = _api(hub)
    info = api.model_info("my-org/bert-sentiment")
    assert result.version == info.sha
    assert result.metadata["commit_hash"] == repo.resolve_ref("main")
    assert result.metadata["weight_count"] == len(special_weights(2))
    assert sorted(api.list_repo_files("my-org/bert-sentiment")) == [
        ".gitattributes",
        "README.md",
        "coral_metadata.json",
        "model.safetensors",
    ]

    # The weights come back bit-exact.
    path = api.hf_hub_download(
        "my-org/bert-sentiment", "model.safetensors", cache_dir=tmp_path / "dl"
    )
    assert_bit_exact(load_weights(path), special_weights(2))

    meta_path = api.hf_hub_download(
        "my-org/bert-sentiment", "coral_metadata.json", cache_dir=tmp_path / "dl"
    )
    meta = json.loads(Path(meta_path).read_text())
    assert meta["commit"] == repo.resolve_ref("main")
    assert meta["branch"] == "main" and meta["tags"] == ["v1.0"]
    assert meta["metrics"]["accuracy"] == 0.934 and meta["metrics"]["val_accuracy"] == 0.91
    assert meta["base_model"] == "bert-base-uncased"

    # fmt: off
    # -- chapter 8.2, unchanged --
    # Get publishing history
    history = publisher.get_history(
        registry=RegistryType.HUGGINGFACE,
        success_only=True,
        limit=10
    )

    for result in history:
        print(f"{result.model_name} -> {result.url}")
        print(f"  Published: {result.published_at}")
        print(f"  Weight count: {result.metadata['weight_count']}")

    # Get latest successful publish for a model
    latest = publisher.get_latest(
        model_name="my-org/bert-sentiment",
        registry=RegistryType.HUGGINGFACE
    )
    # -- end --
    # fmt: on
    printed = capsys.readouterr().out
    assert f"my-org/bert-sentiment -> {hub.url}/my-org/bert-sentiment" in printed
    assert f"Weight count: {len(special_weights(2))}" in printed
    assert latest is not None and latest.version == info.sha


def test_model_card_metadata_parses(repo: Repository, hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    metrics = {"accuracy": 0.934, "f1": 0.927}
    result = ModelPublisher(repo).publish_huggingface(
        "my-org/card",
        description="A small test model.",
        base_model="bert-base-uncased",
        metrics=metrics,
        tags=["nlp", "bert"],
    )
    assert result.success, result.error
    readme = _api(hub).hf_hub_download("my-org/card", "README.md", cache_dir=tmp_path / "dl")
    card = ModelCard.load(readme)
    data = card.data
    assert data.library_name == "coral"
    assert data.base_model == "bert-base-uncased"
    assert {"coral", "nlp", "bert"} <= set(data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results["accuracy"] == 0.934 and results["f1"] == 0.927
    assert results["loss"] == pytest.approx(1 / 3)  # the commit's own metrics are included
    assert data.model_name == "card"
    assert all(r.task_type and r.dataset_type and r.dataset_name for r in data.eval_results)

    # The body comes from the commit history.
    text = card.text
    assert "A small test model." in text
    assert repo.resolve_ref("HEAD") in text
    for commit in repo.log():
        assert commit.short_hash in text and commit.message in text
    assert "`v1.0`" in text

    # The Hub parsed the same front matter.
    info = _api(hub).model_info("my-org/card")
    assert info.card_data is not None and info.card_data.library_name == "coral"


def test_commit_metadata_supplies_task_and_dataset(tmp_path: Path, hub: HubServer) -> None:
    from huggingface_hub import ModelCard

    r = Repository.init(tmp_path / "r")
    r.add_all_weights(special_weights(5))
    r.commit(
        "fine-tuned",
        metadata={"task": "text-classification", "dataset": "imdb", "metrics": {"accuracy": 0.9}},
    )
    result = ModelPublisher(r).publish_huggingface("my-org/imdb")
    assert result.success, result.error
    card = ModelCard.load(
        _api(hub).hf_hub_download("my-org/imdb", "README.md", cache_dir=tmp_path / "dl")
    )
    assert card.data.pipeline_tag == "text-classification"
    (ev,) = card.data.eval_results
    assert (ev.task_type, ev.dataset_type, ev.metric_type, ev.metric_value) == (
        "text-classification",
        "imdb",
        "accuracy",
        0.9,
    )
    r.close()


def test_sharded_upload_and_republish(repo: Repository, hub: HubServer, tmp_path: Path) -> None:
    publisher = ModelPublisher(repo, max_shard_bytes=256)
    first = publisher.publish_huggingface("my-org/sharded", commit_ref="HEAD~1", private=True)
    assert first.success, first.error
    api = _api(hub)
    files = api.list_repo_files("my-org/sharded")
    assert "model.safetensors.index.json" in files
    assert len([f for f in files if f.startswith("model-0")]) > 1
    assert api.model_info("my-org/sharded").private is True
    folder = api.snapshot_download("my-org/sharded", cache_dir=tmp_path / "dl")
    assert_bit_exact(
        load_weights(Path(folder) / "model.safetensors.index.json"), special_weights(1)
    )

    second = publisher.publish_huggingface("my-org/sharded", commit_ref="HEAD")
    assert second.success, second.error
    assert second.version != first.version
    latest = publisher.get_latest("my-org/sharded", registry=RegistryType.HUGGINGFACE)
    assert latest is not None and latest.version == second.version
    assert latest.metadata["commit_hash"] == repo.resolve_ref("HEAD")


def test_token_argument_wins_over_environment(
    repo: Repository, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    result = ModelPublisher(repo).publish_huggingface("my-org/arg-token", token=HUB_TOKEN)
    assert result.success, result.error


def _assert_failed(result: PublishResult, *words: str) -> None:
    assert isinstance(result, PublishResult)
    assert result.success is False
    assert result.registry is RegistryType.HUGGINGFACE
    assert result.version is None and result.url is None
    assert result.error and all(w in result.error for w in words), result.error


def test_bad_token_is_a_failed_result(repo: Repository, hub: HubServer) -> None:
    publisher = ModelPublisher(repo)
    _assert_failed(
        publisher.publish_huggingface("my-org/nope", token="hf_not_valid"),
        "rejected the token",
        "401",
    )
    assert "my-org/nope" not in hub.state.repos
    history = publisher.get_history(registry=RegistryType.HUGGINGFACE)
    assert len(history) == 1 and not history[0].success


def test_dead_endpoint_is_a_failed_result(
    repo: Repository, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    _assert_failed(ModelPublisher(repo).publish_huggingface("my-org/offline"), "cannot reach", dead)


def test_namespace_without_rights_is_a_failed_result(repo: Repository, hub: HubServer) -> None:
    _assert_failed(
        ModelPublisher(repo).publish_huggingface("someone-else/model"), "permission denied", "403"
    )


def test_missing_token_is_a_failed_result(
    repo: Repository, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    _assert_failed(
        ModelPublisher(repo).publish_huggingface("my-org/no-token"), "no Hugging Face token"
    )


def test_invalid_repo_id_and_ref_are_failed_results(repo: Repository, hub: HubServer) -> None:
    publisher = ModelPublisher(repo)
    _assert_failed(publisher.publish_huggingface("not a valid id!"), "invalid repository id")
    _assert_failed(
        publisher.publish_huggingface("my-org/x", commit_ref="no-such-branch"), "no-such-branch"
    )
    assert hub.state.repos == {}

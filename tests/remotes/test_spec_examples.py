"""The examples of spec chapter 8.3 (Remote Synchronization), run as written.

Only URLs and paths are adapted: `file://` remotes in tmp_path stand in for S3 buckets and
mounted backups (and `backend="local"` goes with them); the MinIO example is only constructed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from coral.remotes.config import RemoteConfigError
from coral.remotes.layout import FORMAT_KEY
from coral.remotes.remote import PullResult, PushResult, Remote, RemoteConfig, RemoteManager
from coral.remotes.sync import sync_repositories
from coral.version_control.repository import Repository
from tests.remotes.helpers import assert_bit_exact, file_url, model


@pytest.fixture
def repo(make_repo):
    r = make_repo("repo")
    r.add_all_weights(model(1))
    r.commit("Initial model")
    return r


# -- Remote Configuration ------------------------------------------------------------------------
def test_remote_configuration_examples(tmp_path: Path) -> None:
    # S3 remote (constructed only: no bucket is reached)
    s3_remote = RemoteConfig(
        name="origin",
        url="s3://my-bucket/coral/models",
        backend="s3",
        region="us-west-2",
        access_key=None,  # Uses AWS credentials from environment
        secret_key=None,
        auto_push=False,
        auto_pull=False,
    )

    # MinIO (S3-compatible)
    minio_remote = RemoteConfig.from_url(name="minio", url="minio://localhost:9000/coral-bucket")

    # Local filesystem (for testing/backup)
    local_remote = RemoteConfig.from_url(name="backup", url=file_url(tmp_path / "backup/coral"))

    assert (s3_remote.name, s3_remote.backend, s3_remote.region) == ("origin", "s3", "us-west-2")
    assert s3_remote.url == "s3://my-bucket/coral/models"
    assert not s3_remote.auto_push and not s3_remote.auto_pull
    assert minio_remote.name == "minio"
    assert minio_remote.backend == "s3"
    assert minio_remote.url == "minio://localhost:9000/coral-bucket"
    assert minio_remote.endpoint_url == "http://localhost:9000"
    assert minio_remote.access_key is None and minio_remote.secret_key is None
    assert local_remote.backend == "local"
    assert local_remote.url.startswith("file://")


def test_remote_config_rejects_bad_urls_and_names() -> None:
    with pytest.raises(RemoteConfigError, match="unsupported"):
        RemoteConfig.from_url("origin", "ftp://host/x")
    with pytest.raises(RemoteConfigError):
        RemoteConfig.from_url("bad name with spaces", "file:///tmp/x")
    with pytest.raises(RemoteConfigError, match="backend"):
        RemoteConfig(name="origin", url="s3://b/p", backend="dropbox")


# -- Push and Pull Operations --------------------------------------------------------------------
def test_push_and_pull_operations(repo: Repository, tmp_path: Path, make_repo, capsys) -> None:
    local_remote = RemoteConfig.from_url(name="backup", url=file_url(tmp_path / "backup/coral"))

    # Create remote from config
    remote = Remote.from_config(local_remote)

    # Push weights to remote
    result = remote.push(
        local_store=repo.store,
        weight_hashes=None,  # None = push all missing weights
        force=False,
    )

    print(f"Pushed {result.pushed_weights} weights")
    print(f"Transferred {result.bytes_transferred / 1024 / 1024:.1f} MB")
    if result.errors:
        print(f"Errors: {result.errors}")

    assert isinstance(result, PushResult)
    assert result.pushed_weights == len(model(1))
    assert result.pushed_commits == 1
    assert result.bytes_transferred > sum(a.nbytes for a in model(1).values()) // 2
    assert result.errors == [] and result.success
    pushed = result

    # Pull weights from remote (into the same repository: nothing is missing)
    result = remote.pull(
        local_store=repo.store,
        weight_hashes=None,  # None = pull all missing weights
        force=False,
    )

    print(f"Pulled {result.pulled_weights} weights")
    assert isinstance(result, PullResult)
    assert result.pulled_weights == 0 and result.errors == []

    # List remote weights
    remote_weights = remote.list_remote_weights()
    print(f"Remote has {len(remote_weights)} weights")
    tree = repo.get_tree("HEAD")
    assert sorted(remote_weights) == sorted(e.tensor_id for e in tree.entries.values())

    out = capsys.readouterr().out
    assert f"Pushed {pushed.pushed_weights} weights" in out
    assert f"Remote has {len(model(1))} weights" in out

    # ... and into a fresh repository: everything arrives, bit-exact
    repo_b = make_repo("fresh")
    result = remote.pull(local_store=repo_b.store, weight_hashes=None, force=False)
    assert result.pulled_weights == len(model(1))
    assert result.errors == []
    assert repo_b.head_commit() == repo.head_commit()
    assert_bit_exact(repo_b, "HEAD", model(1))


def test_push_and_pull_of_chosen_weight_hashes(repo: Repository, tmp_path: Path, make_repo):
    remote = Remote.from_config(RemoteConfig.from_url("backup", file_url(tmp_path / "backup")))
    wanted = repo.get_tree("HEAD").entries["layer0.weight"].tensor_id
    result = remote.push(repo.store, weight_hashes=[wanted])
    assert result.pushed_weights == 1 and result.pushed_commits == 0
    assert remote.list_remote_weights() == [wanted]
    assert remote.list_refs() == {}  # weights only: no ref moved
    other = make_repo("other")
    pulled = remote.pull(other.store, weight_hashes=[wanted])
    assert pulled.pulled_weights == 1
    data = other.store.load(wanted).data
    assert data.tobytes() == model(1)["layer0.weight"].tobytes()
    assert other.head_commit() is None  # no branch was created


# -- Repository Synchronization ------------------------------------------------------------------
def test_repository_synchronization(repo: Repository, tmp_path: Path, capsys) -> None:
    remote = Remote.from_config(RemoteConfig.from_url("backup", file_url(tmp_path / "backup")))

    # Bidirectional sync
    stats = sync_repositories(
        local_store=repo.store,
        remote=remote,
        direction="both",  # "push", "pull", or "both"
        force=False,
    )

    print(f"Push: {stats['push']}")
    print(f"Pull: {stats['pull']}")

    assert set(stats) == {"push", "pull"}
    assert isinstance(stats["push"], PushResult)
    assert stats["push"].pushed_weights == len(model(1))
    assert stats["pull"] is None  # the remote was empty: nothing to pull first
    assert "Push: PushResult(" in capsys.readouterr().out

    stats = sync_repositories(local_store=repo.store, remote=remote, direction="both")
    assert isinstance(stats["pull"], PullResult) and stats["pull"].errors == []
    assert stats["push"].pushed_objects == 0 and stats["push"].bytes_transferred == 0

    only_pull = sync_repositories(repo.store, remote, direction="pull")
    assert only_pull["push"] is None and isinstance(only_pull["pull"], PullResult)
    with pytest.raises(ValueError, match="direction"):
        sync_repositories(repo.store, remote, direction="sideways")


# -- Managing Multiple Remotes -------------------------------------------------------------------
def test_managing_multiple_remotes(repo: Repository, tmp_path: Path, capsys) -> None:
    prod = file_url(tmp_path / "prod-bucket/models")
    backup = file_url(tmp_path / "backup")

    # Initialize remote manager
    manager = RemoteManager(repo.coral_dir / "remotes.json")

    # Add remotes
    manager.add(RemoteConfig.from_url("origin", prod))
    manager.add(RemoteConfig.from_url("backup", backup))

    # List remotes
    for name in manager.list():
        remote = manager.get(name)
        info = remote.get_remote_info()
        print(f"{name}: {info['url']} ({info['backend']})")

    # Sync with specific remote
    origin = manager.get("origin")
    origin.push(repo.store)

    out = capsys.readouterr().out
    assert f"origin: {prod} (local)" in out
    assert f"backup: {backup} (local)" in out
    assert manager.list() == ["backup", "origin"]
    assert isinstance(manager.get("origin"), Remote)
    info = manager.get("origin").get_remote_info()
    assert info["url"] == prod and info["backend"] == "local"
    assert info["initialized"] and info["weights"] == len(model(1))
    assert info["refs"] == {"heads/main": repo.head_commit()}
    assert manager.get("backup").get_remote_info()["initialized"] is False

    # the file is plain JSON another manager reads back
    again = RemoteManager(repo.coral_dir / "remotes.json")
    assert again.list() == ["backup", "origin"]
    assert again.config("origin").url == prod
    assert manager.remove("backup") is True
    assert manager.remove("backup") is False
    assert again.list() == ["origin"]
    with pytest.raises(RemoteConfigError, match="no remote named 'backup'"):
        again.get("backup")


# -- Authentication Configuration ----------------------------------------------------------------
def test_secrets_never_reach_remotes_json(repo: Repository) -> None:
    config = RemoteConfig(
        name="minio",
        url="s3://bucket/prefix",
        backend="s3",
        endpoint_url="http://localhost:9000",
        access_key="minioadmin",
        secret_key="minioadmin",
    )
    other = RemoteConfig(
        name="other",
        url="s3://bucket/other",
        backend="s3",
        access_key="AKIAEXAMPLEKEY42",
        secret_key="wJalrXUtnFEMI-s3cr3t",
    )
    path = repo.coral_dir / "remotes.json"
    manager = RemoteManager(path)
    manager.add(config)
    manager.add(other)
    text = path.read_text()
    for secret in ("minioadmin", "AKIAEXAMPLEKEY42", "wJalrXUtnFEMI-s3cr3t"):
        assert secret not in text
        assert secret not in repr(config) + repr(other)
    doc = json.loads(text)
    for entry in doc["remotes"].values():
        assert "access_key" not in entry and "secret_key" not in entry
    assert doc["remotes"]["minio"]["endpoint_url"] == "http://localhost:9000"
    # the process that added them still has them; a new manager gets them from the environment
    assert manager.config("minio").secret_key == "minioadmin"
    fresh = RemoteManager(path).config("minio")
    assert fresh.access_key is None and fresh.secret_key is None
    assert "minioadmin" not in json.dumps(fresh.public_dict())


def test_credentials_in_urls_are_redacted(repo: Repository) -> None:
    path = repo.coral_dir / "remotes.json"
    manager = RemoteManager(path)
    config = RemoteConfig.from_url("creds", "minio://AKIAUSER:hunter2pass@localhost:9000/bucket")
    manager.add(config)
    text = path.read_text()
    assert "hunter2pass" not in text and "AKIAUSER" not in text
    assert "hunter2pass" not in json.dumps(config.public_dict())
    assert "localhost:9000/bucket" in text


def test_local_filesystem_authentication_example(tmp_path: Path) -> None:
    # Local filesystem - No authentication needed
    config = RemoteConfig.from_url("backup", file_url(tmp_path / "mnt/backup"))
    assert config.access_key is None and config.secret_key is None
    assert Remote.from_config(config).get_remote_info()["initialized"] is False


# -- Production Remote Sync Workflows -----------------------------------------------------------
def test_workflow_1_continuous_training_with_cloud_backup(tmp_path: Path, capsys) -> None:
    Repository.init(tmp_path / "training-workspace").close()
    num_epochs = 7
    state = {"epoch": 0}

    def train_epoch(model_: dict) -> None:
        state["epoch"] += 1

    def extract_weights(model_: dict) -> dict[str, np.ndarray]:
        w = model(0, n=2)
        w["layer0.weight"] = w["layer0.weight"] + np.float32(0.01 * state["epoch"])
        return w

    model_obj: dict = {}

    repo = Repository(tmp_path / "training-workspace")
    manager = RemoteManager(repo.coral_dir / "remotes.json")

    # Configure S3 remote for team collaboration
    manager.add(
        RemoteConfig(
            name="team-s3",
            url=file_url(tmp_path / "ml-team-models/sentiment-classifier"),
            backend="local",
            region="us-east-1",
            auto_push=False,
        )
    )

    # Training loop with periodic syncs
    for epoch in range(num_epochs):
        # Train model
        train_epoch(model_obj)

        # Commit checkpoint
        weights = extract_weights(model_obj)
        repo.add_all_weights(weights)
        commit_hash = repo.commit(f"Epoch {epoch}", author="trainer")

        # Push to cloud every 5 epochs
        if epoch % 5 == 0:
            remote = manager.get("team-s3")
            result = remote.push(repo.store)
            print(f"Pushed {result.pushed_weights} weights to S3")

    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Pushed")]
    assert len(lines) == 2  # epochs 0 and 5
    assert lines[0] == "Pushed 3 weights to S3"
    # epochs 1..5 changed only layer0.weight: five new tensors, the rest already there
    assert lines[1] == "Pushed 5 weights to S3"
    refs = manager.get("team-s3").list_refs()
    assert refs["heads/main"] == repo.resolve_ref("HEAD~1")
    assert commit_hash == repo.head_commit()
    repo.close()


def test_workflow_2_distributed_team_collaboration(tmp_path: Path, capsys) -> None:
    url = file_url(tmp_path / "shared-bucket/model")
    Repository.init(tmp_path / "member-a/workspace").close()
    Repository.init(tmp_path / "member-b/workspace").close()
    model_weights = model(5)
    loaded: dict = {}

    def train_model() -> None:
        pass

    def load_weights_into_model(model_: dict, weights: dict) -> None:
        model_.update(weights)

    # Team member A: Pushes model after training
    repo_a = Repository(tmp_path / "member-a/workspace")
    remote = Remote.from_config(RemoteConfig.from_url("origin", url))

    # Train and push
    train_model()
    repo_a.add_all_weights(model_weights)
    repo_a.commit("Improved architecture")
    remote.push(repo_a.store)

    # Team member B: Pulls latest model
    repo_b = Repository(tmp_path / "member-b/workspace")
    remote_b = Remote.from_config(RemoteConfig.from_url("origin", url))

    # Pull latest weights
    result = remote_b.pull(repo_b.store)
    print(f"Downloaded {result.pulled_weights} new weights")

    # Load and continue training
    latest_weights = repo_b.get_all_weights("HEAD")
    load_weights_into_model(loaded, latest_weights)

    assert f"Downloaded {len(model_weights)} new weights" in capsys.readouterr().out
    assert result.updated_branch == "main"
    assert_bit_exact(repo_b, "HEAD", model_weights)
    assert sorted(loaded) == sorted(model_weights)
    assert repo_b.log()[0].message == "Improved architecture"
    assert repo_b.resolve_ref("origin/main") == repo_a.head_commit()
    repo_a.close()
    repo_b.close()


def test_workflow_3_multi_region_deployment(repo: Repository, tmp_path: Path, capsys) -> None:
    manager = RemoteManager(repo.coral_dir / "remotes.json")

    # Configure multiple regions for redundancy
    regions = ["us-east-1", "eu-west-1", "ap-southeast-1"]
    for region in regions:
        manager.add(
            RemoteConfig(
                name=f"s3-{region}",
                url=file_url(tmp_path / f"coral-models-{region}/production"),
                backend="local",
                region=region,
            )
        )

    # Deploy to all regions
    for region in regions:
        remote = manager.get(f"s3-{region}")
        result = remote.push(repo.store, force=False)
        print(f"{region}: Pushed {result.pushed_weights} weights")
        if result.errors:
            print(f"  Errors: {result.errors}")

    out = capsys.readouterr().out
    for region in regions:
        assert f"{region}: Pushed {len(model(1))} weights" in out
        assert manager.get(f"s3-{region}").list_refs() == {"heads/main": repo.head_commit()}
    assert "Errors" not in out


def test_workflow_4_disaster_recovery_and_backup(tmp_path: Path, monkeypatch) -> None:
    with Repository.init(tmp_path / "production-model") as r:
        r.add_all_weights(model(9))
        r.commit("production")
    log = tmp_path / "coral-backup.log"
    monkeypatch.chdir(tmp_path)
    backup_url = file_url(tmp_path / "mnt/backup/coral")

    def backup_weights():
        """Periodic backup job"""
        repo = Repository("./production-model")
        backup_remote = Remote.from_config(RemoteConfig.from_url("backup", backup_url))

        result = backup_remote.push(repo.store)
        print(f"Backup completed: {result.pushed_weights} weights")

        # Log backup status
        with open(log, "a") as f:
            f.write(f"{datetime.now()}: Backed up {result.pushed_weights} weights\n")
        repo.close()

    backup_weights()
    backup_weights()  # the second run finds everything there
    lines = log.read_text().splitlines()
    assert lines[0].endswith(f"Backed up {len(model(9))} weights")
    assert lines[1].endswith("Backed up 0 weights")
    assert os.path.exists(tmp_path / "mnt/backup/coral" / FORMAT_KEY)

"""`--cluster ADDRESS` / CORAL_DASK_SCHEDULER / `[cluster] scheduler`: chunks encode and decode
as Dask tasks on real workers, with the same bytes on disk as a local run; a scheduler that
cannot be reached is one clean error, with nothing stored. Sizes: see conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral.storage.base import CHUNK, TENSOR
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.scale.cluster.conftest import TENSORS, Proc, Run, make_repo, same_tensors
from tests.servers.dask import DaskCluster
from tests.servers.process import free_port


def stored_records(path: Path) -> dict[tuple[str, str], bytes]:
    """Every chunk and tensor record of a repository's store, by (kind, id)."""
    with Repository(path) as repo:
        store = repo.store
        return {
            (kind, oid): store.read_raw(kind, oid)
            for kind in (CHUNK, TENSOR)
            for oid in store.list_blobs(kind)
        }


def head_tree(path: Path) -> dict[str, str]:
    with Repository(path) as repo:
        return {n: e.tensor_id for n, e in repo.get_tree("HEAD").entries.items()}


@pytest.mark.parametrize("storage", ["", "reverse_deltas = false\n"], ids=["reverse", "forward"])
def test_cluster_writes_the_same_bytes_as_local_threads(
    cluster: DaskCluster, models: dict[str, Path], tmp_path: Path, coral: Run, storage: str
) -> None:
    local, remote = make_repo(tmp_path / "local", storage), make_repo(tmp_path / "remote", storage)
    before = cluster.task_counts()
    for name in ("base", "tuned"):
        done = coral("import", str(models[name]), "--cluster", "local", where=local)
        assert done.exit_code == 0, done.output
        assert "encoding on" not in done.stderr
        done = coral("import", str(models[name]), "--cluster", cluster.address, where=remote)
        assert done.exit_code == 0, done.output
        assert f"encoding on Dask scheduler {cluster.address} (2 workers" in done.stderr
    after = cluster.task_counts()
    encoded = sum(after.get(t, 0) - before.get(t, 0) for t in ("encode_full", "encode_best"))
    assert encoded >= 16 * TENSORS  # every chunk of the base at least, on the workers
    if storage:
        assert after.get("encode_best", 0) > before.get("encode_best", 0)  # deltas too
    assert head_tree(local) == head_tree(remote)
    records = stored_records(remote)
    assert len(records) > 2 * 16 * TENSORS
    assert records == stored_records(local)
    assert coral("fsck", where=remote).exit_code == 0


def test_export_decodes_on_the_cluster_named_by_the_environment(
    cluster: DaskCluster, models: dict[str, Path], repo: Path, coral_proc: Proc
) -> None:
    env = {"CORAL_DASK_SCHEDULER": cluster.address}
    for name in ("base", "tuned"):
        done = coral_proc("save", str(models[name]), "-m", name, "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["tensors"] == TENSORS
        assert "encoding on Dask scheduler" in done.stderr
    before = cluster.task_counts().get("decode_records", 0)
    out = repo / "out.safetensors"
    done = coral_proc("export", "HEAD~1", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert same_tensors(out, models["base"])
    assert cluster.task_counts().get("decode_records", 0) >= before + 16 * TENSORS
    assert coral_proc("fsck").returncode == 0


def test_config_key_chooses_the_cluster_and_flags_win(
    cluster: DaskCluster, models: dict[str, Path], coral: Run
) -> None:
    done = coral("config", "set", "cluster.scheduler", cluster.address)
    assert done.exit_code == 0, done.output
    shown = coral("config", "get", "cluster.scheduler", "--json")
    assert json.loads(shown.stdout)["value"] == cluster.address
    done = coral("add", str(models["base"]))
    assert done.exit_code == 0, done.output
    assert f"encoding on Dask scheduler {cluster.address}" in done.stderr
    done = coral("commit", "-m", "base", "--cluster", "local")  # local threads, config or not
    assert done.exit_code == 0, done.output
    assert "encoding on" not in done.stderr
    dead = f"tcp://127.0.0.1:{free_port()}"
    coral("config", "set", "cluster.scheduler", dead)
    done = coral("add", str(models["tuned"]), env={"CORAL_DASK_SCHEDULER": cluster.address})
    assert done.exit_code == 0, done.output  # the environment beats the config
    assert f"encoding on Dask scheduler {cluster.address}" in done.stderr
    staged = json.loads(coral("status", "--json").stdout)["staged"]
    assert len(staged["modified"]) == TENSORS


@pytest.mark.parametrize("source", ["flag", "env", "config"])
def test_unreachable_scheduler_is_one_error_and_stores_nothing(
    models: dict[str, Path], repo: Path, coral: Run, source: str
) -> None:
    dead = f"tcp://127.0.0.1:{free_port()}"
    args, env = ["import", str(models["base"])], None
    if source == "flag":
        args += ["--cluster", dead]
    elif source == "env":
        env = {"CORAL_DASK_SCHEDULER": dead}
    else:
        assert coral("config", "set", "cluster.scheduler", dead).exit_code == 0
    done = coral(*args, env=env)
    assert_user_error(done, f"cannot reach Dask scheduler {dead}", "--cluster local")
    with Repository(repo) as opened:
        assert opened.head_commit() is None
        assert opened.store.list() == []
        assert not opened.staged_changes()


def test_unreachable_scheduler_through_the_real_program(
    models: dict[str, Path], coral_proc: Proc
) -> None:
    dead = f"tcp://127.0.0.1:{free_port()}"
    done = coral_proc("add", str(models["base"]), "--cluster", dead)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"error: cannot reach Dask scheduler {dead} ([Errno 111] Connection refused)"
    assert lines[1].startswith("hint: start one with `dask scheduler`")
    assert len(lines) == 2
    assert "nothing staged" in coral_proc("status").stdout


def test_bad_scheduler_addresses_are_refused_with_a_hint(coral: Run) -> None:
    assert_user_error(
        coral("commit", "-m", "x", "--cluster", "http://example.com"),
        "--cluster: not a Dask scheduler address: 'http://example.com'",
        "tcp://",
    )
    assert_user_error(
        coral("config", "set", "cluster.scheduler", "my-laptop"),
        "not a Dask scheduler address: 'my-laptop'",
    )
    assert_user_error(coral("config", "set", "cluster.timeout", "0"), "cluster.timeout")
    assert_user_error(
        coral("status", env={"CORAL_DASK_SCHEDULER": "nope:x"}), "CORAL_DASK_SCHEDULER"
    )

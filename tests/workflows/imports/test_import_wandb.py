"""`coral import-wandb`: each checkpoint of a local W&B run (or artifact folder) becomes a
commit, in step order, with the run's config and metrics; local files only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.import_wandb import import_wandb, read_wandb_run
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.imports.conftest import run_coral

CONFIG_YAML = """\
_wandb:
  value:
    cli_version: 0.31.0
    python_version: 3.11.9
wandb_version: 1
lr:
  desc: null
  value: 0.001
batch_size:
  desc: null
  value: 32
optimizer:
  value:
    name: adam
    betas:
    - 0.9
    - 0.999
"""


def _weights(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {
        "fc.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "fc.bias": np.full(4, step, np.float32),
    }


def _run_dir(root: Path, run_id: str = "a1b2c3d4") -> Path:
    """A run directory in W&B's layout: files/ with config, summary, history, checkpoints
    saved out of step order (mtimes say 20, 10, 30)."""
    run = root / "wandb" / f"run-20261204_101500-{run_id}"
    files = run / "files"
    (files / "checkpoints").mkdir(parents=True)
    (files / "config.yaml").write_text(CONFIG_YAML)
    (files / "wandb-summary.json").write_text(
        json.dumps({"loss": 0.12, "acc": 0.97, "_step": 30, "_runtime": 9.5, "_wandb": {"x": 1}})
    )
    (files / "wandb-metadata.json").write_text(json.dumps({"program": "train.py", "gpu": "x"}))
    rows = [{"_step": s, "loss": 1.0 / (1 + s), "acc": s / 40} for s in range(0, 31, 5)]
    (files / "wandb-history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i, step in enumerate((20, 10, 30)):
        path = files / "checkpoints" / f"model-step{step}.safetensors"
        save_file(_weights(step), str(path))
        os.utime(path, (1_000 + i, 1_000 + i))
    return run


def test_run_checkpoints_become_commits_in_step_order(coral, repo_path, tmp_path):
    run = _run_dir(tmp_path)
    result = coral("import-wandb", str(run), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_id"] == "a1b2c3d4" and data["kind"] == "run" and data["branch"] == "main"
    assert [c["step"] for c in data["commits"]] == [10, 20, 30]
    assert data["config_keys"] == ["batch_size", "lr", "optimizer"]
    with Repository(repo_path) as repo:
        log = repo.log()
        assert [c.commit_hash for c in reversed(log)] == [c["commit_hash"] for c in data["commits"]]
        for commit, step in zip(reversed(log), (10, 20, 30), strict=True):
            meta = commit.metadata
            assert meta["config"] == {
                "lr": 0.001,
                "batch_size": 32,
                "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
            }
            assert meta["wandb"]["run_id"] == "a1b2c3d4" and meta["wandb"]["step"] == step
            assert meta["wandb"]["run"] == {"program": "train.py"}
            stored = repo.get_all_weights(commit.commit_hash)
            for name, arr in _weights(step).items():
                assert stored[name].data.tobytes() == arr.tobytes()
        # the metrics logged at each checkpoint's step; the last one gets the summary
        assert log[2].metadata["metrics"] == {"loss": 1.0 / 11, "acc": 0.25}
        assert log[0].metadata["metrics"] == {"loss": 0.12, "acc": 0.97}
    steps = [c["step"] for c in json.loads(coral("checkpoints", "--json").stdout)]
    assert steps == [10, 20, 30]


def test_import_again_commits_only_new_checkpoints(coral, repo_path, tmp_path):
    run = _run_dir(tmp_path)
    assert coral("import-wandb", str(run)).exit_code == 0
    assert_user_error(coral("import-wandb", str(run)), "already", "a1b2c3d4")

    save_file(_weights(40), str(run / "files" / "checkpoints" / "model-step40.safetensors"))
    result = coral("import-wandb", str(run))
    assert result.exit_code == 0, result.output
    assert "imported 1 checkpoint of W&B run a1b2c3d4 onto main" in result.stdout
    assert "already on main:" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    with Repository(repo_path) as repo:
        assert len(repo.log()) == 4
    # another branch takes the whole run again
    assert coral("import-wandb", str(run), "--branch", "again").exit_code == 0


def test_wandb_folder_torch_and_h5_checkpoints_and_artifacts(repo_path, tmp_path):
    run = _run_dir(tmp_path, "zz9")
    ckpt_dir = run / "files" / "checkpoints"
    for p in ckpt_dir.iterdir():
        p.unlink()
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    torch.save(
        {"model_state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": 5},
        ckpt_dir / "ckpt-5.pt",
    )
    with h5py.File(ckpt_dir / "model-step25.weights.h5", "w") as f:  # Keras 3 layout
        f["layers/dense/vars/0"] = np.ones((3, 2), np.float32)
        f["layers/dense/vars/1"] = np.zeros(2, np.float32)
        f["optimizer/vars/0"] = np.array(7, np.int64)

    with Repository(repo_path) as repo:
        result = import_wandb(repo, tmp_path / "wandb")  # the wandb/ folder: its one run
        assert [(c.file, c.step) for c in result.commits] == [
            ("checkpoints/ckpt-5.pt", 5),
            ("checkpoints/model-step25.weights.h5", 25),
        ]
        first, second = (repo.read_commit(c.commit_hash) for c in result.commits)
        assert first.metadata["import"]["format"] == "pytorch"
        assert first.metadata["training"]["step"] == 5
        assert "__optim__/0/state/0/momentum_buffer" in repo.list_weights(first.commit_hash)
        assert first.metadata["metrics"] == {"loss": 1.0 / 6, "acc": 5 / 40}
        assert sorted(repo.list_weights(second.commit_hash)) == [
            "__optim__/vars/0",
            "layers/dense/vars/0",
            "layers/dense/vars/1",
        ]

        artifact = tmp_path / "artifacts" / "model-zz9:v3"
        artifact.mkdir(parents=True)
        for i, name in enumerate(("best.safetensors", "last.safetensors")):
            save_file(_weights(i), str(artifact / name))
            os.utime(artifact / name, (2_000 - i, 2_000 - i))  # "last" is older: mtime order
        result = import_wandb(repo, artifact, branch="artifact")
        assert result.kind == "artifact" and result.run_id == "model-zz9:v3"
        assert [c.file for c in result.commits] == ["last.safetensors", "best.safetensors"]
        with pytest.raises(NothingToCommitError):
            import_wandb(repo, artifact, branch="artifact")


def test_real_offline_wandb_run(repo_path, tmp_path):
    """A run made by wandb itself (offline, no network), with the config and summary files a
    synced run has beside its saved checkpoints."""
    script = textwrap.dedent(
        """
        import os, sys, torch, wandb
        run = wandb.init(dir=sys.argv[1], project="p", mode="offline", config={"lr": 0.1})
        for step in range(2):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            path = os.path.join(run.dir, f"model-step{step}.pt")
            torch.save({"w": torch.full((2,), float(step))}, path)
            wandb.save(path, base_path=run.dir, policy="now")
        run.finish()
        """
    )
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_CODE="true")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("wandb did not finish offline")
    if proc.returncode != 0:
        pytest.skip(f"wandb could not make an offline run: {proc.stderr[-300:]}")
    latest = tmp_path / "wandb" / "latest-run"
    (latest / "files" / "config.yaml").write_text("lr:\n  desc: null\n  value: 0.1\n")
    (latest / "files" / "wandb-summary.json").write_text('{"loss": 0.5, "_step": 1}')
    found = read_wandb_run(tmp_path / "wandb")
    assert [c.step for c in found.checkpoints] == [0, 1]
    proc = run_coral(repo_path, "import-wandb", str(tmp_path / "wandb"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["run_id"] == found.run_id and len(data["commits"]) == 2
    assert data["commits"][-1]["metrics"] == {"loss": 0.5}
    with Repository(repo_path) as repo:
        assert repo.get_commit("HEAD").metadata["config"] == {"lr": 0.1}
        assert repo.get_weight("w").data.tolist() == [1.0, 1.0]


def test_mistakes_get_one_error_and_a_hint(coral, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    assert_user_error(coral("import-wandb", str(tmp_path / "file.txt")), "not a directory")
    assert_user_error(coral("import-wandb", str(tmp_path / "nowhere")), "nowhere")
    empty = tmp_path / "empty"
    (empty / "files").mkdir(parents=True)
    assert_user_error(coral("import-wandb", str(empty)), "no checkpoint files")
    two = tmp_path / "two"
    _run_dir(two, "one1")
    _run_dir(two, "two2")
    assert_user_error(coral("import-wandb", str(two / "wandb")), "holds 2 runs")
    bad = _run_dir(tmp_path / "bad")
    (bad / "files" / "config.yaml").write_text("lr: [unclosed\n")
    assert_user_error(coral("import-wandb", str(bad)), "not valid YAML")
    with pytest.raises(CoralError):
        read_wandb_run(empty)


def test_import_wandb_as_a_real_process(repo_path, tmp_path):
    run = _run_dir(tmp_path)
    proc = run_coral(repo_path, "import-wandb", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "imported 3 checkpoints of W&B run a1b2c3d4 onto main" in proc.stdout
    assert "config: 3 keys (batch_size, lr, optimizer)" in proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())


def _sharded_checkpoint(folder: Path, step: int) -> dict[str, np.ndarray]:
    """A Hugging Face sharded checkpoint in `folder`: two safetensors shards and the index."""
    weights = {**_weights(step), "head.weight": np.full((2, 4), step, np.float32)}
    folder.mkdir(parents=True)
    shards = {"model-00001-of-00002.safetensors": ["fc.weight", "fc.bias"]}
    shards["model-00002-of-00002.safetensors"] = ["head.weight"]
    weight_map = {}
    for shard, names in shards.items():
        save_file({n: weights[n] for n in names}, str(folder / shard))
        weight_map.update(dict.fromkeys(names, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
    )
    return weights


def test_a_sharded_checkpoint_is_one_commit(coral, repo_path, tmp_path):
    """HF Trainer's `checkpoint-N/` folders of shards: one commit per folder, its step from
    the folder's name, every tensor of every shard in it (before, one commit per shard)."""
    run = tmp_path / "artifact"
    expected = {step: _sharded_checkpoint(run / f"checkpoint-{step}", step) for step in (200, 100)}
    result = coral("import-wandb", str(run), "--json")
    assert result.exit_code == 0, result.output
    commits = json.loads(result.stdout)["commits"]
    assert [(c["step"], c["file"]) for c in commits] == [
        (100, "checkpoint-100/model.safetensors.index.json"),
        (200, "checkpoint-200/model.safetensors.index.json"),
    ]
    with Repository(repo_path) as repo:
        for c in commits:
            stored = repo.get_all_weights(c["commit_hash"])
            assert set(stored) == set(expected[c["step"]])
            for name, arr in expected[c["step"]].items():
                assert stored[name].data.tobytes() == arr.tobytes()
            meta = repo.read_commit(c["commit_hash"]).metadata
            assert meta["import"]["format"] == "sharded"

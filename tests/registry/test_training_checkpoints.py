"""Publishing a training checkpoint: the model's weights only, tied weights under every name the
model's state dict has; optimizer, scheduler and RNG tensors only with include_training_state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.cli.main import main
from coral.integrations.formats import load_weights
from coral.integrations.pytorch import is_reserved_name
from coral.registry import ModelPublisher
from coral.registry.snapshot import CommitSnapshot
from coral.version_control.repository import Repository
from tests.servers.hub_server import HubServer


def _by_hand(repo: Repository) -> dict[str, np.ndarray]:
    """Commit what the PyTorch integration writes for a model with `head.weight` tied to
    `embed.weight` (stored once, recorded as an alias), without needing torch."""
    rng = np.random.default_rng(0)
    model: dict[str, np.ndarray] = {
        "embed.weight": rng.standard_normal((6, 4)).astype(np.float32),
        "norm.num_batches_tracked": np.array(3, np.int64),
    }
    training: dict[str, np.ndarray] = {
        "__optim__/0/state/0/exp_avg": rng.standard_normal((6, 4)).astype(np.float32),
        "__sched__/0/base_lrs/0": np.array([0.1], np.float64),
        "__rng__/numpy/state": np.arange(8, dtype=np.uint32),
        "__extra__/user/ema": np.ones(3, np.float32),
    }
    repo.add_all_weights({**model, **training})
    repo.commit(
        "checkpoint step 3",
        metadata={"training": {"format": 1, "step": 3, "aliases": {"head.weight": "embed.weight"}}},
    )
    return {**model, "head.weight": model["embed.weight"]}


def test_snapshot_holds_model_weights_unless_asked(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "repo") as repo:
        expected = _by_hand(repo)
        snap = CommitSnapshot.load(repo, "HEAD")
        assert sorted(snap.weights) == sorted(expected)
        assert snap.weights["head.weight"] is snap.weights["embed.weight"]
        assert snap.weight_count == 3
        full = CommitSnapshot.load(repo, "HEAD", include_training_state=True)
        assert sorted(full.weights) == sorted(repo.get_all_weights("HEAD"))
        assert "head.weight" not in full.weights


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_publish_local_leaves_training_state_out(tmp_path: Path, fmt: str) -> None:
    with Repository.init(tmp_path / "repo") as repo:
        expected = _by_hand(repo)
        publisher = ModelPublisher(repo)
        result = publisher.publish_local(tmp_path / "model", format=fmt)
        assert result.success, result.error
        assert result.metadata["weight_count"] == len(expected)
        loaded = load_weights(tmp_path / "model" / f"model.{fmt}")
        assert sorted(loaded) == sorted(expected)
        for name, array in expected.items():
            assert loaded[name].tobytes() == array.tobytes()
        meta = json.loads((tmp_path / "model" / "coral_metadata.json").read_text())
        assert meta["weight_count"] == len(expected)

        result = publisher.publish_local(
            tmp_path / "resume", format=fmt, include_training_state=True
        )
        assert result.success, result.error
        loaded = load_weights(tmp_path / "resume" / f"model.{fmt}")
        assert sorted(loaded) == sorted(repo.get_all_weights("HEAD"))


def test_cli_publish_local_include_training_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Repository.init(tmp_path / "repo") as repo:
        expected = _by_hand(repo)
    base = ["-C", str(tmp_path / "repo"), "publish", "local"]
    assert main([*base, str(tmp_path / "model")]) == 0
    assert sorted(load_weights(tmp_path / "model" / "model.safetensors")) == sorted(expected)
    assert main([*base, str(tmp_path / "all"), "--include-training-state"]) == 0
    names = load_weights(tmp_path / "all" / "model.safetensors")
    assert sum(map(is_reserved_name, names)) == 4 and "head.weight" not in names
    capsys.readouterr()


@pytest.mark.server
def test_publish_huggingface_leaves_training_state_out(tmp_path: Path, hub: HubServer) -> None:
    from huggingface_hub import HfApi

    from tests.registry.conftest import HUB_TOKEN

    with Repository.init(tmp_path / "repo") as repo:
        expected = _by_hand(repo)
        publisher = ModelPublisher(repo)
        api = HfApi(endpoint=hub.url, token=HUB_TOKEN)
        for repo_id, include in (("my-org/model", False), ("my-org/resume", True)):
            result = publisher.publish_huggingface(repo_id, include_training_state=include)
            assert result.success, result.error
            folder = api.snapshot_download(repo_id, cache_dir=tmp_path / "dl")
            names = sorted(load_weights(Path(folder) / "model.safetensors"))
            want = repo.get_all_weights("HEAD") if include else expected
            assert names == sorted(want)


# -- a real PyTorch checkpoint ----------------------------------------------------------------
@pytest.fixture
def torch_checkpoint(tmp_path: Path) -> Iterator[tuple[Repository, Any]]:
    """A repository whose HEAD is a PyTorchIntegration checkpoint of TinyLM (tied embedding and
    head, BatchNorm buffers) with AdamW and StepLR state after two steps."""
    pytest.importorskip("torch")
    from coral.integrations.pytorch import PyTorchIntegration
    from coral.training import TrainingState
    from tests.training.torch_models import make_run, train_step

    model, opt, sched = make_run()
    for _ in range(2):
        train_step(model, opt, sched)
    repo = Repository.init(tmp_path / "repo")
    PyTorchIntegration(model, opt, sched).save(repo, "step 2", TrainingState.capture(step=2))
    yield repo, model
    repo.close()


def test_torch_checkpoint_publishes_as_a_loadable_state_dict(
    torch_checkpoint: tuple[Repository, Any], tmp_path: Path
) -> None:
    import torch

    from tests.training.torch_models import make_run

    repo, model = torch_checkpoint
    assert any(is_reserved_name(n) for n in repo.get_all_weights("HEAD"))
    result = ModelPublisher(repo).publish_local(tmp_path / "pt", format="pt")
    assert result.success, result.error
    state = torch.load(tmp_path / "pt" / "model.pt", weights_only=True)
    assert sorted(state) == sorted(model.state_dict())  # head.weight back, no __optim__/...
    fresh, _, _ = make_run(seed=1)
    fresh.load_state_dict(state, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name

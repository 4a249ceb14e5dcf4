"""`coral import` / `coral export` round-trip checkpoints bit-exact through a repository."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.integrations.formats import load_checkpoint, load_weights, save_weights
from coral.version_control.repository import Repository
from tests.cli.conftest import Invoke, assert_user_error, weights


def mixed_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "emb": rng.standard_normal((32, 8)).astype(ml_dtypes.bfloat16),
        "proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "proj.scale": np.array(0.5, np.float16),
        "steps": np.array([1, 2, 3], np.int64),
        "mask": np.array([True, False]),
        "fp8": rng.standard_normal(5).astype(ml_dtypes.float8_e4m3fn),
        "none": np.zeros((0, 2), np.float32),
    }


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )


@pytest.mark.parametrize("source", ["m.safetensors", "m.pt", "m.npz", "hf"])
@pytest.mark.parametrize("target", ["out.safetensors", "out.pt", "out.npz", "outdir"])
def test_import_export_round_trip(
    tmp_path: Path, repo_path: Path, coral: Invoke, source: str, target: str
) -> None:
    if ".pt" in (Path(source).suffix, Path(target).suffix):
        pytest.importorskip("torch")
    w = mixed_weights()
    save_weights(w, tmp_path / source)
    result = coral("import", str(tmp_path / source), "--replace", "-m", "imported", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tensors"] == len(w)
    out = coral("export", "HEAD", str(tmp_path / target))
    assert out.exit_code == 0, out.output
    assert same(load_weights(tmp_path / target), w)


def test_import_commit_records_source_and_config(
    tmp_path: Path, repo_path: Path, coral: Invoke
) -> None:
    config = {"model_type": "tiny", "hidden_size": 8}
    save_weights(mixed_weights(), tmp_path / "hf", format="hf", metadata={"config": config})
    result = coral("import", str(tmp_path / "hf"), "--metric", "accuracy=0.8")
    assert result.exit_code == 0, result.output
    assert "imported 7 tensors" in result.stdout and f"Import {tmp_path / 'hf'}" in result.stdout
    with Repository(repo_path) as repo:
        meta = repo.get_commit("HEAD").metadata
    assert meta["import"]["format"] == "hf" and meta["import"]["metadata"]["config"] == config
    assert meta["metrics"] == {"accuracy": 0.8}
    # an HF export of that commit carries config.json again, sharded like HF when asked
    out = coral(
        "export", "HEAD", str(tmp_path / "again"), "--format", "hf", "--max-shard-size", "400B"
    )
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == config
    assert (tmp_path / "again" / "model.safetensors.index.json").exists()
    ckpt = load_checkpoint(tmp_path / "again")
    assert ckpt.metadata["config"] == config and ckpt.metadata["coral_ref"] == "HEAD"
    again = coral("import", str(tmp_path / "hf"))
    assert_user_error(again, "nothing to commit", "--replace")
    assert "--allow-empty" not in again.stderr  # `coral import` has no such option
    assert coral("import", str(tmp_path / "hf"), "--replace").exit_code == 0  # drops 3 tensors
    again = coral("import", str(tmp_path / "hf"), "--replace")
    assert_user_error(again, "nothing to commit", "coral show HEAD")
    assert "--replace" not in again.stderr


def test_export_layers_and_formats(tmp_path: Path, coral: Invoke) -> None:
    out = coral("export", "v1", str(tmp_path / "enc.npz"), "--layers", "encoder.*", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["tensors"] == 2
    assert sorted(load_weights(tmp_path / "enc.npz")) == ["encoder.bias", "encoder.weight"]
    out = coral("export", "HEAD", str(tmp_path / "noext"), "--format", "npz")
    assert out.exit_code == 0, out.output
    assert "encoder.weight" in np.load(tmp_path / "noext", allow_pickle=False).files
    assert_user_error(coral("export", "HEAD", str(tmp_path / "x"), "--format", "onnx"), "onnx")
    assert_user_error(coral("export", "HEAD", str(tmp_path / "x.npz"), "--layers", "zzz*"), "zzz")
    assert_user_error(
        coral("export", "HEAD", str(tmp_path / "x.npz"), "--max-shard-size", "1GB"), "shard"
    )
    assert_user_error(
        coral("export", "HEAD", str(tmp_path / "x.safetensors"), "--max-shard-size", "lots"),
        "bad size",
    )


def test_export_of_a_training_checkpoint(tmp_path: Path, repo_path: Path, coral: Invoke) -> None:
    """Only the model's weights (tied names restored) unless --include-training-state."""
    model = weights(2)
    with Repository(repo_path) as repo:
        repo.add_all_weights(
            {
                **model,
                "__optim__/0/state/0/exp_avg": np.ones(3, np.float32),
                "__rng__/numpy/state": np.arange(4, dtype=np.uint32),
            }
        )
        repo.commit("ckpt", metadata={"training": {"aliases": {"head.tied": "encoder.weight"}}})
        stored = sorted(repo.get_all_weights("HEAD"))
    out = coral("export", "HEAD", str(tmp_path / "m.safetensors"))
    assert out.exit_code == 0, out.output
    loaded = load_weights(tmp_path / "m.safetensors")
    assert sorted(loaded) == sorted([*model, "head.tied"])
    assert loaded["head.tied"].tobytes() == model["encoder.weight"].tobytes()
    out = coral("export", "HEAD", str(tmp_path / "head.npz"), "--layers", "head.*")
    assert out.exit_code == 0, out.output
    assert sorted(load_weights(tmp_path / "head.npz")) == ["head.tied", "head.weight"]
    out = coral("export", "HEAD", str(tmp_path / "all.npz"), "--include-training-state")
    assert out.exit_code == 0, out.output
    assert sorted(load_weights(tmp_path / "all.npz")) == stored
    assert_user_error(
        coral("export", "HEAD", str(tmp_path / "o.npz"), "--layers", "__optim__/*"),
        "no model tensors",
        "--include-training-state",
    )
    out = coral(
        "export", "HEAD", str(tmp_path / "o.npz"), "-l", "__optim__/*", "--include-training-state"
    )
    assert out.exit_code == 0, out.output
    assert sorted(load_weights(tmp_path / "o.npz")) == ["__optim__/0/state/0/exp_avg"]


def test_import_refuses_malicious_pickle(tmp_path: Path, coral: Invoke) -> None:
    torch = pytest.importorskip("torch")
    import os

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w": torch.ones(2), "x": Evil()}, tmp_path / "evil.pt")
    assert_user_error(coral("import", str(tmp_path / "evil.pt")), "refused")
    assert not marker.exists()


def test_truncated_checkpoint_is_a_user_error(tmp_path: Path, coral: Invoke) -> None:
    save_weights({"w": np.ones(100, np.float32)}, tmp_path / "t.safetensors")
    raw = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(raw[:-10])
    assert_user_error(coral("add", str(tmp_path / "t.safetensors")), "truncated")

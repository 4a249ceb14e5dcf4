"""`ModelPublisher.publish_local`: every format round-trips bit-exact, with coral_metadata.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import coral
from coral.integrations.formats import load_weights
from coral.registry import ModelPublisher, PublishResult, RegistryType
from coral.version_control.repository import Repository
from tests.registry.conftest import assert_bit_exact, special_weights


def test_spec_local_export_examples(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    publisher = ModelPublisher(repo)

    # fmt: off

    # -- chapter 8.2, unchanged --
    # Export as safetensors (recommended)
    result = publisher.publish_local(
        output_path="./exports/model-v1.0",
        commit_ref="v1.0",
        format="safetensors",
        include_metadata=True
    )

    # Export as PyTorch checkpoint
    result = publisher.publish_local(
        output_path="./exports/model-v1.0-pt",
        format="pt",  # PyTorch format
        include_metadata=True
    )

    # Export as NumPy arrays
    result = publisher.publish_local(
        output_path="./exports/model-v1.0-numpy",
        format="npz",  # NumPy compressed format
        include_metadata=True
    )
    # -- end --
    # fmt: on

    assert isinstance(result, PublishResult) and result.success, result.error
    assert result.registry is RegistryType.LOCAL
    exports = tmp_path / "exports"
    assert (exports / "model-v1.0" / "model.safetensors").is_file()
    assert (exports / "model-v1.0-pt" / "model.pt").is_file()
    assert (exports / "model-v1.0-numpy" / "model.npz").is_file()
    assert all(
        (exports / d / "coral_metadata.json").is_file()
        for d in ("model-v1.0", "model-v1.0-pt", "model-v1.0-numpy")
    )


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "npz"])
def test_round_trip_bit_exact(repo: Repository, tmp_path: Path, fmt: str) -> None:
    result = ModelPublisher(repo).publish_local(tmp_path / "out", commit_ref="HEAD~1", format=fmt)
    assert result.success, result.error
    assert result.version == repo.resolve_ref("HEAD~1")
    assert result.url == (tmp_path / "out").as_uri()
    assert result.metadata["weight_count"] == len(special_weights(1))
    loaded = load_weights(tmp_path / "out" / f"model.{fmt}")
    assert_bit_exact(loaded, special_weights(1))


def test_pt_export_is_a_plain_torch_state_dict(repo: Repository, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ModelPublisher(repo).publish_local(tmp_path / "pt", format="pt")
    state = torch.load(tmp_path / "pt" / "model.pt", weights_only=True)
    expected = special_weights(2)
    assert sorted(state) == sorted(expected)
    assert state["decoder.weight"].dtype == torch.bfloat16
    assert state["decoder.scale"].dtype == torch.float8_e4m3fn
    assert state["decoder.scale_e5m2"].dtype == torch.float8_e5m2
    assert state["encoder.bias"].dtype == torch.float16
    assert state["mask"].dtype == torch.bool
    assert state["step"].shape == ()
    for name, want in expected.items():
        got = (
            state[name].reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
            if want.nbytes
            else b""
        )
        assert got == want.tobytes(), name


def test_sharded_safetensors_with_hf_index(repo: Repository, tmp_path: Path) -> None:
    publisher = ModelPublisher(repo, max_shard_bytes=256)
    result = publisher.publish_local(tmp_path / "sharded", commit_ref="v1.0")
    assert result.success, result.error
    files = result.metadata["files"]
    shards = [f for f in files if f.startswith("model-") and f.endswith(".safetensors")]
    assert len(shards) > 1
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(special_weights(2))
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in special_weights(2).values())
    assert_bit_exact(
        load_weights(tmp_path / "sharded" / "model.safetensors.index.json"), special_weights(2)
    )


def test_safetensors_is_readable_by_the_safetensors_library(
    repo: Repository, tmp_path: Path
) -> None:
    from safetensors import safe_open

    ModelPublisher(repo).publish_local(tmp_path / "st")
    with safe_open(str(tmp_path / "st" / "model.safetensors"), framework="np") as f:
        assert f.metadata()["format"] == "pt"  # what transformers checks
        assert f.metadata()["coral_commit"] == repo.resolve_ref("HEAD")
        np.testing.assert_array_equal(f.get_tensor("ids"), special_weights(2)["ids"])


def test_coral_metadata_json(repo: Repository, tmp_path: Path) -> None:
    result = ModelPublisher(repo).publish_local(tmp_path / "meta", commit_ref="v1.0")
    meta = json.loads((tmp_path / "meta" / "coral_metadata.json").read_text())
    commit = repo.get_commit("v1.0")
    assert meta["commit"] == commit.commit_hash == result.metadata["commit_hash"]
    assert meta["commit_ref"] == "v1.0"
    assert meta["branch"] == "main"
    assert meta["tags"] == ["v1.0"]
    assert meta["author"] == "trainer@example.com"
    assert meta["message"] == "training step 2"
    assert meta["metrics"] == {"loss": pytest.approx(1 / 3), "val_accuracy": 0.91}
    assert meta["coral_version"] == coral.__version__
    assert meta["parents"] == commit.parent_hashes
    assert meta["weight_count"] == len(special_weights(2))
    assert meta["files"] == ["model.safetensors", "coral_metadata.json"]


def test_without_metadata(repo: Repository, tmp_path: Path) -> None:
    result = ModelPublisher(repo).publish_local(
        tmp_path / "bare", format="npz", include_metadata=False
    )
    assert result.success
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["model.npz"]


def test_reexport_replaces_only_an_earlier_export(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert ModelPublisher(repo, max_shard_bytes=256).publish_local(out).success
    assert len(list(out.glob("model-*.safetensors"))) > 1
    result = ModelPublisher(repo).publish_local(out, commit_ref="HEAD~2", force=True)
    assert result.success, result.error
    assert sorted(p.name for p in out.iterdir()) == ["coral_metadata.json", "model.safetensors"]
    assert_bit_exact(load_weights(out / "model.safetensors"), special_weights(0))


def test_refuses_a_folder_with_other_files(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = ModelPublisher(repo).publish_local(out)
    assert not result.success
    assert "notes.txt" in (result.error or "")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".busy")]  # no staging left


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"commit_ref": "no-such-ref"}, "no-such-ref"),
        ({"format": "onnx"}, "onnx"),
    ],
)
def test_failures_are_results(
    repo: Repository, tmp_path: Path, kwargs: dict, expected: str
) -> None:
    result = ModelPublisher(repo).publish_local(tmp_path / "x", **kwargs)
    assert result.success is False
    assert result.registry is RegistryType.LOCAL
    assert expected in (result.error or "")
    assert result.version is None and result.url is None


def test_dtype_safetensors_cannot_hold_fails_cleanly_but_npz_keeps_it(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "c")
    weights = {"z": (np.arange(4) + 1j).astype(np.complex128)}
    repo.add_all_weights(weights)
    repo.commit("complex")
    publisher = ModelPublisher(repo)
    failed = publisher.publish_local(tmp_path / "st")
    assert not failed.success and "complex128" in (failed.error or "")
    ok = publisher.publish_local(tmp_path / "np", format="npz")
    assert ok.success, ok.error
    assert_bit_exact(load_weights(tmp_path / "np" / "model.npz"), weights)
    repo.close()


def test_publish_local_writes_the_commits_model_files(tmp_path) -> None:
    """A published folder is the whole model: config.json and tokenizer files come along."""
    import numpy as np

    from coral.registry import ModelPublisher
    from coral.version_control.repository import Repository

    repo = Repository.init(tmp_path / "repo")
    repo.add_weight("w", np.ones(4, np.float32))
    repo.add_files({"config.json": b'{"model_type": "toy"}', "tokenizer/vocab.txt": b"a\nb\n"})
    repo.commit("whole model")
    result = ModelPublisher(repo).publish_local(tmp_path / "out", "HEAD")
    assert (tmp_path / "out" / "config.json").read_bytes() == b'{"model_type": "toy"}'
    assert (tmp_path / "out" / "tokenizer" / "vocab.txt").read_bytes() == b"a\nb\n"
    assert result.success
    again = ModelPublisher(repo).publish_local(tmp_path / "out", "HEAD", force=True)
    assert again.success, again.error
    repo.close()

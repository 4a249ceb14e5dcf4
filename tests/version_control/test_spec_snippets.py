"""The Repository calls of the book's chapter 8 snippets, run as written (§8.1, §8.3, §8.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral.core.dedup_stats import DeduplicationStats
from coral.storage.base import WeightStore
from coral.version_control.repository import Repository


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def extract_weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_8_1_experiment_workflow_repo_calls(workdir: Path) -> None:
    torch = pytest.importorskip("torch")
    Repository.init("./my-model").close()
    # --- from §8.1 "ExperimentTracker Usage" ---
    repo = Repository("./my-model")
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model_weights = extract_weights(model)
    repo.add_all_weights(model_weights)
    commit_hash = repo.commit("Completed GPT-2 fine-tuning", author="researcher@example.com")
    assert len(commit_hash) == 64
    assert repo.get_commit(commit_hash).author == "researcher@example.com"
    # --- from §8.1 "Complete Experiment Workflow Example" (training loop, repo calls only) ---
    best_val_loss = float("inf")
    val_losses = [0.9, 0.7, 0.8, 0.6, 0.65, 0.66, 0.67]
    checkpoints = []
    patience_counter = 0
    for epoch, val_loss in enumerate(val_losses):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)
        if val_loss < best_val_loss:
            best_val_loss = val_loss
            patience_counter = 0
            model_weights = extract_weights(model)
            repo.add_all_weights(model_weights)
            commit_hash = repo.commit(
                f"Epoch {epoch}: val_loss={val_loss:.4f}", author="training-script@example.com"
            )
            checkpoints.append(commit_hash)
        else:
            patience_counter += 1
            if patience_counter >= 3:
                break
    assert len(checkpoints) == 3
    assert [c.message for c in repo.log(max_commits=3)] == [
        "Epoch 3: val_loss=0.6000",
        "Epoch 1: val_loss=0.7000",
        "Epoch 0: val_loss=0.9000",
    ]
    # The book then calls repo.commit("Final model checkpoint") with nothing new staged: the
    # API records that commit (the CLI would refuse without --allow-empty).
    final_commit = repo.commit("Final model checkpoint", author="training-script@example.com")
    assert repo.get_commit(final_commit).parents == [checkpoints[-1]]
    restored = repo.get_all_weights(checkpoints[-1])
    assert set(restored) == set(model.state_dict())
    repo.close()


def test_8_3_remote_workflow_repo_calls(workdir: Path) -> None:
    Repository.init("./training-workspace").close()
    # --- from §8.3 "Workflow 1" ---
    repo = Repository("./training-workspace")
    remotes_file = repo.coral_dir / "remotes.json"
    assert remotes_file.parent.is_dir()
    rng = np.random.default_rng(0)
    weights = {"fc.weight": rng.standard_normal((4, 4)).astype(np.float32)}
    for epoch in range(3):
        weights = {"fc.weight": weights["fc.weight"] + 0.01}
        repo.add_all_weights(weights)
        commit_hash = repo.commit(f"Epoch {epoch}", author="trainer")
        assert repo.resolve_ref("HEAD") == commit_hash
    assert isinstance(repo.store, WeightStore)
    assert len(repo.store.list()) == 3
    # --- from §8.3 "Workflow 2": load the latest weights ---
    latest_weights = repo.get_all_weights("HEAD")
    np.testing.assert_array_equal(latest_weights["fc.weight"].data, weights["fc.weight"])
    repo.close()


def test_8_4_visualization_repo_calls(workdir: Path) -> None:
    repo = Repository.init("./viz")
    rng = np.random.default_rng(1)
    base = {f"layer{i}": rng.standard_normal((32, 32)).astype(np.float32) for i in range(3)}
    repo.add_all_weights(base)
    repo.commit("pretrained")
    repo.tag_version("base-model")
    repo.tag_version("pretrained-base")
    tuned = dict(base)
    tuned["layer2"] = base["layer2"] * 1.01
    repo.add_all_weights(tuned)
    repo.commit("finetune")
    repo.tag_version("finetuned-v1")
    # --- from §8.4 ---
    base_weights = repo.get_all_weights("base-model")
    finetuned_weights = repo.get_all_weights("finetuned-v1")
    assert base_weights.keys() == finetuned_weights.keys()
    weights = [weight for name, weight in repo.get_all_weights().items()]
    assert len(weights) == 3 and all(w.name.startswith("layer") for w in weights)
    stats = repo.deduplicator.get_stats()
    assert isinstance(stats, DeduplicationStats)
    assert stats.distinct_weights == 4 and stats.duplicate_weights == 2
    assert stats.unique_weights + stats.similar_weights + stats.duplicate_weights == 6
    assert stats.compression_ratio > 1 and stats.bytes_saved > 0
    original = repo.get_all_weights("pretrained-base")
    assert next(iter(original.values())).shape == (32, 32)
    repo.close()

"""Small repositories for the browser's tests: branches, a merge, tags, metrics, training state,
model files, an experiment, and (for paging) a long straight history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coral.version_control.repository import Repository

FAST = "\n[storage]\nfsync = false\n"  # test repositories need not survive a power cut


def fast_repo(path: Path) -> Repository:
    repo = Repository.init(path)
    repo.config_path.write_text(repo.config_path.read_text() + FAST)
    repo.close()
    return Repository(path, shared_staging=True)


def small_history(path: Path) -> Repository:
    """main: base -> tuned (metrics, training state, config.json) -> merge of `side`; tag v1."""
    repo = fast_repo(path)
    rng = np.random.default_rng(0)
    base = {
        f"encoder.layer.{i}.{m}.weight": rng.standard_normal((8, 8)).astype(np.float32)
        for i in range(2)
        for m in ("attn", "mlp")
    }
    base["head.bias"] = np.zeros(4, np.float32)
    repo.add_all_weights(base)
    repo.add_files({"config.json": b'{"hidden_size": 8}\n'})
    repo.commit("base model", metadata={"metrics": {"val_loss": 0.9}})
    repo.create_branch("side")
    tuned = dict(base)
    tuned["encoder.layer.1.mlp.weight"] = base["encoder.layer.1.mlp.weight"] * 1.5
    tuned["head.bias"] = np.ones(4, np.float32)
    tuned["__optim__/state.0.exp_avg"] = np.ones(4, np.float32)
    repo.add_all_weights(tuned)
    repo.add_files({"config.json": b'{"hidden_size": 8, "tuned": true}\n'})
    repo.commit("fine-tune the head", metadata={"metrics": {"val_loss": 0.41, "acc": 0.93}})
    repo.tag_version("v1", "first release", metrics={"val_loss": 0.41})
    repo.checkout("side")
    repo.add_weight("adapter.weight", np.full((2, 2), 3.0, np.float32))
    repo.commit("add an adapter")
    repo.checkout("main")
    repo.merge("side", message="merge the adapter")
    return repo


def long_history(path: Path, commits: int) -> Repository:
    """`commits` commits in a line, one tensor nudged each time (a metric on each)."""
    repo = fast_repo(path)
    w = np.zeros(4, np.float32)
    for i in range(commits):
        w = w + 1
        repo.add_all_weights({"w": w, "b": np.zeros(2, np.float32)} if i == 0 else {"w": w})
        repo.commit(f"step {i}", metadata={"metrics": {"loss": 1.0 / (i + 1)}})
    return repo

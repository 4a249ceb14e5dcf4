"""A repository with everything the dashboard shows (used by tests/web and by the porcelain
tests of what the dashboard reads).

A block-structured model (4 layers × 3 modules, an embedding, a head) and an optimizer moment
(training state); 8 commits on `main` with metrics, a branch `wide` that diverges and is merged
back (a real merge in the graph), a tag, a model file, one experiment with a loss curve, a push
to a `file://` remote and a local publish; and a 1 000-tensor commit on branch `big`, for paging.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral.version_control.repository import Repository

LAYERS, MODULES = 4, ("attn.q.weight", "attn.k.weight", "mlp.weight")
BIG_TENSORS = 1000


def model(step: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    base = np.random.default_rng(1)
    w = {
        f"encoder.layer.{i}.{m}": base.standard_normal((16, 16)).astype(np.float32)
        for i in range(LAYERS)
        for m in MODULES
    }
    w["embed.weight"] = base.standard_normal((32, 16)).astype(np.float32)
    w["head.weight"] = base.standard_normal((4, 16)).astype(np.float32)
    for k, name in enumerate(sorted(w)):
        if k % 3 != 0:  # a third of the tensors stay frozen
            w[name] = w[name] + np.float32(1e-3 * step) * rng.standard_normal(w[name].shape).astype(
                np.float32
            )
    w["__optim__/state.0.exp_avg"] = rng.standard_normal((16, 16)).astype(np.float32)
    return w


@dataclass
class Built:
    path: Path
    main: list[str]  # commit hashes on main, oldest first (the merge last)
    merge: str
    wide: str  # the branch's commit
    big: str  # the 1 000-tensor commit (branch `big`)
    experiment: str


def build(root: Path) -> Built:
    from coral.experiments import ExperimentTracker
    from coral.registry import ModelPublisher
    from coral.remotes.config import RemoteConfig
    from coral.remotes.remote import RemoteManager

    rng = np.random.default_rng(0)
    path = root / "repo"
    repo = Repository.init(path)
    tracker = ExperimentTracker(repo)
    tracker.start("baseline", params={"lr": 0.01})
    hashes = []
    for step in range(8):
        for i in range(5):
            tracker.log("loss", 1.0 / (step * 5 + i + 1), step=step * 5 + i)
        repo.add_all_weights(model(step, rng))
        if step == 0:
            repo.add_files({"config.json": b'{"hidden": 16}'})
        hashes.append(
            repo.commit(
                f"epoch {step}", metadata={"metrics": {"loss": 1.0 / (step + 1), "acc": step / 8}}
            )
        )
        if step == 3:
            repo.create_branch("wide")
    tracker.end()
    repo.checkout("wide")
    w = model(3, rng)
    w["encoder.layer.0.mlp.weight"] = np.ones((16, 16), np.float32)
    w["adapter.weight"] = np.full((4, 4), 0.5, np.float32)
    repo.add_all_weights(w)
    wide = repo.commit("wide adapter")
    repo.checkout("main")
    merge = str(repo.merge("wide", strategy="theirs"))
    repo.tag_version("v1", description="first release", metrics={"loss": 0.1})
    # a 1 000-tensor model on its own branch
    repo.create_branch("big", hashes[0])
    repo.checkout("big")
    repo.add_all_weights(
        {f"block.{i}.weight": np.full(4, i, np.float32) for i in range(BIG_TENSORS)}
    )
    big = repo.commit("a thousand tensors")
    repo.checkout("main")
    # a push to a file:// remote and a publish
    manager = RemoteManager(repo.coral_dir / "remotes.json")
    manager.add(RemoteConfig.from_url("origin", (root / "remote").as_uri()))
    manager.get("origin").push(repo, branches=["main"])
    ModelPublisher(repo).publish_local(root / "export", "v1")
    experiment = tracker.list()[0].experiment_id
    tracker.close()
    repo.close()
    return Built(path, [*hashes, merge], merge, wide, big, experiment)

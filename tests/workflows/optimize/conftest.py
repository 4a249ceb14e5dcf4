"""Fixtures for the optimisation sessions: a small transformer-like history (an unchanged
embedding, drifting attention and MLP weights, a renamed copy for the similarity index, a
staged-then-dropped tensor for gc), built once and copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository

Invoke = Callable[..., Result]


def model(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    base = {
        "embed.weight": rng.standard_normal((256, 64)).astype(np.float32),
        "layers.0.attn.q_proj.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "layers.0.mlp.fc1.weight": rng.standard_normal((1536, 256)).astype(np.float32),
        "layers.0.mlp.fc1.bias": np.zeros(1536, np.float32),
        "layers.0.norm.weight": np.ones(64, np.float32),
        "head.weight": rng.standard_normal((8, 64)).astype(np.float32),
    }
    drift = np.random.default_rng(100 + step)
    out = dict(base)
    for name in ("layers.0.attn.q_proj.weight", "layers.0.mlp.fc1.weight", "head.weight"):
        noise = drift.standard_normal(base[name].shape).astype(np.float32) * np.float32(1e-3)
        out[name] = base[name] + noise * np.float32(step)
    out["layers.0.norm.weight"] = base["layers.0.norm.weight"] + np.float32(0.01 * step)
    return out


def build(path: Path) -> None:
    with Repository.init(path) as repo:
        for step in range(3):
            weights = model(step)
            if step == 2:  # a new name whose values are close to head.weight: a similar tensor
                weights["head_copy.weight"] = weights["head.weight"] + np.float32(1e-6)
            repo.add_all_weights(weights)
            repo.commit(f"step {step}")
        dropped = np.random.default_rng(9).standard_normal((32, 32)).astype(np.float32)
        repo.add_all_weights({"scratch.weight": dropped})
        repo.unstage("scratch.weight")  # stored, then unreferenced: gc would free it


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("optimize") / "repo"
    build(path)
    return path


@pytest.fixture
def repo_path(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built repository."""
    path = tmp_path / "repo"
    shutil.copytree(built, path)
    return path


@pytest.fixture
def coral(repo_path: Path) -> Invoke:
    """`coral -C REPO ARGS...` in-process."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["-C", str(repo_path), *args], env={"COLUMNS": "80"})

    return invoke


def snapshot(path: Path) -> dict[tuple[str, str], bytes]:
    """Every tensor of every commit, and of the store, as bytes: (commit or "store", name)."""
    out: dict[tuple[str, str], bytes] = {}
    with Repository(path) as repo:
        for commit in repo.iter_commits():
            for name, entry in repo.read_tree(commit.tree_id).entries.items():
                out[(commit.commit_hash, name)] = repo.load_entry(entry).data.tobytes()
        for tid in repo.store.list():
            out[("store", tid)] = repo.store.load(tid).data.tobytes()
    return out


def files(path: Path) -> dict[str, int]:
    """The object store's files and their sizes."""
    objects = path / ".coral" / "objects"
    return {str(f.relative_to(objects)): f.stat().st_size for f in objects.rglob("*.pack")}

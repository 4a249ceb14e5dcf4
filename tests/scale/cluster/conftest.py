"""Fixtures for the cluster sessions: a real Dask scheduler with two workers on 127.0.0.1
(`tests/servers/dask.py`), checkpoints of many small chunks, repositories, the CLI.

CORAL_TEST_CLUSTER_TENSORS sets how many 64 KiB tensors a checkpoint has (default 8, that is
128 chunks of 4 KiB: a few seconds of Dask tasks on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository
from tests.servers.dask import DaskCluster, dask_cluster

ROOT = Path(__file__).resolve().parents[3]
TENSORS = int(os.environ.get("CORAL_TEST_CLUSTER_TENSORS", "8"))
CHUNK_BYTES = 4096
Run = Callable[..., Result]
Proc = Callable[..., subprocess.CompletedProcess[str]]


def weights(step: int) -> dict[str, np.ndarray]:
    """TENSORS float32 tensors of 16 Ki elements; each step nudges every value a little."""
    rng = np.random.default_rng(0)
    base = {
        f"layer{i}.weight": rng.standard_normal(16384).astype(np.float32) for i in range(TENSORS)
    }
    noise = np.random.default_rng(step)
    return {
        k: v + np.float32(1e-3 * step) * noise.standard_normal(v.shape).astype(np.float32)
        for k, v in base.items()
    }


def same_tensors(a: Path, b: Path) -> bool:
    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(
        left[k].dtype == right[k].dtype and left[k].tobytes() == right[k].tobytes() for k in left
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    """A scheduler and two workers shared by the tests of a module (none kills them)."""
    with dask_cluster(2) as running:
        yield running


@pytest.fixture
def fresh_cluster() -> Iterator[DaskCluster]:
    """A scheduler and two workers of this test's own, to kill."""
    with dask_cluster(2) as running:
        yield running


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    """base.safetensors and tuned.safetensors (every tensor moved a little)."""
    folder = tmp_path / "models"
    folder.mkdir()
    paths = {}
    for name, step in (("base", 0), ("tuned", 1)):
        paths[name] = folder / f"{name}.safetensors"
        save_file(weights(step), str(paths[name]))
    return paths


def make_repo(path: Path, storage: str = "") -> Path:
    """A repository that cuts tensors into 4 KiB chunks and gives up on a cluster without
    workers after 3 seconds."""
    Repository.init(path).close()
    config = path / ".coral" / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f"\n[storage]\nchunk_bytes = {CHUNK_BYTES}\nworkers = 2\n{storage}"
        + "\n[cluster]\ntimeout = 3\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def coral(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`coral -C REPO ARGS...` in-process (env: extra environment variables)."""
    monkeypatch.delenv("CORAL_DASK_SCHEDULER", raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None, where: Path = repo) -> Result:
        return runner.invoke(app, ["-C", str(where), *args], env=env)

    return invoke


@pytest.fixture
def coral_proc(repo: Path) -> Proc:
    """The real `coral` program in a subprocess, run in the repository's folder."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ, COLUMNS="80", **(env or {}))
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", "coral.cli.main", *args],
            cwd=repo,
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run

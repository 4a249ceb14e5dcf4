"""Fixtures for the experiment-tracking tests: a repository, a tracker, a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coral.experiments import ExperimentTracker
from coral.version_control.repository import Repository


def weights(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {
        "layer.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "layer.bias": np.full(4, step, np.float32),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(tmp_path / "repo")
    yield r
    r.close()


@pytest.fixture
def tracker(repo: Repository) -> Iterator[ExperimentTracker]:
    t = ExperimentTracker(repo)
    yield t
    t.close()


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback, shared by the session's bridge tests."""
    from tests.servers.mlflow_server import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri

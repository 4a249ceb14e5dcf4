"""Fixtures for CLI tests: a small repository with history, and a runner for `coral`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository


def weights(step: int) -> dict[str, np.ndarray]:
    """A tiny model whose encoder drifts a little per step and whose bias never changes."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((16, 8)).astype(np.float32)
    return {
        "encoder.weight": base + np.float32(0.01 * step),
        "encoder.bias": np.zeros(8, np.float32),
        "head.weight": rng.standard_normal((4, 8)).astype(np.float32),
    }


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """A repository with two commits on main, a branch `feature` and a tag `v1`."""
    path = tmp_path / "repo"
    with Repository.init(path) as repo:
        repo.add_all_weights(weights(0))
        repo.commit("first", metadata={"metrics": {"loss": 1.0}})
        repo.create_branch("feature")
        repo.add_all_weights(weights(1))
        repo.commit("second", metadata={"metrics": {"loss": 0.5}})
        repo.tag_version("v1", description="good one", metrics={"accuracy": 0.9})
    return path


Invoke = Callable[..., Result]


@pytest.fixture
def coral(repo_path: Path) -> Invoke:
    """Run `coral -C REPO ARGS...` in-process; returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str, repo: Path | None = repo_path) -> Result:
        prefix = ["-C", str(repo)] if repo is not None else []
        return runner.invoke(app, [*prefix, *args])

    return invoke


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 1, an `error:` line and a `hint:` line on stderr, no traceback, nothing else."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr

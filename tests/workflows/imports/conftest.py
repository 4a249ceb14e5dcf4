"""Fixtures for the import workflows: an empty repository and `coral` run in-process or as a
real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository

Invoke = Callable[..., Result]


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """A fresh repository without commits."""
    path = tmp_path / "repo"
    Repository.init(path).close()
    return path


@pytest.fixture
def coral(repo_path: Path) -> Invoke:
    """Run `coral -C REPO ARGS...` in-process; returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["-C", str(repo_path), *args])

    return invoke


def run_coral(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`coral -C REPO ARGS...` as a real process, 80 columns wide."""
    env = dict(os.environ, COLUMNS="80")
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

"""Fixtures for the settings, profile, alias and `coral save` sessions: checkpoint files on
disk, an empty repository, the real CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error as assert_user_error
from tests.workflows.readme_model import readme_model as weights

ROOT = Path(__file__).resolve().parents[3]
Run = Callable[..., Result]
Proc = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    """base.safetensors and tuned.safetensors (head.weight changed)."""
    folder = tmp_path / "models"
    folder.mkdir()
    paths = {}
    for name, step in (("base", 0), ("tuned", 1)):
        paths[name] = folder / f"{name}.safetensors"
        save_file(weights(step), str(paths[name]))
    return paths


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository."""
    path = tmp_path / "repo"
    Repository.init(path).close()
    return path


@pytest.fixture
def coral(repo: Path) -> Run:
    """`coral -C REPO ARGS...` in-process (env: extra environment variables)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None, where: Path | None = repo) -> Result:
        prefix = ["-C", str(where)] if where is not None else []
        return runner.invoke(app, [*prefix, *args], env=env)

    return invoke


@pytest.fixture
def coral_proc(repo: Path) -> Proc:
    """The real `coral` program in a subprocess, run in the repository's folder."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path = repo):
        full = dict(os.environ, COLUMNS="80", **(env or {}))
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", "coral.cli.main", *args],
            cwd=cwd,
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture(autouse=True)
def _no_profile_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORAL_PROFILE", raising=False)

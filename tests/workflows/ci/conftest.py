"""Fixtures for the `coral ci` sessions: the README's base model (tag v1) and its fine-tune
on `main`, a copy of it holding NaN / infinity on branch `broken`, and `coral` run in-process
or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository
from tests.workflows.readme_model import readme_model as model

Invoke = Callable[..., Result]


def broken() -> dict[str, np.ndarray]:
    """The fine-tune with 3 NaN and 1 infinity in encoder.weight."""
    weights = model(1)
    enc = weights["encoder.weight"].copy()
    enc[0, :3] = np.nan
    enc[1, 0] = np.inf
    return dict(weights, **{"encoder.weight": enc})


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """main: base (tag v1), then the fine-tune (metrics loss 0.5); branch broken: NaN/inf."""
    path = tmp_path / "repo"
    with Repository.init(path) as repo:
        repo.add_all_weights(model(0))
        repo.commit("base", metadata={"metrics": {"loss": 1.0}})
        repo.tag_version("v1")
        repo.add_all_weights(model(1))
        repo.commit("tuned head", metadata={"metrics": {"loss": 0.5}})
        repo.create_branch("broken")
        repo.checkout("broken")
        repo.add_all_weights(broken())
        repo.commit("broken encoder")
        repo.checkout("main")
    return path


@pytest.fixture
def coral(repo_path: Path) -> Invoke:
    """`coral(ARGS...)`: `coral -C REPO ARGS...` in-process (`repo=None`: no -C)."""
    runner = CliRunner()

    def invoke(*args: str, repo: Path | str | None = repo_path) -> Result:
        prefix = ["-C", str(repo)] if repo is not None else []
        return runner.invoke(app, [*prefix, *args])

    return invoke


def run_coral(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`coral ARGS...` as a real process (the installed entry point's module)."""
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
        timeout=300,
        check=False,
    )


def ok(result: Result) -> str:
    """The stdout of a command that must succeed."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result.stdout


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 1, an `error:` line and a `hint:` line on stderr, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def write_files(folder: Path) -> dict[str, Path]:
    """Weight files for validate-files: clean, NaN/inf, an empty tensor, a .pt, junk."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "base": folder / "base.safetensors",
        "broken": folder / "broken.safetensors",
        "empty": folder / "empty.npz",
        "torch": folder / "model.pt",
        "junk": folder / "junk.pt",
    }
    save_file(model(0), str(files["base"]))
    save_file(broken(), str(files["broken"]))
    np.savez(files["empty"], a=np.zeros((0, 3), np.float32), b=np.ones(3, np.float32))
    torch.save({"w": torch.ones(4, 4), "b": torch.tensor([float("nan")])}, files["torch"])
    files["junk"].write_bytes(b"not a checkpoint at all")
    return files

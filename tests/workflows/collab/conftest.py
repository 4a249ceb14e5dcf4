"""Fixtures for the collaboration sessions: the README's base model and its fine-tune committed
on `main` and `tune`, and `coral` run in-process as a given user (CORAL_USER)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app

Invoke = Callable[..., Result]


def model(step: int) -> dict[str, np.ndarray]:
    """The README fixture's model; `step` > 0 fine-tunes head.weight only."""
    rng = np.random.default_rng(0)
    base = {
        "encoder.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "encoder.bias": np.zeros(64, np.float32),
        "head.weight": rng.standard_normal((8, 64)).astype(np.float32),
    }
    base["head.weight"] = base["head.weight"] + np.float32(0.01 * step)
    return base


@pytest.fixture
def repo_path(tmp_path: Path, coral_as: Callable[..., Result]) -> Path:
    """`main` with the base model, `tune` (checked out) with the fine-tune; made by `ana`."""
    path = tmp_path / "repo"
    save_file(model(0), str(tmp_path / "base.safetensors"))
    save_file(model(1), str(tmp_path / "tuned.safetensors"))
    for args in (
        ("init", str(path)),
        ("-C", str(path), "import", str(tmp_path / "base.safetensors"), "-m", "base"),
        ("-C", str(path), "checkout", "-b", "tune", "main"),
        ("-C", str(path), "import", str(tmp_path / "tuned.safetensors"), "-m", "tuned head"),
    ):
        result = coral_as("ana", *args, repo=None)
        assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def coral_as(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    """`coral_as(USER, ARGS...)`: run `coral -C REPO ARGS...` in-process as USER."""
    runner = CliRunner()

    def invoke(user: str, *args: str, repo: Path | str | None = "default") -> Result:
        monkeypatch.setenv("CORAL_USER", user)
        if repo == "default":
            repo = request.getfixturevalue("repo_path")
        prefix = ["-C", str(repo)] if repo is not None else []
        return runner.invoke(app, [*prefix, *args])

    return invoke


@pytest.fixture
def coral(coral_as: Invoke) -> Invoke:
    """`coral(ARGS...)` as `ana`."""

    def invoke(*args: str, repo: Path | str | None = "default") -> Result:
        return coral_as("ana", *args, repo=repo)

    return invoke


def ok(result: Result) -> str:
    """The stdout of a command that must succeed."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result.stdout


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 1, an `error:` line and a `hint:` line on stderr, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in text, (fragment, result.stderr)

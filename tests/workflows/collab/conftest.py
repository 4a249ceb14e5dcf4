"""Fixtures for the collaboration sessions: the README's base model and its fine-tune committed
on `main` and `tune`, and `coral` run in-process as a given user (CORAL_USER)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app
from tests.workflows.readme_model import readme_model as model

Invoke = Callable[..., Result]


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

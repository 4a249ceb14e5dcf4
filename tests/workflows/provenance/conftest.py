"""Fixtures for the provenance sessions: the README's base model and fine-tune, a repository
that imported the base and committed the fine-tune, and `coral` run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app
from tests.workflows.readme_model import readme_model as model

Invoke = Callable[..., Result]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with base/tuned/tuned2 safetensors, a YAML config and a small dataset."""
    for i, name in enumerate(("base", "tuned", "tuned2")):
        save_file(model(i), str(tmp_path / f"{name}.safetensors"))
    (tmp_path / "train.yaml").write_text("lr: 0.001\nepochs: 3\noptimizer:\n  name: adam\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    (data / "sub").mkdir()
    (data / "sub" / "val.csv").write_text("x,y\n3,4\n")
    return tmp_path


@pytest.fixture
def coral(work: Path) -> Invoke:
    """`coral -C WORK/repo ARGS...` in-process (relative paths resolve from WORK)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, ["-C", str(work / "repo"), *args], env=env)

    return invoke


@pytest.fixture
def session(work: Path, coral: Invoke, monkeypatch: pytest.MonkeyPatch) -> Path:
    """init; import base (tag `base`); commit the fine-tune with base, config and datasets."""
    monkeypatch.chdir(work)
    (work / "repo").mkdir()
    for args in (
        ("init",),
        ("import", "base.safetensors", "-m", "base model"),
        ("tag", "base"),
        ("add", "tuned.safetensors"),
        (
            "commit",
            "-m",
            "fine-tune head",
            "--base",
            "base",
            "--config",
            "train.yaml",
            "--dataset",
            "data",
            "--dataset",
            "data/train.csv",
        ),
    ):
        result = coral(*args)
        assert result.exit_code == 0, (args, result.output)
    return work / "repo"


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)

"""Fixtures for the stash, preview, rollback and release sessions: checkpoint files on disk
(a base model and variants of it) and an empty repository driven through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from hashlib import blake2b
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner, Result

from coral.cli.main import app

ROOT = Path(__file__).resolve().parents[3]


def base_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "encoder.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "encoder.bias": np.zeros(64, np.float32),
        "head.weight": rng.standard_normal((8, 64)).astype(np.float32),
    }


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    """Checkpoints: base; tuned (head.weight moved); other (head.weight moved elsewhere);
    wide (head.weight reshaped); extra (a tensor added); addon (only that tensor); a model
    folder (tuned weights and config.json)."""
    folder = tmp_path / "models"
    folder.mkdir()
    base = base_weights()
    variants = {
        "base": base,
        "tuned": dict(base, **{"head.weight": base["head.weight"] + np.float32(0.01)}),
        "other": dict(base, **{"head.weight": base["head.weight"] * np.float32(2)}),
        "wide": dict(base, **{"head.weight": np.ones((16, 64), np.float32)}),
        "extra": dict(base, **{"extra.bias": np.ones(8, np.float32)}),
        "addon": {"extra.bias": np.ones(8, np.float32)},
    }
    paths = {}
    for name, weights in variants.items():
        paths[name] = folder / f"{name}.safetensors"
        save_file(weights, str(paths[name]))
    hf = folder / "hf"
    hf.mkdir()
    save_file(variants["tuned"], str(hf / "model.safetensors"))
    (hf / "config.json").write_text(json.dumps({"hidden_size": 64}), encoding="utf-8")
    paths["hf"] = hf
    return paths


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    result = CliRunner().invoke(app, ["init", str(path)])
    assert result.exit_code == 0, result.output
    return path


Invoke = Callable[..., Result]


@pytest.fixture
def coral(repo: Path) -> Invoke:
    """`coral -C REPO ARGS...` in-process; fails the test on an unexpected exit code."""
    runner = CliRunner()

    def invoke(*args: str | Path, code: int | None = 0) -> Result:
        result = runner.invoke(app, ["-C", str(repo), *map(str, args)])
        if code is not None:
            assert result.exit_code == code, (args, result.exit_code, result.output)
        return result

    return invoke


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def run_coral(repo: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real `coral` program in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80")
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(repo), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def repo_state(repo: Path) -> tuple[list[str], dict[str, str]]:
    """Everything the repository stores: a logical dump of its database and a digest of each
    object file (so a command that changes nothing leaves it equal)."""
    conn = sqlite3.connect(repo / ".coral" / "coral.db")
    try:
        dump = list(conn.iterdump())
    finally:
        conn.close()
    files = {}
    for path in sorted((repo / ".coral" / "objects").rglob("*")):
        if path.is_file():
            files[str(path.relative_to(repo))] = blake2b(path.read_bytes()).hexdigest()
    return dump, files


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path))

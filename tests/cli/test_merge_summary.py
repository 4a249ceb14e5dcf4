"""`coral merge` prints a summary (counts per outcome, a few conflicting names and how many
more), not one line per tensor; `--verbose` lists every resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.version_control.repository import Repository

N = 40


@pytest.fixture
def diverged(tmp_path: Path) -> Path:
    """main and `feature` both change every `layer.*` tensor; `head.weight` changes shape on
    `feature`; `only_theirs` changes on feature alone."""
    path = tmp_path / "repo"
    rng = np.random.default_rng(0)
    base = {f"layer.{i}.weight": rng.standard_normal((4, 4)).astype(np.float32) for i in range(N)}
    base["head.weight"] = np.zeros((2, 4), np.float32)
    base["only_theirs"] = np.zeros(3, np.float32)
    with Repository.init(path) as repo:
        repo.add_all_weights(base)
        repo.commit("base")
        repo.create_branch("feature")
        repo.checkout("feature")
        theirs = {k: v + 1 for k, v in base.items() if k.startswith("layer.")}
        theirs["head.weight"] = np.zeros((3, 4), np.float32)
        theirs["only_theirs"] = np.ones(3, np.float32)
        repo.add_all_weights(theirs)
        repo.commit("feature")
        repo.checkout("main")
        ours = {k: v - 1 for k, v in base.items() if k.startswith("layer.")}
        ours["head.weight"] = np.ones((2, 4), np.float32)
        repo.add_all_weights(ours)
        repo.commit("main")
    return path


def test_merge_prints_a_summary_not_a_line_per_tensor(diverged: Path) -> None:
    result = CliRunner().invoke(app, ["-C", str(diverged), "merge", "feature", "-s", "average"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= 8, result.stdout
    assert sum("resolved" in line and "layer." in line for line in lines) == 0
    text = result.stdout
    assert f"{N + 1} conflicts" in text
    assert f"{N} average" in text
    assert "1 ours (shape or dtype differs)" in text
    assert "... and " in text and " more" in text
    shown = [f"layer.{i}.weight" for i in range(N) if f"layer.{i}.weight" in text]
    assert 0 < len(shown) <= 5
    with Repository(diverged) as repo:  # the merge itself is unchanged
        merged = repo.get_all_weights("HEAD")
        assert np.array_equal(merged["only_theirs"].data, np.ones(3, np.float32))


def test_merge_verbose_lists_every_resolution(diverged: Path) -> None:
    result = CliRunner().invoke(
        app, ["-C", str(diverged), "merge", "feature", "-s", "average", "--verbose"]
    )
    assert result.exit_code == 0, result.output
    for i in range(N):
        assert f"layer.{i}.weight" in result.stdout


def test_merge_without_conflicts_says_so(diverged: Path, tmp_path: Path) -> None:
    with Repository(diverged) as repo:
        repo.create_branch("side", "HEAD~1")
        repo.checkout("side")
        repo.add_all_weights({"extra": np.ones(2, np.float32)})
        repo.commit("side")
        repo.checkout("main")
    result = CliRunner().invoke(app, ["-C", str(diverged), "merge", "side"])
    assert result.exit_code == 0, result.output
    assert "no conflicts" in result.stdout
    assert len(result.stdout.strip().splitlines()) <= 2

"""`coral diff --visual/--ascii` and `coral stats --visual` write real charts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, assert_user_error


def test_diff_ascii(coral: Invoke) -> None:
    pytest.importorskip("coral.utils.diff_report")
    result = coral("diff", "HEAD~1", "HEAD", "--ascii", "--width", "90")
    assert result.exit_code == 0, result.output
    assert "encoder.weight" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 90


@pytest.mark.parametrize("name", ["diff.png", "diff.html"])
def test_diff_visual(tmp_path: Path, coral: Invoke, name: str) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("coral.utils.diff_report")
    result = coral("diff", "feature", "main", "--visual", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    data = (tmp_path / name).read_bytes()
    assert data.startswith(b"\x89PNG") if name.endswith(".png") else b"<html" in data.lower()
    assert "encoder.weight" in result.stdout  # the table is printed as well


def test_diff_visual_needs_a_known_suffix(tmp_path: Path, coral: Invoke) -> None:
    pytest.importorskip("coral.utils.diff_report")
    assert_user_error(
        coral("diff", "HEAD~1", "--visual", str(tmp_path / "x.svgz")), ".png or .html"
    )


def test_stats_visual(tmp_path: Path, coral: Invoke) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("coral.utils.diff_report")
    result = coral("stats", "--visual", str(tmp_path / "savings.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "savings.png").read_bytes().startswith(b"\x89PNG")

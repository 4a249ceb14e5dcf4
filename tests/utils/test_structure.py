"""DESIGN §1 and §7 for the diff and report modules: lower layers never import higher ones
(utils never imports cli; version_control never imports utils), modules stay small, and the
chapter 8.4 import path is a real module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "coral"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("utils", ("coral.cli", "coral.tui", "coral.web")), ("version_control", ("coral.utils",))],
)
def test_lower_layers_never_import_higher_ones(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in _imports(path)
        if name.startswith(forbidden)
    }
    assert not offenders, sorted(offenders)


def test_diff_and_report_modules_stay_under_600_lines() -> None:
    paths = [*(ROOT / "utils").glob("*.py"), ROOT / "version_control" / "diff.py"]
    long = {
        str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long


def test_there_is_one_diff_engine() -> None:
    """Nothing under utils compares tensors itself: they all call the engine."""
    for path in (ROOT / "utils").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "_bit_view" not in text and "def _compare_arrays" not in text, path.name
    from coral.utils import visualization

    assert visualization.compare_models.__module__ == "coral.utils.visualization"

"""`coral browse` / `coral ui` as commands: listed, lazy about textual, clear outside a repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coral.tui.histogram import histogram_lines, resample


def _coral(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from coral.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "100"},
    )


def test_help_lists_browse_without_importing_textual(tmp_path: Path) -> None:
    code = (
        "import sys; from coral.cli.main import main; main(['--help']); "
        "assert 'textual' not in sys.modules, 'coral --help imported textual'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "browse" in proc.stdout and "Alias of `coral browse`" in proc.stdout


def test_outside_a_repository_it_says_so(tmp_path: Path) -> None:
    for command in ("browse", "ui"):
        proc = _coral(command, cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: not a Coral repository")
        assert "hint:" in proc.stderr


def test_histogram_lines() -> None:
    assert resample([1, 2, 3, 4], 2) == [3, 7] and resample([1, 2], 8) == [1, 2]
    lines = histogram_lines([0, 8, 4, 1], [0.0, 1.0, 2.0, 3.0, 4.0], width=4, height=2)
    assert lines[:2] == [" █", " ██▂"]  # top row first: 8 fills both rows, 4 one, 1 a quarter
    assert lines[2] == "----" and lines[3].startswith("0") and lines[3].endswith("4")
    half = histogram_lines([4], [0.0, 1.0], width=1, height=2, scale=8)
    assert half[:2] == ["", "█"]  # drawn against a shared scale
    assert histogram_lines([], []) == ["(no finite values)"]
    drawn = "".join(histogram_lines([3, 1], [0, 1, 2], ascii_only=True))
    assert set(drawn) <= set(" .:-=+*#@0123456789")


def test_without_a_terminal_it_says_so(tmp_path: Path) -> None:
    from coral.version_control.repository import Repository

    Repository.init(tmp_path).close()
    proc = _coral("browse", cwd=tmp_path)  # stdin and stdout are pipes here
    assert proc.returncode == 1 and "needs a terminal" in proc.stderr

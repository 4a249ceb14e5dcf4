"""`coral gc` and `coral fsck` draw rich progress bars on stderr when it is a terminal, from the
library's progress callback, and print nothing there otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import coral.cli._common as _common
import coral.cli.maintenance as maintenance
from tests.cli.conftest import Invoke


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a terminal: what the progress bars draw lands in the returned buffer."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(maintenance, "err", lambda: console)
    monkeypatch.setattr(_common, "err", lambda: console)  # the bars are drawn by _common
    return buffer


@pytest.mark.parametrize(
    ("args", "phase"),
    [
        (("gc",), "tracing history"),
        (("gc", "--dry-run"), "measuring unreachable objects"),
        (("fsck",), "verifying chunks"),
        (("fsck", "--quick"), "checking history"),
    ],
)
def test_progress_bars_on_a_terminal(
    coral: Invoke, terminal: io.StringIO, args: tuple[str, ...], phase: str
) -> None:
    result = coral(*args)
    assert result.exit_code == 0, result.output
    drawn = terminal.getvalue()
    assert phase in drawn, drawn
    assert "\x1b[" in drawn  # drawn live (and cleared: the bars are transient)
    assert phase not in result.stdout


@pytest.mark.parametrize("args", [("gc",), ("gc", "--dry-run"), ("fsck",)])
def test_nothing_on_stderr_when_it_is_no_terminal(coral: Invoke, args: tuple[str, ...]) -> None:
    result = coral(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_phase_bars_is_none_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "err", lambda: Console(file=io.StringIO()))
    with maintenance.phase_progress() as progress:
        assert progress is None


def test_gc_text_reports_bytes_freed_and_would_free(coral: Invoke, repo_path: Path) -> None:
    assert "would free" in coral("gc", "--dry-run").stdout
    assert "freed" in coral("gc").stdout

"""`coral log` on a terminal pages its output through `less`, as git does: on the 10⁴-commit
history the first screen shows (a `:` prompt under it), `q` ends the command with status 0,
and `CORAL_PAGER=` turns paging off. Checked in tmux at 80×24."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_tmux import WAIT_S, Pane

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("less") is None,
    reason="tmux and less are needed (make test installs them)",
)


@pytest.fixture
def pane(long_history: Path) -> Iterator[Pane]:
    p = Pane(long_history)
    try:
        yield p
    finally:
        p.close()


def _prompt(screen: str) -> bool:
    """Whether the screen's last line is less's `:` prompt."""
    lines = screen.rstrip("\n").splitlines()
    return bool(lines) and lines[-1].startswith(":")


def test_log_is_paged_and_q_ends_it(pane: Pane) -> None:
    pane.type_line("coral log; echo exit=$?")
    screen = pane.wait_for("HEAD -> main", "Author:")
    deadline = time.monotonic() + WAIT_S  # less draws its prompt last: wait for it too
    while not _prompt(screen) and time.monotonic() < deadline:
        time.sleep(0.2)
        screen = pane.screen()
    lines = screen.rstrip("\n").splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert _prompt(screen), lines[-1]  # less waits for a key
    assert "exit=" not in screen  # the command is still running, in the pager
    pane.keys("q")
    pane.wait_for("exit=0")


def test_an_empty_pager_setting_prints_directly(pane: Pane) -> None:
    pane.type_line("CORAL_PAGER= coral log -n 3 --oneline; echo exit=$?")
    screen = pane.wait_for("exit=0")
    assert "HEAD -> main" in screen and "(END)" not in screen


def test_short_output_passes_through_the_pager(pane: Pane) -> None:
    """`coral show` of a small commit fits on one screen: `less -F` prints it and quits at
    once (no key needed), and the text stays on the screen (`-X`)."""
    pane.type_line("coral show; echo exit=$?")
    screen = pane.wait_for("exit=0")
    assert "commit " in screen and "Author:" in screen and "tensor" in screen

"""The real `coral browse` in a real terminal: tmux at 80×24 (TERM=screen: 8 colours), keys sent
with `send-keys`, the screen read with `capture-pane`; `q` must leave the terminal as it was
(main screen back, the shell's text on it, the same tty settings, exit status 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.history import small_history

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (make test installs it)"
)
WAIT_S = 60.0  # the most a screen may take to show what is awaited (a loaded, shared machine)


class Pane:
    """One tmux server of our own (its own socket), one 80×24 window running bash."""

    def __init__(self, cwd: Path) -> None:
        self.socket = f"coral-test-{uuid.uuid4().hex[:8]}"
        env = dict(os.environ)
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            PS1="$ ",
            CORAL_AUTHOR="tmux test",
        )
        env.pop("TMUX", None)
        env.pop("TEXTUAL", None)
        self.env = env
        self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "t",
            "-c", str(cwd), "bash --norc --noprofile",
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            [str(TMUX), "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def type_line(self, line: str) -> None:
        self.keys(line, literal=True)
        self.keys("Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def flag(self, name: str) -> str:
        return self.tmux("display-message", "-p", "-t", "t", f"#{{{name}}}").strip()

    def wait_for(self, *texts: str) -> str:
        """The first screen showing every one of `texts` (polled; fails after WAIT_S).

        Waiting for all of them at once matters: the terminal may be captured mid-paint, with
        one part of the frame drawn and another not yet."""
        deadline = time.monotonic() + WAIT_S
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts!r} never all appeared; the screen was:\n{screen}")

    def close(self) -> None:
        subprocess.run([str(TMUX), "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    small_history(tmp_path / "repo").close()
    p = Pane(tmp_path / "repo")
    try:
        yield p
    finally:
        p.close()


def test_coral_browse_in_a_real_terminal(pane: Pane) -> None:
    pane.type_line("stty -g > before.txt; echo ready-marker")
    pane.wait_for("ready-marker")
    assert pane.flag("alternate_on") == "0"
    pane.type_line("coral browse; echo exit=$?")
    first_frame = ("fine-tune", "on main", "(HEAD -> main)", "* main", "Log: all refs", "|\\")
    screen = pane.wait_for(*first_frame)
    assert pane.flag("alternate_on") == "1"
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "Refs" in screen and "Log: all refs" in screen and "* main" in screen
    assert "on main" in screen.splitlines()[0]
    assert "(HEAD -> main)" in screen and "|\\" in screen  # the merge is drawn
    pane.wait_for("config.json", "encoder.layer.0.attn.weight")  # the detail pane
    pane.keys("?")
    pane.wait_for("Keys (Esc closes)", "jump to ref")
    pane.keys("Escape")
    pane.keys("Down", "Down")  # to "fine-tune the head" (past a connector line)
    pane.keys("d")
    pane.wait_for("training-state tensors hidden", "2 changed")
    pane.keys("Escape")
    pane.wait_for("Log: all refs")
    pane.keys("q")
    screen = pane.wait_for("exit=0")
    assert pane.flag("alternate_on") == "0"  # back on the main screen
    assert "ready-marker" in screen  # with the shell's text as it was
    assert "Log: all refs" not in screen and "╭" not in screen
    assert pane.flag("mouse_any_flag") == "0" and pane.flag("cursor_flag") == "1"
    pane.type_line('[ "$(stty -g)" = "$(cat before.txt)" ] && echo tty-restored')
    pane.wait_for("tty-restored")  # the same line discipline, echo and all

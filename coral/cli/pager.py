"""A pager for long output on a terminal, as git pages `git log`, `show` and `diff`.

`coral log`, `show` and `diff` on a terminal write into `less` (`CORAL_PAGER`, else `PAGER`,
else `less`; with `LESS=FRX` unless LESS is set: quit at once when the output fits on one
screen, keep colours, leave the text on the screen). The output streams into the pager as it is
made, so the first screen shows before a long history has been read; `q` ends the command.
`CORAL_PAGER=` (empty) or `cat` turns paging off; a pipe or a file is never paged.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator
from typing import IO, Any, cast

from rich.console import Console

DEFAULT_PAGER = "less"


class PagerClosed(Exception):
    """The reader quit the pager: the rest of the output has nowhere to go."""


def pager_command() -> list[str] | None:
    """The pager to run, or None when paging is off."""
    configured = os.environ.get("CORAL_PAGER", os.environ.get("PAGER", DEFAULT_PAGER))
    words = shlex.split(configured)
    if not words or words[0] == "cat":
        return None
    return words


@contextlib.contextmanager
def paged(console: Console) -> Iterator[Console]:
    """`console`, or a console writing into a pager when `console` is a terminal and a pager
    is configured and installed. Writing after the reader has quit raises `PagerClosed`,
    which this context swallows (the command ends quietly, exit status 0)."""
    command = pager_command()
    if command is None or not console.is_terminal:
        yield console
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, env=env, text=True, errors="replace"
        )
    except OSError:  # no such pager: print as if there were none
        yield console
        return
    assert proc.stdin is not None
    into = Console(
        file=cast(IO[str], _PipeWriter(proc.stdin)),
        force_terminal=True,
        color_system=cast(Any, console.color_system),  # the terminal's, by name
        width=console.width,
        highlight=False,
        soft_wrap=True,
    )
    try:
        yield into
    except PagerClosed:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C belongs to the pager while it runs, as in git
                continue


class _PipeWriter:
    """A text stream into the pager that turns a closed pipe into `PagerClosed`."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError):  # ValueError: written after close
            raise PagerClosed from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            raise PagerClosed from None

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

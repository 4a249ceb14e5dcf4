"""`coral browse` (alias `coral ui`): the terminal browser of the repository.

textual is imported only when the command runs: `coral --help` and every other command start
without it.
"""

from __future__ import annotations

import sys

import typer

from coral.cli._common import open_repo
from coral.errors import CoralError

ORDER = 35  # after the history commands in `coral --help`
PANEL = "History"


def browse() -> None:
    """Browse the repository in a terminal UI: log graph, commits, tensors, diffs, staging.

    Refs, the log with its graph, a commit's tensors and files, one tensor's distribution at
    two commits, diffs with the change map, staging and committing, search, checkout after a
    preview. `?` lists every key; `q` quits.
    """
    try:
        from coral.tui.app import BrowseApp
    except ImportError as exc:  # the `tui` extra is not installed
        raise CoralError(
            f"coral browse needs textual ({exc})", hint="pip install 'coral-vcs[tui]'"
        ) from None
    repo = open_repo()  # the staging area `coral add` and `coral commit` share
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CoralError(
            "coral browse needs a terminal (stdin and stdout are not both one)",
            hint="run it in a terminal; `coral log` and `coral show` print to a pipe",
        )
    BrowseApp(repo).run()


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(browse)
    app.command("ui", rich_help_panel=PANEL, help="Alias of `coral browse`.")(browse)

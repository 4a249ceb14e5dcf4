"""`coral init`: create a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from coral.cli._common import out, repo_root

ORDER = 0  # position of this group in `coral --help`
PANEL = "Start"


def init(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Where to create it (default: --repo or the current directory).",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str, typer.Option("--branch", "-b", help="Name of the first branch.")
    ] = "main",
) -> None:
    """Create an empty Coral repository."""
    from coral.version_control.repository import Repository

    target = path or repo_root()
    repo = Repository.init(target, default_branch=branch)
    try:
        where = escape(str(repo.coral_dir))
        out().print(f"Initialized empty Coral repository in {where} (branch {escape(branch)})")
    finally:
        repo.close()


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(init)

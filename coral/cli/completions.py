"""`coral completions SHELL`: print a shell completion script."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._click.globals import get_current_context

ORDER = 90  # position of this group in `coral --help`
PANEL = "Shell"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"
    pwsh = "pwsh"


def completions(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print the completion script for SHELL (branch, tag and weight names complete too).

    bash: `source <(coral completions bash)`; zsh: `coral completions zsh > ~/.zfunc/_coral`;
    fish: `coral completions fish > ~/.config/fish/completions/coral.fish`;
    PowerShell: `coral completions powershell | Out-String | Invoke-Expression`.
    """
    from typer._completion_shared import get_completion_script

    root = get_current_context().find_root()
    prog = root.info_name or "coral"
    var = "_{}_COMPLETE".format(prog.replace("-", "_").upper())
    typer.echo(get_completion_script(prog_name=prog, complete_var=var, shell=shell.value))


def register(app: typer.Typer) -> None:
    from typer._completion_classes import completion_init

    completion_init()  # typer's bash/zsh/fish/powershell classes, also used when completing
    app.command(rich_help_panel=PANEL)(completions)

"""Your own commands: `coral alias [NAME [COMMAND]]`, and scripts in `.coral/commands/`."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer
from rich.markup import escape
from typer._click.globals import get_current_context

from coral.cli._common import emit_json, out, repo_root
from coral.errors import CoralError

ORDER = 91
PANEL = "Settings and your own commands"


def builtin_commands() -> set[str]:
    """The names of coral's own commands (an alias may not take one)."""
    root = get_current_context().find_root().command
    return set(getattr(root, "commands", {}))


def alias(
    name: Annotated[
        str | None,
        typer.Argument(help="The alias (no name: list aliases and scripts).", show_default=False),
    ] = None,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help='What it runs, e.g. "log -n 1" (no command: show the alias).',
            show_default=False,
        ),
    ] = None,
    remove: Annotated[
        str | None,
        typer.Option("--remove", "-r", help="Remove this alias.", show_default=False),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Define, show, list or remove aliases of coral commands.

    `coral alias NAME "COMMAND ARGS"` makes `coral NAME MORE` run
    `coral COMMAND ARGS MORE`. Executable files in .coral/commands/ run
    as `coral FILENAME ARGS` too, with CORAL_REPO (the repository's path)
    and CORAL_BIN (this coral) in their environment. Built-in commands
    always win: an alias cannot take the name of one."""
    from coral.porcelain import aliases

    root = repo_root()
    if remove is not None:
        removed = aliases.remove_alias(root, remove)
        if json_output:
            emit_json({"removed": removed.to_dict()})
        else:
            out().print(escape(f"removed alias {removed.name} (was: {removed.command})"))
        return
    if name is not None and command:
        text = command[0] if len(command) == 1 else shlex.join(command)
        made, previous = aliases.set_alias(root, name, text, builtins=builtin_commands())
        if json_output:
            emit_json({**made.to_dict(), "previous": previous})
        else:
            was = f" (was: {previous})" if previous is not None and previous != text else ""
            out().print(escape(f"alias {made.name} = {made.command}{was}"))
        return
    found = aliases.list_aliases(root)
    if name is not None:
        found = [a for a in found if a.name == name]
        if not found:
            raise CoralError(
                f"no alias or script named {name!r}",
                hint=f'define it with `coral alias {name} "COMMAND ARGS"`',
            )
    if json_output:
        emit_json(found)
        return
    if not found:
        out().print('no aliases or scripts yet (add one: coral alias NAME "COMMAND ARGS")')
        return
    builtins = builtin_commands()
    width = max(len(a.name) for a in found)
    for a in found:
        what = f"= {a.command}" if a.kind == "alias" else f"script {a.path}"
        shadowed = "  [dim](a built-in command: never runs)[/dim]" if a.name in builtins else ""
        out().print(escape(f"{a.name:<{width}} {what}") + shadowed)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(alias)

"""Settings: `coral config get|set|unset|list` and `coral config profile ...`.

These commands read and write `.coral/config.toml` and `.coral/profiles/` directly, without
opening the repository, so a setting that keeps it from opening can be fixed here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coral.cli._common import JsonOption, emit_json, err, out, repo_root
from coral.version_control.config_file import toml_value

ORDER = 90
PANEL = "Settings and your own commands"

config_app = typer.Typer(
    help="Read and write the repository's settings (.coral/config.toml) and profiles.",
    no_args_is_help=True,
)
profile_app = typer.Typer(
    help="Named bundles of storage, delta and similarity settings (default, fast, archive, "
    "and your own).",
    no_args_is_help=True,
)
config_app.add_typer(profile_app, name="profile")

JsonOutput = JsonOption
Key = Annotated[str, typer.Argument(help="SECTION.KEY, e.g. storage.mode.", show_default=False)]
ProfileName = Annotated[str, typer.Argument(help="The profile's name.", show_default=False)]


def _shown(value: Any) -> str:
    return toml_value(value) if value is not None else ""


def _source(entry: Any) -> str:
    if entry.source == "profile":
        return f"profile {entry.profile}"
    if entry.source == "env":
        return "CORAL_PROFILE"
    return entry.source if entry.known else "config, unknown to Coral"


@config_app.command("get")
def get(key: Key, json_output: JsonOutput = False) -> None:
    """Print a setting's value (from config.toml, the active profile or the default)."""
    from coral.porcelain.config import get_value

    entry = get_value(repo_root(), key)
    if json_output:
        emit_json(entry.to_dict())
    elif isinstance(entry.value, str):
        typer.echo(entry.value)
    else:
        typer.echo(_shown(entry.value))


@config_app.command("set")
def set_(
    key: Key,
    value: Annotated[str, typer.Argument(help="The value (checked against the setting's type).")],
    json_output: JsonOutput = False,
) -> None:
    """Write a setting into .coral/config.toml (comments and other keys are kept)."""
    from coral.porcelain.config import set_value

    change = set_value(repo_root(), key, value)
    if json_output:
        emit_json(change.to_dict())
        return
    was = f" (was {_shown(change.previous)})" if change.previous is not None else ""
    out().print(escape(f"{key} = {_shown(change.value)}{was}"))


@config_app.command("unset")
def unset(key: Key, json_output: JsonOutput = False) -> None:
    """Remove a setting from .coral/config.toml (the profile's value or the default applies)."""
    from coral.porcelain.config import unset_value

    change = unset_value(repo_root(), key)
    if json_output:
        emit_json(change.to_dict())
        return
    out().print(escape(f"unset {key} (was {_shown(change.previous)})"))


@config_app.command("list")
def list_(
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Also the settings left at their default.")
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """List the settings in effect and where each comes from.

    A value is written in config.toml, set by the active profile
    (CORAL_PROFILE, else core.profile) or, shown with --all, the default."""
    from coral.porcelain.config import list_values

    entries = list_values(repo_root(), include_defaults=all_)
    if json_output:
        emit_json(entries)
        return
    console = out()
    for e in entries:
        source = "" if e.source == "config" and e.known else f"  [dim]# {_source(e)}[/dim]"
        console.print(escape(f"{e.key} = {_shown(e.value)}") + source)


# -- profiles ---------------------------------------------------------------------------------
def _print_settings(settings: dict[str, Any]) -> None:
    console = out()
    if not settings:
        console.print("[dim](sets nothing: the built-in defaults apply)[/dim]")
    for key, value in settings.items():
        console.print(escape(f"{key} = {_shown(value)}"))


def _warn_env(name: str) -> None:
    env = os.environ.get("CORAL_PROFILE", "").strip()
    if env and env != name:
        err().print(
            f"[yellow]note:[/yellow] CORAL_PROFILE={escape(env)} overrides it in this environment"
        )


@profile_app.command("list")
def profile_list(json_output: JsonOutput = False) -> None:
    """List the profiles (* marks the active one)."""
    from coral.porcelain.profiles import list_profiles

    profiles = list_profiles(repo_root())
    if json_output:
        emit_json(profiles)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("kind", no_wrap=True, style="dim")
    table.add_column("description", overflow="fold")
    for p in profiles:
        kind = "built-in" if p.builtin else "own"
        table.add_row("*" if p.active else "", escape(p.name), kind, escape(p.description))
    out().print(table)


@profile_app.command("show")
def profile_show(
    name: Annotated[
        str | None, typer.Argument(help="The profile (default: the active one).")
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Show a profile's settings."""
    from coral.porcelain.profiles import show_profile

    p = show_profile(repo_root(), name)
    if json_output:
        emit_json(p)
        return
    marks = ["built-in" if p.builtin else str(p.path)] + (["active"] if p.active else [])
    out().print(f"[bold]profile {escape(p.name)}[/bold] ({escape(', '.join(marks))})")
    if p.description:
        out().print(escape(p.description))
    _print_settings(p.settings)


@profile_app.command("create")
def profile_create(
    name: ProfileName,
    base: Annotated[
        str, typer.Option("--from", help="Start from this profile's settings.")
    ] = "default",
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A setting KEY=VALUE, e.g. storage.mode=max (repeatable)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What the profile is for.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace one that exists.")] = False,
    json_output: JsonOutput = False,
) -> None:
    """Create a profile in .coral/profiles/NAME.toml."""
    from coral.porcelain.profiles import create_profile, parse_assignments

    p = create_profile(
        repo_root(),
        name,
        base=base,
        settings=parse_assignments(settings or []),
        description=description,
        force=force,
    )
    if json_output:
        emit_json(p)
        return
    out().print(f"created profile {escape(p.name)} ({escape(str(p.path))})")
    _print_settings(p.settings)


@profile_app.command("use")
def profile_use(name: ProfileName, json_output: JsonOutput = False) -> None:
    """Make a profile the repository's (core.profile); CORAL_PROFILE picks one per process."""
    from coral.porcelain.profiles import use_profile

    p = use_profile(repo_root(), name)
    if json_output:
        emit_json(p)
        return
    out().print(f"using profile {escape(p.name)} in this repository")
    _warn_env(p.name)


@profile_app.command("export")
def profile_export(
    name: ProfileName,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (default: print it).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Write a profile as a TOML file others can import."""
    from coral.porcelain.profiles import export_profile

    text = export_profile(repo_root(), name, output)
    if output is None:
        typer.echo(text, nl=False)
    else:
        out().print(f"wrote profile {escape(name)} to {escape(str(output))}")


@profile_app.command("import")
def profile_import(
    file: Annotated[Path, typer.Argument(help="A profile file (as `export` writes it).")],
    name: Annotated[str | None, typer.Option("--name", help="Import it under this name.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace one that exists.")] = False,
    json_output: JsonOutput = False,
) -> None:
    """Add a profile from a TOML file to this repository."""
    from coral.porcelain.profiles import import_profile

    p = import_profile(repo_root(), file, name=name, force=force)
    if json_output:
        emit_json(p)
        return
    out().print(f"imported profile {escape(p.name)} ({escape(str(p.path))})")
    _print_settings(p.settings)


@profile_app.command("delete")
def profile_delete(name: ProfileName, json_output: JsonOutput = False) -> None:
    """Delete one of the repository's profiles."""
    from coral.porcelain.profiles import delete_profile

    p = delete_profile(repo_root(), name)
    if json_output:
        emit_json(p)
        return
    out().print(f"deleted profile {escape(p.name)}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config", rich_help_panel=PANEL)

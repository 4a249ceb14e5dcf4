"""Putting staged work aside: `coral stash [-m MSG]`, `stash list | show | apply | pop | drop`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from coral.cli._common import JsonOption, emit_json, fmt_time, open_repo, out, phase_progress
from coral.cli.history import _diff_table
from coral.utils.report_format import COUNT_ORDER, ENGINE_LABELS

ORDER = 15  # after staging and committing
PANEL = "Stage and commit"

stash_app = typer.Typer(
    name="stash",
    help="Put staged changes aside (`coral stash`), list them, show, apply, pop or drop one.",
    invoke_without_command=True,
)

Message = Annotated[
    str | None, typer.Option("--message", "-m", help="Describe the stash (default: WIP on ...).")
]
JsonOutput = JsonOption
StashRef = Annotated[str, typer.Argument(help="Which entry: 0 (the newest), 1, ... or stash@{N}.")]


def _changes(tensors: int, files: int) -> str:
    parts = [f"{tensors} tensor{'s' if tensors != 1 else ''}"]
    if files:
        parts.append(f"{files} file{'s' if files != 1 else ''}")
    return ", ".join(parts)


@stash_app.callback()
def stash(ctx: typer.Context, message: Message = None, json_output: JsonOutput = False) -> None:
    """Move the staged changes (tensors and model files) into a new stash entry, stash@{0},
    leaving the staging area empty."""
    if ctx.invoked_subcommand is None:
        _push(message, json_output)


def _push(message: str | None, json_output: bool) -> None:
    from coral.porcelain.stash import stash_push

    entry = stash_push(open_repo(), message)
    if json_output:
        emit_json(entry.to_dict())
        return
    out().print(
        f"Saved {_changes(len(entry.tensors), len(entry.files))} as {entry.ref}: "
        f"{escape(entry.message)}"
    )


@stash_app.command("push")
def push(message: Message = None, json_output: JsonOutput = False) -> None:
    """Stash the staged changes (what `coral stash` does)."""
    _push(message, json_output)


@stash_app.command("list")
def list_(json_output: JsonOutput = False) -> None:
    """List the stash entries, newest (stash@{0}) first."""
    from coral.porcelain.stash import stash_list

    entries = stash_list(open_repo())
    if json_output:
        emit_json([e.to_dict() for e in entries])
        return
    console = out()
    if not entries:
        console.print("no stash entries")
        return
    for s in entries:
        e = s.entry
        where = e.branch or "detached HEAD"
        said = e.message if e.message.startswith("WIP on ") else f"On {where}: {e.message}"
        console.print(
            f"[yellow]{e.ref}[/yellow]: {escape(said)} "
            f"[dim]({_changes(s.tensors, s.files)}, {fmt_time(e.created_at)})[/dim]"
        )


@stash_app.command("show")
def show(ref: StashRef = "0", json_output: JsonOutput = False) -> None:
    """Show what an entry changes against the commit it was stashed on."""
    from coral.porcelain.stash import stash_show

    repo = open_repo()
    with phase_progress() as report:
        shown = stash_show(repo, ref, progress=report)
    if json_output:
        emit_json(shown.to_dict())
        return
    e = shown.entry
    console = out()
    base = f"{e.head[:10]} on {e.branch or 'detached HEAD'}" if e.head else "no commits"
    console.print(f"[yellow]{e.ref}[/yellow]: {escape(e.message)}")
    console.print(f"stashed {fmt_time(e.created_at)} at {escape(base)}")
    counts = shown.diff.counts()
    kinds = [f"{counts[k]} {ENGINE_LABELS[k]}" for k in COUNT_ORDER if counts.get(k)]
    console.print(f"tensors: {', '.join(kinds) or 'none'}", markup=False)
    table = _diff_table(shown.diff, False)
    if table.row_count:
        table.render(console)
    for path, kind in shown.files.items():
        console.print(f"  file {kind}: {escape(path)}")


@stash_app.command("apply")
def apply(ref: StashRef = "0", json_output: JsonOutput = False) -> None:
    """Stage an entry's changes again and keep the entry."""
    _apply(ref, json_output, drop=False)


@stash_app.command("pop")
def pop(ref: StashRef = "0", json_output: JsonOutput = False) -> None:
    """Stage an entry's changes again and drop the entry."""
    _apply(ref, json_output, drop=True)


def _apply(ref: str, json_output: bool, *, drop: bool) -> None:
    from coral.porcelain.stash import stash_apply

    applied = stash_apply(open_repo(), ref, drop=drop)
    if json_output:
        emit_json(applied.to_dict())
        return
    e = applied.entry
    console = out()
    console.print(
        f"Applied {e.ref}: staged {applied.staged} change{'s' if applied.staged != 1 else ''}"
        + (f" (dropped {e.ref})" if drop else "")
    )
    if applied.head_moved:
        where = e.head[:10] if e.head else "an empty repository"
        console.print(f"[dim]note: stashed at {where}; HEAD has moved since[/dim]")


@stash_app.command("drop")
def drop(ref: StashRef = "0", json_output: JsonOutput = False) -> None:
    """Forget an entry (its tensors go at the next `coral gc`)."""
    from coral.porcelain.stash import stash_drop

    entry = stash_drop(open_repo(), ref)
    if json_output:
        emit_json({"dropped": entry.to_dict()})
        return
    out().print(f"Dropped {entry.ref}: {escape(entry.message)}")


def register(app: typer.Typer) -> None:
    app.add_typer(stash_app, name="stash", rich_help_panel=PANEL)

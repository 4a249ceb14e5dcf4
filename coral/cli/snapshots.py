"""Looking before moving, and going back: `coral preview REF`, `coral rollback REF`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from coral.cli._common import (
    JsonOption,
    ListTrainingStateOption,
    complete_ref,
    emit_json,
    open_repo,
    out,
)
from coral.cli.history import _diff_table
from coral.utils.report_format import counts_text
from coral.version_control.diff import DiffResult

ORDER = 41  # beside checkout, in "Branches, tags, merges"
PANEL = "Branches, tags, merges"

Ref = Annotated[str, typer.Argument(help="Branch, tag or commit.", autocompletion=complete_ref)]
JsonOutput = JsonOption
TrainingState = ListTrainingStateOption


def _print_changes(
    console: Console, diff: DiffResult, files: dict[str, str], hidden: int = 0
) -> None:
    console.print(f"tensors: {counts_text(diff.counts())}", markup=False)
    if hidden:
        console.print(
            f"[dim]{hidden} training-state tensors left out (--include-training-state)[/dim]"
        )
    table = _diff_table(diff, False)
    if table.row_count:
        table.render(console)
    if files:
        console.print(f"model files: {len(files)} changed")
        for path, kind in files.items():
            console.print(f"  {kind} {escape(path)}")


def preview(
    ref: Ref, include_training_state: TrainingState = False, json_output: JsonOutput = False
) -> None:
    """Show what `coral checkout REF` would change (tensors, model files), changing nothing."""
    from coral.porcelain.preview import preview_checkout

    p = preview_checkout(open_repo(), ref, include_training_state=include_training_state)
    if json_output:
        emit_json(p.to_dict())
        return
    console = out()
    where = f"branch {p.branch}" if p.branch else f"{p.target[:10]} (detached HEAD)"
    if not p.moves:
        console.print(f"HEAD is at {escape(ref)} already ({p.target[:10]}): nothing would change")
    else:
        before = p.head[:10] if p.head else "no commits"
        console.print(
            f"checkout {escape(ref)} would move HEAD from {before} to {escape(where)}: "
            f"{escape(p.subject)}"
        )
        _print_changes(console, p.diff, p.files, p.training_state_hidden)
    if p.pruned:
        console.print(f"[yellow]note:[/yellow] {p.target[:10]} is {escape(p.pruned)}")
    if p.blocked:
        console.print(
            f"[yellow]note:[/yellow] {len(p.staged)} staged change(s) would stop it: commit, "
            "`coral stash` or `coral reset` them (checkout --force drops them)"
        )
    console.print("[dim]nothing was changed (preview)[/dim]")


def rollback(
    ref: Ref,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show the change only; commit nothing.")
    ] = False,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Commit message (default: Rollback to ...)."),
    ] = None,
    include_training_state: TrainingState = False,
    json_output: JsonOutput = False,
) -> None:
    """Commit REF's model as a new commit on the current branch (history is kept)."""
    from coral.porcelain.rollback import rollback as rollback_to

    result = rollback_to(
        open_repo(),
        ref,
        message=message,
        dry_run=dry_run,
        include_training_state=include_training_state,
    )
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    where = result.branch or "detached HEAD"
    if result.commit is None:
        console.print(
            f"rollback to {result.target[:10]} ({escape(ref)}) would commit onto "
            f"{escape(where)} ({result.head[:10]}):"
        )
    else:
        console.print(escape(f"[{where} {result.commit[:10]}] {result.message}"))
    _print_changes(console, result.diff, result.files)
    if result.commit is None:
        console.print("[dim]nothing was committed (--dry-run)[/dim]")


def register(app: typer.Typer) -> None:
    for command in (preview, rollback):
        app.command(rich_help_panel=PANEL)(command)

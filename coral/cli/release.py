"""Releases: `coral release [LEVEL]`, `coral releases`, `coral changelog A B`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import (
    ListTrainingStateOption,
    complete_ref,
    emit_json,
    fmt_float,
    fmt_time,
    open_repo,
    out,
    phase_progress,
)
from coral.cli.tables import Column, FitTable

ORDER = 42  # after branches and tags
PANEL = "Releases"


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={fmt_float(v) if isinstance(v, float) else v}" for k, v in metrics.items()
    )


def _command(level: str, pre: str | None, build: str | None) -> str:
    parts = ["coral release", level]
    if pre:
        parts += ["--pre", pre]
    if build:
        parts += ["--build", build]
    return " ".join(parts)


def release(
    level: Annotated[
        str | None,
        typer.Argument(
            help="major, minor or patch (or a version such as v2.0.0); none: propose one "
            "from the change since the last release.",
            show_default=False,
        ),
    ] = None,
    pre: Annotated[
        str | None,
        typer.Option("--pre", help="Make a pre-release LABEL.N (beta -> v1.3.0-beta.1)."),
    ] = None,
    build: Annotated[
        str | None, typer.Option("--build", help="Build metadata (v1.3.0+META).")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Description of the release.")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Without a level: create the proposed release.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tag HEAD as the next semantic version, carrying its metrics."""
    from coral.porcelain.release import ReleaseResult, create_release, propose_release

    repo = open_repo()
    if level is None:
        proposal = propose_release(repo, pre=pre, build=build)
        if yes:
            result = create_release(
                repo, proposal.level, pre=pre, build=build, message=message, proposal=proposal
            )
        else:
            result = ReleaseResult(None, proposal, False)
    else:
        result = create_release(repo, level, pre=pre, build=build, message=message)
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    p = result.proposal
    if level is None:
        since = f" since {escape(p.previous.name)}" if p.previous else ""
        console.print(f"proposed release: [bold]{p.version}[/bold] ({p.level}){since}")
        console.print(f"reason: {escape(p.reason)}")
    if result.release is None:
        console.print(f"run `{escape(_command(p.level, pre, build))}` to create it")
        return
    r = result.release
    metrics = _metrics_text(r.tag.metrics)
    console.print(
        f"Released [bold]{escape(r.name)}[/bold] at {r.tag.commit_hash[:10]}"
        + (f" ({escape(metrics)})" if metrics else "")
    )


def releases(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the releases (semantic-version tags), newest first, with their metrics."""
    from coral.porcelain.release import list_releases

    found = list_releases(open_repo())
    if json_output:
        emit_json([r.to_dict() for r in found])
        return
    console = out()
    if not found:
        console.print("no releases (`coral release minor` makes the first, v0.1.0)")
        return
    described = any(r.tag.description for r in found)
    table = FitTable(
        [
            Column("version", key=True),
            Column("date", drop=40),
            Column("commit", drop=60),
            Column("metrics", drop=50),
            *([Column("description", drop=30)] if described else []),
        ]
    )
    for r in found:
        cells = [
            escape(r.name),
            fmt_time(r.tag.created_at)[:16],
            r.tag.commit_hash[:10],
            escape(_metrics_text(r.tag.metrics)),
        ]
        table.add_row(*cells, *([escape(r.tag.description or "")] if described else []))
    table.render(console)


def changelog(
    from_ref: Annotated[
        str,
        typer.Argument(help="The older end (tag, branch, commit).", autocompletion=complete_ref),
    ],
    to_ref: Annotated[
        str, typer.Argument(help="The newer end.", autocompletion=complete_ref)
    ] = "HEAD",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Markdown to this file.")
    ] = None,
    include_training_state: ListTrainingStateOption = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write a Markdown changelog from A to B: commits, metric deltas, tensors changed."""
    from coral.porcelain.changelog import changelog as build

    with phase_progress() as report:
        log = build(
            open_repo(),
            from_ref,
            to_ref,
            include_training_state=include_training_state,
            progress=report,
        )
    text = log.to_markdown()
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if json_output:
        emit_json({**log.to_dict(), "output": str(output) if output else None})
    elif output is None:
        typer.echo(text, nl=False)
    else:
        out().print(f"wrote {escape(str(output))} ({len(log.commits)} commits)")


def register(app: typer.Typer) -> None:
    for command in (release, releases, changelog):
        app.command(rich_help_panel=PANEL)(command)

"""Branches, tags and merging: `coral branch`, `checkout`, `tag`, `merge`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coral.cli._common import (
    MetricOption,
    complete_branch,
    complete_ref,
    complete_tag,
    emit_json,
    err,
    first_line,
    fmt_float,
    fmt_time,
    open_repo,
    out,
    parse_metrics,
    state,
)
from coral.errors import CoralError
from coral.version_control import pruning

ORDER = 40  # position of this group in `coral --help`
PANEL = "Branches, tags, merges"
SHOWN_NAMES = 5  # tensor names a merge summary shows before "... and N more"


def branch(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Create a branch with this name (no name: list branches).", show_default=False
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Argument(
            help="Where the new branch starts (default: HEAD).",
            autocompletion=complete_ref,
            show_default=False,
        ),
    ] = None,
    delete: Annotated[
        str | None,
        typer.Option(
            "--delete",
            "-d",
            help="Delete this branch (if merged).",
            autocompletion=complete_branch,
            show_default=False,
        ),
    ] = None,
    force_delete: Annotated[
        str | None,
        typer.Option(
            "-D",
            help="Delete this branch even if it is not merged.",
            autocompletion=complete_branch,
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List, create or delete branches."""
    repo = open_repo()
    target = delete or force_delete
    if target:
        tip = repo.delete_branch(target, force=bool(force_delete))
        if json_output:
            emit_json({"deleted": target, "commit_hash": tip})
        else:
            out().print(f"Deleted branch {escape(target)} (was {tip[:10]})")
        return
    if name:
        b = repo.create_branch(name, start)
        if json_output:
            emit_json(b.to_dict())
        else:
            out().print(f"Created branch {escape(b.name)} at {b.commit_hash[:10]}")
        return
    branches = repo.list_branches()
    head = repo.head()
    if json_output:
        emit_json(
            [
                {**b.to_dict(), "message": first_line(repo.read_commit(b.commit_hash).message)}
                for b in branches
            ]
        )
        return
    console = out()
    if head.detached:
        console.print(f"* [green](HEAD detached at {(head.commit or '')[:10]})[/green]")
    elif head.commit is None:
        console.print(f"* [green]{escape(head.branch or '')}[/green] (no commits yet)")
    for b in branches:
        mark = "*" if b.is_current else " "
        label = f"[green]{escape(b.name)}[/green]" if b.is_current else escape(b.name)
        msg = first_line(repo.read_commit(b.commit_hash).message)
        console.print(f"{mark} {label}  [yellow]{b.commit_hash[:10]}[/yellow] {escape(msg)}")


def checkout(
    ref: Annotated[
        str,
        typer.Argument(
            help="Branch (attaches HEAD), or tag / commit (detaches HEAD).",
            autocompletion=complete_ref,
        ),
    ],
    new_branch: Annotated[
        str | None,
        typer.Option("-b", help="Create this branch at REF and check it out.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Drop staged changes.")] = False,
) -> None:
    """Switch HEAD to a branch, tag or commit."""
    repo = open_repo()
    if new_branch:
        repo.create_branch(new_branch, ref)
        ref = new_branch
    target = repo.checkout(ref, force=force)  # PrunedCommitError once gc took its weights
    if repo.current_branch:
        out().print(f"Switched to branch {escape(repo.current_branch)} ({target[:10]})")
    else:
        subject = escape(first_line(repo.read_commit(target).message))
        out().print(f"HEAD is now at {target[:10]} (detached) {subject}")
    why = pruning.reason(repo.database, target)
    if why is not None:
        err().print(
            f"[yellow]note:[/yellow] {target[:10]} is pruned ({escape(why)}): `coral gc` keeps "
            "its weights only while a branch, tag or HEAD names it; tag it (or unprune it) "
            "to keep it"
        )


def tag(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Create a tag with this name (no name: list tags).", show_default=False
        ),
    ] = None,
    ref: Annotated[
        str, typer.Argument(help="The commit to tag.", autocompletion=complete_ref)
    ] = "HEAD",
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Description of the version.")
    ] = None,
    metric: MetricOption = None,
    delete: Annotated[
        str | None,
        typer.Option(
            "--delete",
            "-d",
            help="Delete this tag.",
            autocompletion=complete_tag,
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Move an existing tag.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List, create or delete version tags (with a description and metrics)."""
    repo = open_repo()
    if delete:
        t = repo.delete_tag(delete)
        if json_output:
            emit_json({"deleted": t.to_dict()})
        else:
            out().print(f"Deleted tag {escape(t.name)} (was {t.commit_hash[:10]})")
        return
    if name:
        t = repo.tag_version(
            name, description=message, metrics=parse_metrics(metric), ref=ref, force=force
        )
        if json_output:
            emit_json(t.to_dict())
        else:
            out().print(f"Tagged {t.commit_hash[:10]} as {escape(t.name)}")
        return
    tags = repo.list_tags()
    if json_output:
        emit_json([t.to_dict() for t in tags])
        return
    if not tags:
        out().print("no tags")
        return
    table = Table()
    for col in ("tag", "commit", "description", "metrics", "created"):
        table.add_column(col)
    for t in tags:
        metrics = ", ".join(
            f"{k}={fmt_float(v) if isinstance(v, float) else v}" for k, v in t.metrics.items()
        )
        table.add_row(
            escape(t.name),
            t.commit_hash[:10],
            escape(t.description or ""),
            escape(metrics),
            fmt_time(t.created_at) if t.created_at else "",
        )
    out().print(table)


def _parse_weights(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError as exc:
        raise CoralError(
            f"bad --weights {text!r}", hint="give one number per side, e.g. --weights 0.7,0.3"
        ) from exc


def merge(
    branches: Annotated[
        list[str],
        typer.Argument(
            help="Branch(es) or commits to merge into HEAD.", autocompletion=complete_ref
        ),
    ],
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            "-s",
            help="On conflicts: fail, ours, theirs, average, weighted, uniform_soup, "
            "ties, dare_ties.",
        ),
    ] = "fail",
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Merge commit message.")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="For weighted: comma-separated weights (ours first)."),
    ] = None,
    density: Annotated[
        float | None,
        typer.Option("--density", help="For ties/dare_ties: fraction of each task vector kept."),
    ] = None,
    drop_rate: Annotated[
        float | None, typer.Option("--drop-rate", help="For dare_ties: drop probability.")
    ] = None,
    scale: Annotated[
        float | None, typer.Option("--scale", help="For ties/dare_ties: task-vector scale.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="For dare_ties: random seed.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Merge branches into HEAD; conflicting tensors are resolved by --strategy."""
    repo = open_repo()
    params: dict[str, Any] = {
        k: v
        for k, v in (
            ("weights", _parse_weights(weights)),
            ("density", density),
            ("drop_rate", drop_rate),
            ("scale", scale),
            ("seed", seed),
        )
        if v is not None
    }
    target: Any = branches[0] if len(branches) == 1 else branches
    result = repo.merge(target, strategy=strategy, message=message, **params)
    if json_output:
        emit_json(result.to_dict() if hasattr(result, "to_dict") else {"commit_hash": str(result)})
        return
    console = out()
    if getattr(result, "up_to_date", False):
        console.print("Already up to date.")
    elif getattr(result, "fast_forward", False):
        console.print(f"Fast-forward to {str(result)[:10]}")
    else:
        console.print(
            f"Merged {escape(', '.join(branches))} into {escape(repo.current_branch or 'HEAD')}: "
            f"{str(result)[:10]} (strategy {getattr(result, 'strategy', strategy)})"
        )
        for line in merge_summary(
            getattr(result, "conflicts", []) or [],
            getattr(result, "resolutions", {}) or {},
            (getattr(result, "details", {}) or {}).get("file_conflicts", []),
            every=state().verbose,
        ):
            console.print(escape(line))


def some_names(names: Sequence[str], limit: int = SHOWN_NAMES) -> str:
    """'a, b, c ... and 7 more' (at most `limit` names)."""
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def merge_summary(
    conflicts: Sequence[str],
    resolutions: Mapping[str, str],
    file_conflicts: Sequence[str] = (),
    *,
    every: bool = False,
) -> list[str]:
    """What a merge did, in a few lines: conflicts counted per outcome, a few of their names
    (the ones not combined by the strategy first), model files kept from ours. `every` lists
    each conflict with its resolution instead of a few names."""
    lines: list[str] = []
    if not conflicts:
        lines.append("no conflicts")
    else:
        outcomes = Counter(resolutions.get(n, "unresolved") for n in conflicts)
        counts = ", ".join(f"{n} {how}" for how, n in outcomes.most_common())
        noun = "conflict" if len(conflicts) == 1 else "conflicts"
        lines.append(f"{len(conflicts)} {noun}: {counts}")
        if every:
            lines.extend(f"  {n}: {resolutions.get(n, 'unresolved')}" for n in conflicts)
        else:
            rare = {how for how, _ in outcomes.most_common()[1:]}
            ordered = sorted(conflicts, key=lambda n: (resolutions.get(n) not in rare, n))
            lines.append(f"  {some_names(ordered)}")
    if file_conflicts:
        lines.append(
            f"{len(file_conflicts)} model file(s) changed on both sides, ours kept: "
            f"{some_names(list(file_conflicts))}"
        )
    return lines


def register(app: typer.Typer) -> None:
    for command in (branch, checkout, tag, merge):
        app.command(rich_help_panel=PANEL)(command)

"""Repository upkeep: `coral gc`, `fsck`, `stats`.

gc and fsck draw one rich progress bar per phase on stderr when it is a terminal (nothing
otherwise), from the `progress(phase, done, total)` callback of the library.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coral.cli._common import (
    emit_json,
    err,
    first_line,
    human_bytes,
    open_repo,
    out,
    phase_progress,
    repo_root,
)
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError, DatabaseDamagedError, NotARepositoryError
from coral.storage.base import StoreStats
from coral.version_control.audit import audited, current_actor
from coral.version_control.db_errors import damage_reason
from coral.version_control.fsck import FsckReport
from coral.version_control.repo_config import DB_FILE

ORDER = 50  # position of this group in `coral --help`
PANEL = "Maintenance"
_FULL_HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def _short(text: str) -> str:
    """Every full hash in `text` at 10 characters (DESIGN §8)."""
    return _FULL_HASH.sub(lambda m: m.group()[:10], text)


def _finding(problem: Any) -> str:
    """An fsck finding as a line: hashes at 10 characters; a file path is kept whole."""
    where = f" ({problem.path})" if problem.path else ""
    return f"{problem.kind} {_short(problem.id)}{where}: {_short(problem.reason)}"


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only report what would be removed.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete objects that no branch, tag, reflog entry or staged change needs, and the weights
    of pruned checkpoints (retention) that no branch, tag or HEAD names."""
    repo = open_repo()
    if dry_run:  # changes nothing: not audited
        with phase_progress() as progress:
            result = repo.gc(dry_run=True, progress=progress)
    else:
        with audited(repo.database, "gc", actor=current_actor(repo.config)) as note:
            with phase_progress() as progress:
                result = repo.gc(progress=progress)
            note.detail.update(removed=result.removed, freed_bytes=result.freed_bytes)
    if json_output:
        emit_json(result.to_dict())
        return
    removed = ", ".join(
        f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(result.removed.items())
    )
    verb, freed = ("would remove", "would free") if dry_run else ("removed", "freed")
    out().print(f"{verb} {removed or 'nothing'}, {freed} {human_bytes(result.freed_bytes)}")


def fsck(
    quick: Annotated[
        bool, typer.Option("--quick", help="Check references only; do not re-hash every object.")
    ] = False,
    repair_db: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild a damaged or missing database (refs from what can be read, the "
            "reflog and the commit objects; the old file is kept), then check.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify every object's hash, every reference and the database. Exits 1 when something
    is wrong."""
    repaired = None
    if repair_db:
        from coral.version_control.repair import repair

        repaired = repair(repo_root())
        if not json_output:
            out().print(escape(str(repaired)))
    report = _check(quick)
    if json_output:
        result = report.to_dict()
        if repaired is not None:
            result["repair"] = repaired.to_dict()
        emit_json(result)
    else:
        console = out()
        checked = ", ".join(f"{kind} {n}" for kind, n in sorted(report.checked.items()))
        for note in report.info:
            console.print(f"[dim]info:[/dim] {escape(_finding(note))}")
        for w in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(_finding(w))}")
        for p in report.problems:
            console.print(f"[red]{escape(_finding(p))}[/red]")
        if report.ok:
            console.print(f"ok: checked {checked or 'nothing'}")
    if not report.ok:
        refs_damaged = any(p.kind in _REPAIRABLE for p in report.problems)
        raise CoralError(
            f"fsck found {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}",
            hint=_REPAIR_HINT
            if refs_damaged and not repair_db
            else "copy damaged or missing objects back from a backup of .coral/objects, then "
            "run `coral fsck` again; `coral gc` removes unreferenced ones",
        )


_REPAIRABLE = {"database", "ref", "reflog", "staging"}
_REPAIR_HINT = (
    "run `coral fsck --repair`: it rebuilds the database from what it can read, the reflog "
    "and the commit objects (the old file is kept as coral.db.damaged-<time>)"
)


def _check(quick: bool) -> FsckReport:
    """fsck of the repository; a database too damaged to open is one finding."""
    try:
        repo = open_repo()
    except (DatabaseDamagedError, NotARepositoryError) as exc:
        from coral.version_control.repair import find_coral_dir

        if isinstance(exc, NotARepositoryError):
            try:
                coral_dir = find_coral_dir(repo_root())
            except NotARepositoryError:
                raise exc from None
            reason = "the database is missing"
        else:
            coral_dir, reason = find_coral_dir(repo_root()), damage_reason(exc)
        report = FsckReport()
        report.add("database", DB_FILE, str(coral_dir / DB_FILE), reason)
        return report
    with phase_progress() as progress:
        return repo.fsck(full=not quick, progress=progress)


def _ratio(logical: float, stored: float) -> str:
    return f"{logical / stored:.2f}x" if stored else "-"


def stats(
    visual: Annotated[
        Path | None, typer.Option("--visual", help="Write a savings chart: PATH.png or PATH.html.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What deduplication and delta encoding saved, per commit and in total."""
    repo = open_repo()
    history = repo.storage_history()
    dedup = repo.deduplicator.get_stats()
    store = repo.store.stats()
    assert isinstance(store, StoreStats)
    if visual is not None:
        try:
            from coral.utils.diff_report import render_savings_chart
        except ImportError as exc:
            raise CoralError(
                f"charts are unavailable: {exc}", hint="pip install 'coral-vcs[viz]'"
            ) from exc
        written = render_savings_chart(history, visual)
        if not json_output:
            err().print(f"wrote {escape(str(written))}")
    store_dict: dict[str, Any] = {
        "tensors": store.tensors,
        "chunks": store.chunks,
        "raw_bytes": store.raw_bytes,
        "stored_bytes": store.stored_bytes,
        "encodings": dict(store.encodings),
        "compression_ratio": store.compression_ratio,
    }
    if json_output:
        emit_json({"history": history, "deduplication": dedup.to_dict(), "store": store_dict})
        return
    console = out()
    table = FitTable(
        [
            Column("commit", key=True),
            Column("message", drop=45),
            Column("tensors", justify="right", drop=20),
            Column("new", justify="right", drop=15),
            Column("logical", justify="right", drop=40),
            Column("stored", justify="right", keep=True),
            Column("ratio", justify="right", drop=50),
            Column("cumulative", justify="right", drop=35),
        ],
        title="Storage per commit (oldest first)",
    )
    logical_total = stored_total = 0
    for row in history:
        logical_total += row["logical_bytes"]
        stored_total += row["stored_bytes"]
        table.add_row(
            row["commit"],
            escape(first_line(row["message"])[:40]),
            str(row.get("tensors", "")),
            str(row.get("new_tensors", "")),
            human_bytes(row["logical_bytes"]),
            human_bytes(row["stored_bytes"]),
            _ratio(row["logical_bytes"], row["stored_bytes"]),
            _ratio(logical_total, stored_total),
        )
    table.render(console)

    totals = Table(title="Totals", title_justify="left", show_header=False)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("tensor versions in history", str(dedup.total_weights))
    totals.add_row("  stored in full", str(dedup.unique_weights))
    totals.add_row("  deduplicated (identical)", str(dedup.duplicate_weights))
    totals.add_row("  stored as deltas (similar)", str(dedup.similar_weights))
    totals.add_row("logical size of all commits", human_bytes(dedup.total_bytes))
    totals.add_row("  after deduplication", human_bytes(dedup.unique_bytes))
    totals.add_row("  on disk (delta + compression)", human_bytes(dedup.stored_bytes))
    totals.add_row("saved", f"{human_bytes(dedup.bytes_saved)} ({dedup.compression_ratio:.2f}x)")
    totals.add_row("store: tensors / chunks", f"{store.tensors} / {store.chunks}")
    encodings = ", ".join(f"{k}={v}" for k, v in sorted(store.encodings.items()))
    if encodings:
        totals.add_row("store: chunk encodings", encodings)
    console.print(totals)


def register(app: typer.Typer) -> None:
    for command in (gc, fsck, stats):
        app.command(rich_help_panel=PANEL)(command)

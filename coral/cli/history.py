"""Reading history: `coral log`, `show`, `diff`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape

from coral.cli._common import (
    ListTrainingStateOption,
    complete_ref,
    emit_json,
    first_line,
    fmt_float,
    fmt_shape,
    fmt_time,
    human_bytes,
    open_repo,
    out,
    phase_progress,
    progress,
)
from coral.cli.pager import paged
from coral.cli.tables import Column, FitTable
from coral.core.training_names import is_training_state
from coral.errors import CoralError, RefNotFoundError
from coral.porcelain.history import (
    LogEntry,
    commit_detail,
    graph_rows,
    iter_log_entries,
    log_entries,
    tensor_detail,
)
from coral.utils.report_format import counts_text

if TYPE_CHECKING:
    from coral.version_control.diff import DiffResult, TensorComparison
    from coral.version_control.repository import Repository

ORDER = 30  # position of this group in `coral --help`
PANEL = "History"


def _metric_items(metrics: dict[str, Any]) -> list[str]:
    return [f"{k}={fmt_float(v) if isinstance(v, float) else v}" for k, v in metrics.items()]


def _wrapped(prefix: str, items: list[str], width: int) -> list[str]:
    """`prefix` + items joined by ", ", continued under the first item when a line is full;
    an item is never split (markup-escaped lines)."""
    indent = " " * cell_len(prefix)
    lines: list[str] = []
    line = prefix
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if line not in (prefix, indent) and cell_len(line) + 1 + cell_len(piece) > width:
            lines.append(line)
            line = indent
        line += ("" if line in (prefix, indent) else " ") + piece
    lines.append(line)
    return [escape(x) for x in lines]


LOG_BATCH = 512  # lines of `coral log` per print


# -- log --------------------------------------------------------------------------------------
def log(
    ref: Annotated[
        str | None,
        typer.Argument(
            help="Start from this branch, tag or commit (default: HEAD).",
            autocompletion=complete_ref,
            show_default=False,
        ),
    ] = None,
    max_count: Annotated[
        int | None, typer.Option("-n", "--max-count", help="Show at most N commits.")
    ] = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per commit.")] = False,
    graph: Annotated[bool, typer.Option("--graph", help="Draw the commit graph.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the commit history (on a terminal, through a pager: see CORAL_PAGER)."""
    repo = open_repo()
    if json_output:
        emit_json([e.to_dict() for e in log_entries(repo, ref, max_count)])
        return
    rows: Iterable[tuple[str, LogEntry | None]]
    with paged(out()) as console:
        if graph:  # lanes are drawn from the whole list
            entries = log_entries(repo, ref, max_count)
            commits = [e.commit for e in entries]
            by_hash = {e.commit.commit_hash: e for e in entries}
            rows = [(p, by_hash[c.commit_hash] if c else None) for p, c in graph_rows(commits)]
        else:
            rows = (("", e) for e in iter_log_entries(repo, ref, max_count))
        _print_log(console, rows, oneline)


def _print_log(
    console: Console, rows: Iterable[tuple[str, LogEntry | None]], oneline: bool
) -> None:
    """Print the log `rows` (graph prefix, entry or None for a connector line), LOG_BATCH
    lines per print: one print per line is slow."""
    batch: list[str] = []
    shown = 0
    for prefix, entry in rows:
        if entry is None:
            batch.append(prefix)  # graph characters only, never "[": no markup to escape
        else:
            batch.extend(_log_lines(entry, prefix, oneline, console.width))
            shown += 1
        if len(batch) >= LOG_BATCH:
            console.print("\n".join(batch))
            batch = []
    if batch:
        console.print("\n".join(batch))
    if not shown:
        console.print("No commits yet")


def _log_lines(entry: LogEntry, prefix: str, oneline: bool, width: int) -> list[str]:
    """The lines (rich markup) of one commit in `coral log`, after the graph's `prefix`."""
    c = entry.commit
    pad = f"{prefix} " if prefix else ""
    deco = entry.refs
    deco_text = f" [bold cyan]({escape(', '.join(deco))})[/bold cyan]" if deco else ""
    if entry.pruned:
        deco_text += f" [dim]\\[{entry.pruned}][/dim]"
    exps = entry.experiments
    if oneline:
        subject = escape(first_line(c.message))
        exp_text = (
            f" [magenta]\\[{escape(', '.join(n for _, n in exps))}][/magenta]" if exps else ""
        )
        return [
            f"{escape(pad)}[yellow]{c.commit_hash[:10]}[/yellow]{deco_text} {subject}{exp_text}"
        ]
    cont = escape((prefix.replace("*", "|") + " ") if prefix else "")
    lines = [f"{escape(pad)}[yellow]commit {c.commit_hash[:10]}[/yellow]{deco_text}"]
    if c.is_merge:
        lines.append(f"{cont}Merge:  {' '.join(p[:10] for p in c.parent_hashes)}")
    lines.append(f"{cont}Author: {escape(c.author)}")
    lines.append(f"{cont}Date:   {fmt_time(c.timestamp)}")
    if c.metrics:
        lines.extend(_wrapped(f"{cont}Metrics: ", _metric_items(c.metrics), width))
    lines.extend(f"{cont}Experiment: {escape(name)} ({exp_id})" for exp_id, name in exps)
    lines.append(cont.rstrip())
    lines.extend(f"{cont}    {escape(line)}" for line in c.message.strip().splitlines() or [""])
    lines.append(cont.rstrip())
    return lines


# -- show -------------------------------------------------------------------------------------
def _split_target(repo: Repository, target: str) -> tuple[str, str | None]:
    """'REF:NAME' -> (REF, NAME); a bare weight name of HEAD -> ("HEAD", NAME); else (REF, None)."""
    if ":" in target:
        ref, _, name = target.partition(":")
        return ref or "HEAD", name
    try:
        repo.resolve_ref(target)
        return target, None
    except RefNotFoundError:
        if repo.head_commit() and target in repo.get_tree("HEAD").entries:
            return "HEAD", target
        raise


def _show_tensor(repo: Repository, ref: str, name: str, json_output: bool) -> None:
    detail = tensor_detail(repo, ref, name)
    info = detail.to_dict()
    commit, entry = detail.commit, detail.entry
    if json_output:
        info.pop("histogram")
        emit_json(info)
        return
    rows = [
        ("tensor", escape(name)),
        ("commit", f"{commit.commit_hash[:10]} {escape(first_line(commit.message))}"),
        ("id", entry.tensor_id[:10]),
        ("shape", fmt_shape(entry.shape)),
        ("dtype", entry.dtype),
        ("size", human_bytes(entry.nbytes)),
    ]
    rows += [(key, escape(str(info[key]))) for key in ("layer_type", "model_name") if info[key]]
    if "storage" in info:
        s = info["storage"]
        rows.append(
            (
                "stored",
                f"{human_bytes(s['stored_bytes'])} ({s['encoding']}, "
                f"{s['compression_ratio']:.2f}x, {s['chunks']} chunks, "
                f"delta depth {s['chain_depth']})",
            )
        )
    rows += [
        (key, fmt_float(value) if isinstance(value, float) else str(value))
        for key, value in info["values"].items()
    ]
    console = out()
    for key, value in rows:  # lines, not a table: the name is never wrapped
        console.print(f"[bold]{key:<10}[/bold] {value}", soft_wrap=True)


def show(
    target: Annotated[
        str,
        typer.Argument(
            help="A commit (branch, tag, hash, HEAD~2), or REF:TENSOR for one tensor.",
            autocompletion=complete_ref,
        ),
    ] = "HEAD",
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers", "-l", help="Only tensors matching this pattern, e.g. 'encoder.*'."
        ),
    ] = None,
    include_training_state: ListTrainingStateOption = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a commit and its tensors, or one tensor (REF:NAME) with its statistics."""
    # imported here, not at start-up: `coral log` shares this module
    from coral.cli.collab import print_comments, review_line
    from coral.porcelain.collab import collaboration

    repo = open_repo()
    ref, name = _split_target(repo, target)
    if name is not None:
        _show_tensor(repo, ref, name, json_output)
        return
    detail = commit_detail(repo, ref, layers=layers, include_training_state=include_training_state)
    collab = collaboration(repo, detail.commit.commit_hash)
    if json_output:
        emit_json({**detail.to_dict(), **collab.to_dict()})
        return
    commit, entries = detail.commit, [t.entry for t in detail.tensors]
    with paged(out()) as console:  # on a terminal, through the pager
        deco = detail.refs
        console.print(
            f"[yellow]commit {commit.commit_hash[:10]}[/yellow]"
            + (f" [bold cyan]({escape(', '.join(deco))})[/bold cyan]" if deco else "")
            + (f" [dim]\\[{detail.pruned}][/dim]" if detail.pruned else "")
        )
        if commit.is_merge:
            console.print(f"Merge:  {' '.join(p[:10] for p in commit.parent_hashes)}")
        console.print(f"Author: {escape(commit.author)}")
        console.print(f"Date:   {fmt_time(commit.timestamp)}")
        if commit.metrics:
            for line in _wrapped("Metrics: ", _metric_items(commit.metrics), console.width):
                console.print(line)
        if collab.review is not None:
            console.print(f"Review: {review_line(collab.review)}")
        console.print()
        for line in commit.message.strip().splitlines():
            console.print(f"    {escape(line)}")
        console.print()
        if collab.comments:
            console.print(f"Comments ({len(collab.comments)}):")
            print_comments(console, collab.comments, indent="  ")
            console.print()
        table = FitTable(
            [
                Column("name", key=True),
                Column("shape", drop=40),
                Column("dtype", drop=30),
                Column("size", justify="right", drop=50),
                Column("vs parent", drop=45),
                Column("tensor id", drop=20),
            ],
            title=f"{len(entries)} of {detail.total_tensors} tensors"
            if layers or detail.training_state
            else f"{len(entries)} tensors",
            caption=f"total {human_bytes(sum(e.nbytes for e in entries))}",
        )
        for t in detail.tensors:
            e = t.entry
            change = _CHANGE.get(t.change, t.change) if commit.parent_hashes else ""
            table.add_row(
                escape(e.name),
                fmt_shape(e.shape),
                e.dtype,
                human_bytes(e.nbytes),
                change,
                e.tensor_id[:10],
            )
        table.render(console)
        if detail.removed:
            console.print(f"[red]{len(detail.removed)} tensors removed since the parent[/red]")
        if detail.training_state:
            console.print(
                f"[dim]{len(detail.training_state)} training-state tensors "
                f"({human_bytes(detail.training_state_bytes)}) not listed "
                "(--include-training-state)[/dim]"
            )
        if detail.files:
            files = FitTable(
                [
                    Column("path", key=True),
                    Column("size", justify="right"),
                    Column("blob", drop=10),
                ],
                title=f"{len(detail.files)} model files",
            )
            for f in detail.files:
                files.add_row(escape(f.path), human_bytes(f.size), f.blob_id[:10])
            files.render(console)


_CHANGE = {"added": "[green]added[/green]", "changed": "[yellow]changed[/yellow]", "identical": ""}


# -- diff -------------------------------------------------------------------------------------
_STATUS = {
    "removed": "[red]removed[/red]",
    "added": "[green]added[/green]",
    "shape_changed": "[magenta]shape changed[/magenta]",
    "changed": "[yellow]changed[/yellow]",
    "metadata": "[cyan]metadata[/cyan]",
    "identical": "[dim]identical[/dim]",
}
_ROW_ORDER = ("removed", "added", "shape_changed", "changed", "metadata", "identical")


def _training_state_left_out(repo: Repository, refs: list[str]) -> int:
    names: set[str] = set()
    for ref in refs:
        names.update(n for n in repo.get_tree(ref).entries if is_training_state(n))
    return len(names)


def _diff_rows(result: DiffResult, show_all: bool) -> list[tuple[str, TensorComparison]]:
    rows: list[tuple[str, TensorComparison]] = []
    metadata = set(result.metadata_changed)
    for t in result.tensors:
        kind = "metadata" if t.name in metadata else t.category
        if kind != "identical" or show_all:
            rows.append((kind, t))
    return sorted(rows, key=lambda r: _ROW_ORDER.index(r[0]))


_NUMERIC = [
    Column("‖Δ‖₂", justify="right", drop=30),
    Column("‖Δ‖/‖a‖", justify="right", drop=60),
    Column("1−cos", justify="right", drop=35),
    Column("max |Δ|", justify="right", drop=40),
    Column("Δ elements", justify="right", drop=45),
]


def _diff_table(result: DiffResult, show_all: bool) -> FitTable:
    """One row per tensor that differs (all with `show_all`); the numeric columns only when
    some row has numbers, dropped one by one (never the name) to fit the terminal."""
    rows = _diff_rows(result, show_all)
    numeric = any(t.metrics is not None for _, t in rows)
    table = FitTable(
        [
            Column("status", keep=True),
            Column("name", key=True),
            Column("shape", drop=50),
            Column("dtype", drop=20),
            *(_NUMERIC if numeric else []),
        ]
    )
    for kind, t in rows:
        old, new = t.old_shape, t.new_shape
        if old is not None and new is not None and old != new:
            shape = f"{fmt_shape(old)} → {fmt_shape(new)}"
        else:
            shape = fmt_shape(new if new is not None else old or ())
        dtype = f"{t.old_dtype} → {t.new_dtype}" if t.dtype_changed else t.new_dtype or t.old_dtype
        m = t.metrics
        if m is not None:
            numbers = [
                fmt_float(m.l2),
                fmt_float(m.relative),
                fmt_float(m.one_minus_cosine, ".3g"),
                fmt_float(m.max_abs),
                str(m.changed_elements),
            ]
        else:
            numbers = ["0" if kind == "identical" else ""] * len(_NUMERIC)
        cells = [_STATUS[kind], escape(t.name), shape, dtype or ""]
        table.add_row(*cells, *(numbers if numeric else []))
    return table


def _write_visual(
    repo: Repository,
    result: DiffResult,
    comparison: dict[str, Any],
    path: Path,
    select: Callable[[str], bool] | None,
    show_all: bool,
) -> Path:
    from coral.porcelain.weights import weights_at
    from coral.utils.heatmap import render_diff_png
    from coral.utils.html_report import render_diff_html

    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        render = render_diff_html
    elif suffix == ".png":
        render = render_diff_png
    else:
        raise CoralError(
            f"cannot tell the report type of {path}", hint="end the path in .png or .html"
        )

    before = weights_at(repo, result.from_ref, select)
    after = weights_at(repo, result.to_ref, select)
    with progress(f"drawing {path.name}", None):
        written: Path = render(comparison, path, before, after, show_identical=show_all)
    return written


def diff(
    from_ref: Annotated[
        str,
        typer.Argument(help="The older commit (branch, tag, hash).", autocompletion=complete_ref),
    ],
    to_ref: Annotated[
        str | None,
        typer.Argument(
            help="The newer commit (default: HEAD plus staged changes).",
            autocompletion=complete_ref,
            show_default=False,
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="List (and draw) identical tensors too.")
    ] = False,
    visual: Annotated[
        Path | None, typer.Option("--visual", help="Write a visual report: PATH.png or PATH.html.")
    ] = None,
    ascii_chart: Annotated[
        bool, typer.Option("--ascii", help="Print a per-block change chart in the terminal.")
    ] = False,
    width: Annotated[
        int | None,
        typer.Option("--width", help="Width of the --ascii chart (default: the terminal's)."),
    ] = None,
    layers: Annotated[
        list[str] | None,
        typer.Option("--layers", "-l", help="Only tensors matching this glob (repeatable)."),
    ] = None,
    include_training_state: Annotated[
        bool,
        typer.Option(
            "--include-training-state",
            help="Also compare optimizer, scheduler and RNG state (left out by default).",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare two commits tensor by tensor (added, removed, changed with norms, identical),
    and their model files (config, tokenizer, ...) as text."""
    # imported here, not at start-up: `coral log` shares this module
    from coral.cli.diff_view import print_file_changes
    from coral.porcelain.compare import tensor_select
    from coral.utils.ascii_report import render_diff_ascii
    from coral.utils.comparison import comparison_of_diff

    repo = open_repo()
    select = tensor_select(layers, include_training_state)
    with phase_progress() as report:
        result = repo.diff(from_ref, to_ref, select=select, progress=report)
    comparison: dict[str, Any] | None = None
    if visual is not None or ascii_chart:
        comparison = comparison_of_diff(result)
    if visual is not None and comparison is not None:
        written = _write_visual(repo, result, comparison, visual, select, show_all)
        if not json_output:
            out().print(f"wrote {escape(str(written))}")
    if json_output:
        emit_json(result.to_dict())
        return
    with paged(out()) as console:  # on a terminal, through the pager
        if ascii_chart and comparison is not None:
            chart = render_diff_ascii(comparison, width or console.width, show_identical=show_all)
            console.print(chart, markup=False)
            return
        head = f"diff {result.from_ref} -> {result.to_ref}:"
        counts = counts_text(result.counts())
        if cell_len(head) + 1 + len(counts) <= console.width:
            console.print(f"{head} {counts}", markup=False)
        else:
            console.print(head, markup=False)
            console.print(f"  {counts}", markup=False)
        if not include_training_state:
            hidden = _training_state_left_out(repo, [from_ref, to_ref or "HEAD"])
            if hidden:
                console.print(
                    f"[dim]{hidden} training-state tensors left out "
                    "(--include-training-state)[/dim]"
                )
        table = _diff_table(result, show_all)
        if table.row_count:
            table.render(console)
        print_file_changes(console, repo, from_ref, to_ref)


def register(app: typer.Typer) -> None:
    for command in (log, show, diff):
        app.command(rich_help_panel=PANEL)(command)

"""Reading history: `coral log`, `show`, `diff`."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from coral.cli._common import (
    complete_ref,
    emit_json,
    first_line,
    fmt_float,
    fmt_shape,
    fmt_time,
    human_bytes,
    open_repo,
    out,
)
from coral.cli.diff_view import print_file_changes, tensor_filter
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError, RefNotFoundError
from coral.storage.base import ObjectStats
from coral.version_control import pruning

if TYPE_CHECKING:
    from coral.version_control.objects import Commit, TreeEntry
    from coral.version_control.repository import Repository

ORDER = 30  # position of this group in `coral --help`
PANEL = "History"


# -- decorations and graph --------------------------------------------------------------------
def decorations(repo: Repository) -> dict[str, list[str]]:
    """commit hash -> ["HEAD -> main", "tag: v1", ...] as git prints them."""
    head = repo.head()
    labels: dict[str, list[str]] = {}
    for b in repo.list_branches():
        label = f"HEAD -> {b.name}" if head.branch == b.name else b.name
        labels.setdefault(b.commit_hash, []).append(label)
    if head.detached and head.commit:
        labels.setdefault(head.commit, []).insert(0, "HEAD")
    for t in repo.list_tags():
        labels.setdefault(t.commit_hash, []).append(f"tag: {t.name}")
    for lst in labels.values():
        lst.sort(key=lambda s: (not s.startswith("HEAD"), s.startswith("tag:"), s))
    return labels


def graph_rows(commits: list[Commit]) -> list[tuple[str, Commit | None]]:
    """(graph prefix, commit or None for a connector row), git-style, newest first."""
    lanes: list[str] = []
    rows: list[tuple[str, Commit | None]] = []
    shown = {c.commit_hash for c in commits}
    for c in commits:
        h = c.commit_hash
        if h not in lanes:
            lanes.append(h)
        col = lanes.index(h)
        others = [i for i, lane in enumerate(lanes) if lane == h and i != col]
        if others:  # branches that forked here join their lane first: "|/"
            chars = [" "] * (2 * len(lanes))
            for i in range(len(lanes)):
                if i in others:
                    chars[2 * i - 1] = "/"
                else:
                    chars[2 * i] = "|"
            rows.append(("".join(chars).rstrip(), None))
            lanes = [lane for i, lane in enumerate(lanes) if i not in others]
        rows.append((" ".join("*" if i == col else "|" for i in range(len(lanes))), c))
        parents = [p for p in c.parent_hashes if p in shown]
        if not parents:
            lanes.pop(col)
            continue
        lanes[col] = parents[0]
        added = []
        for p in parents[1:]:
            if p not in lanes:
                lanes.append(p)
                added.append(len(lanes) - 1)
        if added:
            chars = [" "] * (2 * len(lanes))
            for i in range(len(lanes)):
                if i in added:
                    chars[2 * i - 1] = "\\"
                else:
                    chars[2 * i] = "|"
            rows.append(("".join(chars).rstrip(), None))
    return rows


def linked_experiments(repo: Repository, commits: list[Commit]) -> dict[str, list[Any]]:
    """Commit hash -> experiments that produced it (empty when experiment tracking is absent)."""
    try:
        from coral.experiments import experiments_for_commits
    except ImportError:
        return {}
    return experiments_for_commits(repo, [c.commit_hash for c in commits])


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={fmt_float(v) if isinstance(v, float) else v}" for k, v in metrics.items()
    )


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
    """Show the commit history."""
    repo = open_repo()
    commits = repo.log(max_commits=max_count, branch=ref)
    labels = decorations(repo)
    experiments = linked_experiments(repo, commits)
    if json_output:
        emit_json(
            [
                {
                    **c.to_dict(),
                    "refs": labels.get(c.commit_hash, []),
                    "experiments": [
                        {"experiment_id": e.experiment_id, "name": e.name}
                        for e in experiments.get(c.commit_hash, [])
                    ],
                }
                for c in commits
            ]
        )
        return
    console = out()
    if not commits:
        console.print("No commits yet")
        return
    pruned = pruning.pruned(repo.database)
    rows = graph_rows(commits) if graph else [("", c) for c in commits]
    for prefix, c in rows:
        pad = f"{prefix} " if prefix else ""
        if c is None:
            console.print(prefix, markup=False)
            continue
        deco = labels.get(c.commit_hash)
        deco_text = f" [bold cyan]({escape(', '.join(deco))})[/bold cyan]" if deco else ""
        if c.commit_hash in pruned:
            state = pruning.status(repo, c.commit_hash)
            deco_text += (
                " [dim]\\[pruned, weights collected][/dim]"
                if state == pruning.COLLECTED
                else " [dim]\\[pruned][/dim]"
            )
        exps = experiments.get(c.commit_hash, [])
        if oneline:
            subject = escape(first_line(c.message))
            exp_text = (
                f" [magenta]\\[{escape(', '.join(e.name for e in exps))}][/magenta]" if exps else ""
            )
            console.print(
                f"{escape(pad)}[yellow]{c.commit_hash[:10]}[/yellow]{deco_text} {subject}{exp_text}"
            )
            continue
        cont = escape((prefix.replace("*", "|") + " ") if prefix else "")
        console.print(f"{escape(pad)}[yellow]commit {c.commit_hash[:10]}[/yellow]{deco_text}")
        if c.is_merge:
            console.print(f"{cont}Merge:  {' '.join(p[:10] for p in c.parent_hashes)}")
        console.print(f"{cont}Author: {escape(c.author)}")
        console.print(f"{cont}Date:   {fmt_time(c.timestamp)}")
        if c.metrics:
            console.print(f"{cont}Metrics: {escape(_metrics_text(c.metrics))}")
        for e in exps:
            console.print(f"{cont}Experiment: {escape(e.name)} ({e.experiment_id[:8]})")
        console.print(cont.rstrip())
        for line in c.message.strip().splitlines() or [""]:
            console.print(f"{cont}    {escape(line)}")
        console.print(cont.rstrip())


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


def _value_stats(data: np.ndarray) -> dict[str, Any]:
    if data.size == 0 or (
        data.dtype.kind not in "biufc" and not data.dtype.name.startswith(("bfloat", "float8"))
    ):
        return {"elements": int(data.size)}
    values = data.astype(np.complex128 if data.dtype.kind == "c" else np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {
        "elements": int(values.size),
        "zeros": int(np.count_nonzero(values == 0)),
        "nonfinite": int(values.size - finite.size),
        "l2_norm": float(np.linalg.norm(finite)) if finite.size else math.nan,
    }
    if data.dtype.kind != "c" and finite.size:
        stats.update(
            min=float(finite.min()),
            max=float(finite.max()),
            mean=float(finite.mean()),
            std=float(finite.std()),
        )
    return stats


def _show_tensor(repo: Repository, ref: str, name: str, json_output: bool) -> None:
    from coral.version_control.errors import WeightNotFoundError

    commit = repo.get_commit(ref)
    entry = repo.read_tree(commit.tree_id).entries.get(name)
    if entry is None:
        raise WeightNotFoundError(f"no weight named {name!r} in {ref} ({commit.short_hash})")
    weight = repo.load_entry(entry)
    info: dict[str, Any] = {
        "name": name,
        "commit": commit.commit_hash,
        "tensor": entry.tensor_id,
        "shape": list(entry.shape),
        "dtype": entry.dtype,
        "bytes": entry.nbytes,
        "layer_type": entry.layer_type,
        "model_name": entry.model_name,
        "extra": entry.extra,
        "values": _value_stats(weight.data),
    }
    st = repo.store.stats(entry.tensor_id)
    if isinstance(st, ObjectStats):
        info["storage"] = {
            "stored_bytes": st.stored_bytes,
            "encoding": st.encoding,
            "chain_depth": st.chain_depth,
            "chunks": st.chunks,
            "compression_ratio": st.compression_ratio,
        }
    if json_output:
        emit_json(info)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("tensor", escape(name))
    table.add_row("commit", f"{commit.commit_hash[:10]} {escape(first_line(commit.message))}")
    table.add_row("id", entry.tensor_id)
    table.add_row("shape", fmt_shape(entry.shape))
    table.add_row("dtype", entry.dtype)
    table.add_row("size", human_bytes(entry.nbytes))
    for key in ("layer_type", "model_name"):
        if info[key]:
            table.add_row(key, escape(str(info[key])))
    if "storage" in info:
        s = info["storage"]
        table.add_row(
            "stored",
            f"{human_bytes(s['stored_bytes'])} ({s['encoding']}, "
            f"{s['compression_ratio']:.2f}x, {s['chunks']} chunks, delta depth {s['chain_depth']})",
        )
    for key, value in info["values"].items():
        table.add_row(key, fmt_float(value) if isinstance(value, float) else str(value))
    out().print(table)


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
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a commit and its tensors, or one tensor (REF:NAME) with its statistics."""
    repo = open_repo()
    ref, name = _split_target(repo, target)
    if name is not None:
        _show_tensor(repo, ref, name, json_output)
        return
    commit = repo.get_commit(ref)
    tree = repo.read_tree(commit.tree_id)
    names = repo.list_weights(commit.commit_hash, layers)
    entries: list[TreeEntry] = [tree.entries[n] for n in names]
    if json_output:
        emit_json(
            {
                **commit.to_dict(),
                "refs": decorations(repo).get(commit.commit_hash, []),
                "tensors": [e.to_dict() for e in entries],
                "files": [f.to_dict() for f in tree.files.values()],
            }
        )
        return
    console = out()
    deco = decorations(repo).get(commit.commit_hash)
    console.print(
        f"[yellow]commit {commit.commit_hash[:10]}[/yellow]"
        + (f" [bold cyan]({escape(', '.join(deco))})[/bold cyan]" if deco else "")
    )
    if commit.is_merge:
        console.print(f"Merge:  {' '.join(p[:10] for p in commit.parent_hashes)}")
    console.print(f"Author: {escape(commit.author)}")
    console.print(f"Date:   {fmt_time(commit.timestamp)}")
    if commit.metrics:
        console.print(f"Metrics: {escape(_metrics_text(commit.metrics))}")
    console.print()
    for line in commit.message.strip().splitlines():
        console.print(f"    {escape(line)}")
    console.print()
    table = FitTable(
        [
            Column("name", key=True),
            Column("shape", drop=40),
            Column("dtype", drop=30),
            Column("size", justify="right", drop=50),
            Column("tensor id", drop=20),
        ],
        title=f"{len(entries)} of {len(tree.entries)} tensors"
        if layers
        else f"{len(entries)} tensors",
        caption=f"total {human_bytes(sum(e.nbytes for e in entries))}",
    )
    for e in entries:
        table.add_row(
            escape(e.name), fmt_shape(e.shape), e.dtype, human_bytes(e.nbytes), e.tensor_id[:10]
        )
    table.render(console)
    if tree.files:
        files = FitTable(
            [Column("path", key=True), Column("size", justify="right"), Column("blob", drop=10)],
            title=f"{len(tree.files)} model files",
        )
        for f in tree.files.values():
            files.add_row(escape(f.path), human_bytes(f.size), f.blob_id[:10])
        files.render(console)


# -- diff -------------------------------------------------------------------------------------
def _diff_report_module() -> Any:
    try:
        from coral.utils import diff_report
    except ImportError as exc:
        raise CoralError(
            f"visual diffs are unavailable: {exc}",
            hint="install the viz extra: pip install 'coral-vcs[viz]'",
        ) from exc
    return diff_report


def _model_comparison(repo: Repository, a: str, b: str) -> tuple[dict[str, Any], Any, Any]:
    try:
        from coral.utils.visualization import compare_models
    except ImportError as exc:
        raise CoralError(
            f"model comparison is unavailable: {exc}",
            hint="install the viz extra: pip install 'coral-vcs[viz]'",
        ) from exc
    before = repo.get_all_weights(a, lazy=True)
    after = repo.get_all_weights(b, lazy=True)
    return compare_models(before, after, model_a_name=a, model_b_name=b), before, after


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
        bool, typer.Option("--all", "-a", help="List identical tensors too.")
    ] = False,
    visual: Annotated[
        Path | None, typer.Option("--visual", help="Write a visual report: PATH.png or PATH.html.")
    ] = None,
    ascii_chart: Annotated[
        bool, typer.Option("--ascii", help="Print a per-layer change chart in the terminal.")
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
    repo = open_repo()
    select = tensor_filter(layers, include_training_state)
    result = repo.diff(from_ref, to_ref, select=select)
    if visual is not None or ascii_chart:
        report = _diff_report_module()
        comparison, before, after = _model_comparison(repo, from_ref, to_ref or "HEAD")
        if visual is not None:
            suffix = visual.suffix.lower()
            if suffix in (".html", ".htm"):
                written = report.render_diff_html(comparison, visual, before, after)
            elif suffix == ".png":
                written = report.render_diff_png(comparison, visual, before, after)
            else:
                raise CoralError(
                    f"cannot tell the report type of {visual}", hint="end the path in .png or .html"
                )
            if not json_output:
                out().print(f"wrote {escape(str(written))}")
        if ascii_chart and not json_output:
            cols = width or shutil.get_terminal_size((100, 24)).columns
            out().print(escape(report.render_diff_ascii(comparison, cols)))
            return
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    s = result.summary()
    console.print(
        f"diff {escape(result.from_ref)} -> {escape(result.to_ref)}: {s['changed']} changed, "
        f"{s['added']} added, {s['removed']} removed, {s['identical']} identical"
    )
    table = FitTable(
        [
            Column("status", keep=True),
            Column("name", key=True),
            Column("shape", drop=50),
            Column("dtype", drop=20),
            Column("‖Δ‖₂", justify="right", drop=30),
            Column("‖Δ‖/‖a‖", justify="right", drop=60),
            Column("max |Δ|", justify="right", drop=40),
            Column("Δ elements", justify="right", drop=45),
        ]
    )
    tree_a = repo.get_tree(from_ref)
    if to_ref:
        new_entries: dict[str, TreeEntry | None] = dict(repo.get_tree(to_ref).entries)
    else:  # HEAD plus the staged changes
        new_entries = {n: c.entry for n, c in repo.staged_changes().items()}
    for name in result.removed:
        e = tree_a.entries[name]
        table.add_row(
            "[red]removed[/red]", escape(name), fmt_shape(e.shape), e.dtype, "", "", "", ""
        )
    for name in result.added:
        added = new_entries.get(name)
        table.add_row(
            "[green]added[/green]",
            escape(name),
            fmt_shape(added.shape) if added else "",
            added.dtype if added else "",
            "",
            "",
            "",
            "",
        )
    for name, ch in result.changed.items():
        shape = (
            fmt_shape(ch.new_shape)
            if not ch.shape_changed
            else f"{fmt_shape(ch.old_shape)} → {fmt_shape(ch.new_shape)}"
        )
        dtype = ch.new_dtype if not ch.dtype_changed else f"{ch.old_dtype} → {ch.new_dtype}"
        table.add_row(
            "[yellow]changed[/yellow]",
            escape(name),
            shape,
            dtype,
            fmt_float(ch.l2),
            fmt_float(ch.relative),
            fmt_float(ch.max_abs),
            "-" if ch.changed_elements is None else str(ch.changed_elements),
        )
    for name in result.metadata_changed:
        table.add_row("[cyan]metadata[/cyan]", escape(name), "", "", "", "", "", "")
    if show_all:
        for name in result.identical:
            if name in result.metadata_changed:
                continue
            e = tree_a.entries[name]
            table.add_row(
                "[dim]identical[/dim]",
                escape(name),
                fmt_shape(e.shape),
                e.dtype,
                "0",
                "0",
                "0",
                "0",
            )
    if table.row_count:
        table.render(console)
    print_file_changes(console, repo, from_ref, to_ref)


def register(app: typer.Typer) -> None:
    for command in (log, show, diff):
        app.command(rich_help_panel=PANEL)(command)

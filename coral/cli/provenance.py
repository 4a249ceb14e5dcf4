"""Where weights came from: `coral ancestry WEIGHT [REF]`, `coral provenance [COMMIT]`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import (
    complete_ref,
    complete_weight,
    emit_json,
    first_line,
    fmt_float,
    fmt_shape,
    human_bytes,
    open_repo,
    out,
    progress,
)
from coral.errors import CoralError

if TYPE_CHECKING:
    from coral.porcelain.ancestry import Ancestry, TensorVersion
    from coral.porcelain.provenance import Lineage, LineageNode
    from coral.version_control.repository import Repository

ORDER = 32  # after `coral log` / `show` / `diff` in `coral --help`
PANEL = "History"
FORMATS = ("text", "json", "dot", "svg")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M")


def _fit(text: str, width: int) -> str:
    """A message cut to `width` columns (never used on tensor names)."""
    return text if len(text) <= width else text[: max(width - 3, 1)] + "..."


# -- recording (used by `coral commit` and `coral import`) ------------------------------------
def recorded_provenance(
    repo: Repository,
    config: Path | None,
    datasets: Sequence[Path] | None,
    base: str | None,
) -> dict[str, Any]:
    """`{"provenance": ...}` for the commit being made from --config / --dataset / --base,
    hashing the datasets under a progress bar ({} when none is given)."""
    from coral.porcelain.provenance import provenance_for
    from coral.version_control.provenance import dataset_bytes

    datasets = list(datasets or [])
    if not datasets:
        return provenance_for(repo, config=config, base=base) if config or base else {}
    total = dataset_bytes(datasets)
    with progress(f"hashing {len(datasets)} dataset(s) ({human_bytes(total)})", total) as bar:
        return provenance_for(repo, config=config, datasets=datasets, base=base, progress=bar)


# -- coral ancestry ---------------------------------------------------------------------------
def ancestry(
    weight: Annotated[
        str, typer.Argument(help="The tensor's name.", autocompletion=complete_weight)
    ],
    ref: Annotated[
        str, typer.Argument(help="Where to start (default: HEAD).", autocompletion=complete_ref)
    ] = "HEAD",
    max_count: Annotated[
        int | None,
        typer.Option("--max-count", "-n", help="Show at most N versions.", show_default=False),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The commits where a tensor's content changed, newest first: what each version was
    derived from (previous version, merge parents, delta reference, fine-tune base), its
    stored size and L2 norms."""
    from coral.porcelain.ancestry import ancestry as tensor_ancestry

    if max_count is not None and max_count < 1:
        raise CoralError(f"bad --max-count {max_count}", hint="give 1 or more")
    result = tensor_ancestry(open_repo(), weight, ref, max_count=max_count)
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    for line in ancestry_lines(result, console.width):
        console.print(escape(line))


def ancestry_lines(result: Ancestry, width: int = 80) -> list[str]:
    """`coral ancestry` as plain lines, one record of a few lines per version."""
    newest = next((v.entry for v in result.versions if v.entry is not None), None)
    what = f" {fmt_shape(newest.shape)} {newest.dtype}" if newest else ""
    n = len(result.versions)
    lines = [
        f"{result.name}{what}: {n} version{'s' if n != 1 else ''} "
        f"from {result.ref} ({result.commit_hash[:10]})"
    ]
    for v in result.versions:
        lines.append("")
        lines.extend(_version_lines(v, width))
    if result.truncated:
        lines.append("")
        lines.append("(older history is pruned and collected: it cannot be read)")
    return lines


def _version_lines(v: TensorVersion, width: int) -> list[str]:
    c = v.commit
    head = f"{c.commit_hash[:10]}  {_when(c.timestamp)}  {v.kind}"
    if v.norm is not None:
        head += f"  norm {fmt_float(v.norm)}"
    if v.change_l2 is not None:
        rel = f" ({v.relative:.2%})" if v.relative is not None and v.relative < 1e6 else ""
        head += f"  change {fmt_float(v.change_l2)}{rel}"
    lines = [head]
    if v.stored is not None:
        s = v.stored
        depth = f", delta depth {s.chain_depth}" if s.chain_depth else ""
        lines.append(
            f"  stored {human_bytes(s.stored_bytes)} of {human_bytes(s.raw_bytes)} "
            f"({s.encoding}{depth})"
        )
        for r in s.delta_of:
            where = f"{r.name} @ {r.commit[:10]}" if r.name and r.commit else "a tensor elsewhere"
            lines.append(f"  encoded against {where}")
    if v.kind == "merged":
        lines.append("  merge of " + ", ".join(f"{(p.commit or '')[:10]}" for p in v.previous))
    elif v.kind == "unknown":
        lines.append("  its parent is pruned and collected: what came before is unknown")
    elif v.previous and v.kind != "added":
        p = v.previous[0]
        lines.append(f"  from {p.name} @ {(p.commit or '')[:10]}")
    if v.same_as:
        lines.append(f"  same content as {v.same_as[:10]}")
    if v.base:
        from coral.porcelain.provenance import describe_base

        lines.append(f"  base {describe_base(v.base)}")
    subject = first_line(c.message)
    if subject:
        lines.append("  " + _fit(subject, width - 2))
    return lines


# -- coral provenance -------------------------------------------------------------------------
def provenance(
    commit: Annotated[
        str,
        typer.Argument(help="The commit (default: HEAD).", autocompletion=complete_ref),
    ] = "HEAD",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="text, json, dot (Graphviz) or svg.")
    ] = "text",
    depth: Annotated[
        int, typer.Option("--depth", "-d", help="Generations of parents to follow.")
    ] = 20,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of printing."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A commit's lineage: parents up to --depth, the base model of a fine-tune, the
    training config (hash and content) and dataset hashes."""
    from coral.porcelain.provenance import lineage
    from coral.utils.lineage_graph import dot_to_svg, lineage_dot

    fmt = "json" if json_output else fmt.lower()
    if fmt not in FORMATS:
        raise CoralError(f"unknown format {fmt!r}", hint="use --format " + "|".join(FORMATS))
    result = lineage(open_repo(), commit, depth)
    if fmt == "svg":
        _write(dot_to_svg(lineage_dot(result)), output)
    elif fmt == "dot":
        _write(lineage_dot(result), output)
    elif fmt == "json":
        if output is None:
            emit_json(result.to_dict())
        else:
            _write(json.dumps(result.to_dict(), indent=2, default=str) + "\n", output)
    elif output is not None:
        _write("\n".join(provenance_lines(result, 80)) + "\n", output)
    else:
        console = out()
        for line in provenance_lines(result, console.width):
            console.print(escape(line))


def _write(data: str | bytes, output: Path | None) -> None:
    if output is None:
        typer.echo(data.decode() if isinstance(data, bytes) else data, nl=False)
        return
    output.write_bytes(data if isinstance(data, bytes) else data.encode())
    out().print(f"wrote {escape(str(output))} ({human_bytes(output.stat().st_size)})")


def provenance_lines(result: Lineage, width: int = 80) -> list[str]:
    """`coral provenance` as plain lines: the commit's record, then its lineage."""
    from coral.porcelain.history import graph_rows
    from coral.porcelain.provenance import record_lines

    root = result.root
    c = root.commit
    refs = f" ({', '.join(root.refs)})" if root.refs else ""
    lines = [
        f"commit {c.commit_hash[:10]}{refs}",
        f"Author: {c.author}",
        f"Date:   {_when(c.timestamp)}",
    ]
    lines.append("    " + _fit(first_line(c.message), width - 4))
    lines.append("")
    lines.extend(record_lines(root.provenance, width))
    ancestors = [n for n in result.nodes if n.depth is not None]
    bases = [n for n in result.nodes if n.depth is None]
    more = ", older ones not shown" if result.truncated else ""
    lines.append("")
    lines.append(f"lineage ({len(ancestors)} commit{'s' if len(ancestors) != 1 else ''}{more}):")
    by_hash = {n.commit.commit_hash: n for n in ancestors}
    for graph, commit in graph_rows([n.commit for n in ancestors]):
        if commit is None:
            lines.append(graph)
            continue
        lines.append(_node_line(graph, by_hash[commit.commit_hash], width))
    if bases:
        lines.append("")
        lines.append("base commits outside the lineage:")
        lines.extend(_node_line("-", n, width) for n in bases)
    return lines


def _node_line(graph: str, node: LineageNode, width: int) -> str:
    c = node.commit
    marks = []
    if node.base:
        marks.append("base")
    if node.config:
        marks.append("config")
    if node.datasets:
        k = len(node.datasets)
        marks.append(f"{k} dataset{'s' if k != 1 else ''}")
    tail = f"  [{', '.join(marks)}]" if marks else ""
    head = f"{graph} {c.commit_hash[:10]} {_when(c.timestamp)} "
    room = width - len(head) - len(tail)
    return head + _fit(first_line(c.message), max(room, 12)) + tail


def register(app: typer.Typer) -> None:
    for command in (ancestry, provenance):
        app.command(rich_help_panel=PANEL)(command)

"""A commit lineage as a Graphviz graph: DOT text written here, SVG through Graphviz's `dot`.

Ancestors point to what was derived from them (oldest at the top): solid edges are parents,
dashed ones the base a fine-tune started from, dotted ones the training config and the
datasets a commit was made with. Every identifier and label is quoted (DOT escapes).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from coral.core.units import human_bytes
from coral.errors import CoralError

if TYPE_CHECKING:
    from coral.porcelain.provenance import Lineage, LineageNode

_SUBJECT = 48  # characters of a commit's subject shown in its box
_DOT_TIMEOUT = 120  # seconds


class GraphvizError(CoralError):
    default_hint = "install Graphviz (apt install graphviz) or use --format dot"


def quote(text: str) -> str:
    """`text` as a DOT quoted string (backslashes, quotes and line breaks escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return '"' + "".join(c if c >= " " else " " for c in escaped) + '"'


def _label(lines: Iterable[str]) -> str:
    """A multi-line label: each line quoted, joined by DOT's line break."""
    return quote("\n".join(lines))


def _subject(message: str) -> str:
    lines = message.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= _SUBJECT else first[: _SUBJECT - 3] + "..."


def _attrs(**values: str) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in values.items()) + "]"


def _node_lines(node: LineageNode) -> list[str]:
    c = node.commit
    lines = [c.commit_hash[:10], _subject(c.message)]
    if node.refs:
        lines.append(", ".join(node.refs))
    metrics = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.metrics.items()
    )
    if metrics:
        lines.append(metrics if len(metrics) <= _SUBJECT else metrics[: _SUBJECT - 3] + "...")
    return lines


def lineage_dot(lineage: Lineage) -> str:
    """The DOT text of `lineage` (deterministic: the same lineage gives the same text)."""
    out = [
        "digraph lineage {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    shown = {n.commit.commit_hash for n in lineage.nodes}
    extra: dict[str, str] = {}  # node id -> its declaration (bases, configs, datasets)
    edges: list[str] = []
    older = False
    for node in lineage.nodes:
        c = node.commit
        me = quote("c:" + c.commit_hash)
        style: dict[str, str] = {"label": _label(_node_lines(node))}
        if c.commit_hash == lineage.commit_hash:
            style["penwidth"] = "2"
        if node.depth is None:
            style["style"] = quote("rounded,dashed")
        out.append(f"  {me} {_attrs(**style)};")
        if node.depth is not None:
            for parent in c.parent_hashes:
                if parent in shown:
                    edges.append(f"  {quote('c:' + parent)} -> {me};")
                else:
                    older = True
                    edges.append(f'  "older" -> {me} [style=dotted];')
        _provenance_edges(node, me, shown, extra, edges)
    if older:
        extra['"older"'] = '  "older" [shape=plaintext, label="... older commits"];'
    out.extend(extra[k] for k in sorted(extra))
    out.extend(dict.fromkeys(edges))  # once each, in order
    out.append("}")
    return "\n".join(out) + "\n"


def _provenance_edges(
    node: LineageNode, me: str, shown: set[str], extra: dict[str, str], edges: list[str]
) -> None:
    """Edges from `node`'s base, config and datasets (declaring their nodes in `extra`)."""
    base: dict[str, Any] = node.base
    commit = base.get("commit")
    name = base.get("name")
    if isinstance(commit, str):
        edges.append(
            f"  {quote('c:' + commit)} -> {me} {_attrs(style='dashed', label=quote('base'))};"
        )
        if commit not in shown:  # a base this repository lacks: its hash is all we know
            ident = quote("c:" + commit)
            style = _attrs(label=quote(commit[:10]), style=quote("rounded,dashed"))
            extra[ident] = f"  {ident} {style};"
    elif isinstance(name, str):
        ident = quote("base:" + name)
        extra[ident] = f"  {ident} {_attrs(shape='ellipse', style='dashed', label=quote(name))};"
        edges.append(f"  {ident} -> {me} {_attrs(style='dashed', label=quote('base'))};")
    config = node.config
    if config.get("blake3"):
        ident = quote("config:" + str(config["blake3"]))
        lines = ["config " + str(config.get("path") or config.get("format") or "")]
        lines.append(f"blake3 {str(config['blake3'])[:10]}")
        extra[ident] = f"  {ident} {_attrs(shape='note', label=_label(lines))};"
        edges.append(f"  {ident} -> {me} [style=dotted];")
    for ds in node.datasets:
        ident = quote("dataset:" + str(ds.get("hash")))
        files = int(ds.get("files") or 0)
        lines = [
            str(ds.get("path", "dataset")),
            f"{files} file{'s' if files != 1 else ''}, {human_bytes(int(ds.get('bytes') or 0))}",
            f"blake3 {str(ds.get('hash'))[:10]}",
        ]
        extra[ident] = f"  {ident} {_attrs(shape='cylinder', label=_label(lines))};"
        edges.append(f"  {ident} -> {me} [style=dotted];")


def dot_to_svg(dot: str) -> bytes:
    """Render DOT text to SVG with Graphviz's `dot` (GraphvizError when it is missing or fails)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizError("Graphviz's `dot` is not installed: cannot draw SVG")
    try:
        done = subprocess.run(
            [exe, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=_DOT_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"Graphviz's `dot` took over {_DOT_TIMEOUT} s") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(f"Graphviz's `dot` failed: {why[0] if why else done.returncode}")
    return done.stdout

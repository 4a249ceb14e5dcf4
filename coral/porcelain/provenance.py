"""Provenance: recording where a commit came from, and reading its lineage back.

`provenance_for` builds the `metadata["provenance"]` record of a commit about to be made
(`coral commit --config --dataset --base`, `coral import`); `lineage` reads a commit's
ancestors (up to a depth) with their bases, training configs and dataset hashes, which
`coral provenance` prints as text, JSON, or a graph (`coral.utils.lineage_graph`).
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.core.units import human_bytes
from coral.errors import CoralError, RefNotFoundError
from coral.porcelain.history import decorations
from coral.version_control.objects import Commit
from coral.version_control.provenance import (
    Advance,
    base_record,
    config_record,
    dataset_record,
    provenance_metadata,
    read_provenance,
)
from coral.version_control.repository import Repository

DEFAULT_DEPTH = 20
FORMATS = ("text", "json", "dot", "svg")
_REF_SYNTAX = re.compile(r"[~^]|^HEAD$")  # clearly meant as a ref: never an outside name


# -- recording --------------------------------------------------------------------------------
def resolve_base(repo: Repository, base: str, source: str = "given") -> dict[str, Any]:
    """The base record of `base`: a ref of this repository (recorded by commit, with the ref
    as given) or, when no ref has that name, the name of a model from outside (a Hub id, a
    path)."""
    try:
        commit = repo.resolve_ref(base)
    except RefNotFoundError:
        if _REF_SYNTAX.search(base) or not base.strip():
            raise
        return base_record(name=base, source=source)
    return base_record(commit=commit, source=source, ref=base if base != commit else None)


def hf_base_name(config_json: str | os.PathLike[str] | None) -> str | None:
    """`_name_or_path` of a Hugging Face `config.json` (the model it was loaded from)."""
    if config_json is None:
        return None
    try:
        doc = json.loads(Path(config_json).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    name = doc.get("_name_or_path") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def provenance_for(
    repo: Repository,
    *,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    datasets: Iterable[str | os.PathLike[str]] = (),
    base: str | None = None,
    base_source: str = "given",
    progress: Advance | None = None,
) -> dict[str, Any]:
    """`{"provenance": {...}}` for the metadata of a commit about to be made ({} when nothing
    is given): the base resolved in `repo`, the config file (or mapping) hashed and, when
    small, kept; each dataset file or folder hashed (`progress(n)` per n bytes read).
    Everything is read before anything is committed: a missing file commits nothing."""
    base_rec = resolve_base(repo, base, base_source) if base else None
    config_rec = config_record(config) if config is not None else None
    sets = [dataset_record(d, progress) for d in datasets]
    return provenance_metadata(base=base_rec, config=config_rec, datasets=sets)


# -- reading ----------------------------------------------------------------------------------
@dataclass
class LineageNode:
    """One commit of a lineage: how far from the asked commit (`depth`; None for a base that
    is not an ancestor), its labels, and its provenance record."""

    commit: Commit
    depth: int | None
    refs: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> dict[str, Any]:
        return dict(self.provenance.get("base") or {})

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.provenance.get("config") or {})

    @property
    def datasets(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self.provenance.get("datasets") or []]

    def to_dict(self) -> dict[str, Any]:
        c = self.commit
        return {
            "commit_hash": c.commit_hash,
            "parents": list(c.parent_hashes),
            "author": c.author,
            "timestamp": c.timestamp,
            "message": c.message,
            "metrics": c.metrics,
            "refs": list(self.refs),
            "depth": self.depth,
            "base": self.base or None,
            "config": self.config or None,
            "datasets": self.datasets,
        }


@dataclass
class Lineage:
    """A commit's ancestors up to `depth` generations (children before parents, newest first),
    then the base commits of a fine-tune that are not among them."""

    commit_hash: str
    depth: int
    nodes: list[LineageNode]
    truncated: bool  # ancestors beyond `depth` exist

    @property
    def root(self) -> LineageNode:
        return self.nodes[0]

    def to_dict(self) -> dict[str, Any]:
        root = self.root
        return {
            "commit_hash": self.commit_hash,
            "depth": self.depth,
            "truncated": self.truncated,
            "base": root.base or None,
            "config": root.config or None,
            "datasets": root.datasets,
            "lineage": [n.to_dict() for n in self.nodes],
        }


def lineage(repo: Repository, ref: str = "HEAD", depth: int = DEFAULT_DEPTH) -> Lineage:
    """The lineage of the commit `ref` names: its ancestors up to `depth` generations (0: the
    commit alone) with their provenance, and every base commit they name."""
    if depth < 0:
        raise CoralError(f"bad depth {depth}", hint="give --depth 0 or more")
    start = repo.resolve_ref(ref)
    depths = {start: 0}
    queue = [start]
    truncated = False
    for cid in queue:  # breadth first: each commit at its shortest distance
        for parent in repo.read_commit(cid).parent_hashes:
            if parent in depths:
                continue
            if depths[cid] >= depth:
                truncated = True
                continue
            depths[parent] = depths[cid] + 1
            queue.append(parent)
    labels = decorations(repo)
    commits = {c: repo.read_commit(c) for c in depths}
    nodes = [
        LineageNode(commits[c], depths[c], labels.get(c, []), read_provenance(commits[c].metadata))
        for c in _children_first(commits)
    ]
    for node in list(nodes):
        base = node.base.get("commit")
        if isinstance(base, str) and base not in commits:
            try:
                commit = repo.read_commit(base)
            except CoralError:  # a base from another repository: its hash is all we know
                continue
            commits[base] = commit
            nodes.append(
                LineageNode(commit, None, labels.get(base, []), read_provenance(commit.metadata))
            )
    return Lineage(start, depth, nodes, truncated)


def _children_first(commits: Mapping[str, Commit]) -> list[str]:
    """The commits ordered so every child comes before its parents, newest first otherwise."""
    children = dict.fromkeys(commits, 0)
    for c in commits.values():
        for p in set(c.parent_hashes):
            if p in children:
                children[p] += 1
    ready = [(-c.timestamp, h) for h, c in commits.items() if children[h] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, h = heapq.heappop(ready)
        order.append(h)
        for p in set(commits[h].parent_hashes):
            if p in children:
                children[p] -= 1
                if children[p] == 0:
                    heapq.heappush(ready, (-commits[p].timestamp, p))
    return order


# -- presenting -------------------------------------------------------------------------------
def describe_base(base: Mapping[str, Any]) -> str:
    """'bert-base-uncased', 'main (1a2b3c4d5e)' or '1a2b3c4d5e', with who recorded it."""
    commit = base.get("commit")
    name = base.get("name") or base.get("ref")
    parts = [str(name)] if name else []
    if isinstance(commit, str):
        parts.append(f"({commit[:10]})" if parts else commit[:10])
    source = base.get("source")
    if source and source != "given":
        parts.append(f"[{source}]")
    return " ".join(parts) or "?"


def record_lines(
    provenance: Mapping[str, Any], width: int = 80, *, empty: bool = True
) -> list[str]:
    """The base, config and datasets of a provenance record, one labelled block each (what
    `coral provenance`, `coral browse` and the dashboard show); with `empty=False` the parts
    not recorded are left out instead of saying so."""
    base = provenance.get("base") or {}
    cfg = provenance.get("config") or {}
    sets = [dict(d) for d in provenance.get("datasets") or []]
    lines = []
    if base or empty:
        lines.append(f"base      {describe_base(base) if base else '(none recorded)'}")
    if cfg:
        where = cfg.get("path") or "(given in code)"
        fmt = f", {cfg['format']}" if cfg.get("format") else ""
        lines.append(
            f"config    {where} ({human_bytes(int(cfg.get('bytes') or 0))}{fmt}) "
            f"blake3 {str(cfg.get('blake3', ''))[:10]}"
        )
        lines.extend("          " + _cut(item, width - 10) for item in config_summary(cfg))
    elif empty:
        lines.append("config    (none recorded)")
    if not sets and empty:
        lines.append("datasets  (none recorded)")
    for i, ds in enumerate(sets):
        label = "datasets  " if i == 0 else " " * 10
        files = int(ds.get("files") or 0)
        lines.append(
            f"{label}{ds.get('path')}: {files} file{'s' if files != 1 else ''}, "
            f"{human_bytes(int(ds.get('bytes') or 0))}, blake3 {str(ds.get('hash', ''))[:10]}"
        )
    return lines


def record_summary(provenance: Mapping[str, Any]) -> str:
    """One line of a provenance record: 'base bert-base (1a2b3c4d5e) · config 4968fa2edd ·
    2 datasets' ('' when nothing is recorded)."""
    parts = []
    if provenance.get("base"):
        parts.append(f"base {describe_base(provenance['base'])}")
    cfg = provenance.get("config") or {}
    if cfg:
        parts.append(f"config {str(cfg.get('blake3', ''))[:10]}")
    sets = provenance.get("datasets") or []
    if sets:
        parts.append(f"{len(sets)} dataset{'s' if len(sets) != 1 else ''}")
    return " · ".join(parts)


def _cut(text: str, width: int) -> str:
    """A line cut to `width` columns (never used on tensor names)."""
    return text if len(text) <= width else text[: max(width - 3, 1)] + "..."


def config_summary(config: Mapping[str, Any], limit: int = 6) -> list[str]:
    """A config's content in a few `key=value` items (nested mappings flattened with dots)."""
    content = config.get("content")
    if isinstance(content, str):
        lines = [ln.strip() for ln in content.splitlines() if ln.strip()]
        return lines[:limit] + (
            [f"... {len(lines) - limit} more lines"] if len(lines) > limit else []
        )
    if not isinstance(content, Mapping):
        return []
    items = list(_flatten(content))
    shown = [f"{k}={_short(v)}" for k, v in items[:limit]]
    if len(items) > limit:
        shown.append(f"... {len(items) - limit} more")
    return shown


def _flatten(content: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in content.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def check_format(fmt: str, choices: Sequence[str] = FORMATS) -> str:
    """`fmt` lower-cased when it is one of `choices`; CoralError otherwise."""
    value = fmt.lower()
    if value not in choices:
        raise CoralError(f"unknown format {fmt!r}", hint="use " + ", ".join(choices))
    return value

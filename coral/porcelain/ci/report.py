"""`coral ci report A B`: what a pull request changes in the weights, as tables for a comment.

The commits and their sizes (raw, stored, and what B adds to the store), the diff engine's
counts and the largest relative changes (`diff_commits`), the metric deltas (commit metrics,
overridden by the newest evaluation recorded with `coral ci benchmark --eval`), and the
validation of B. `CIReport.tables()` is the content; `markdown()` renders it for GitHub.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coral.core.count_text import counts_text, num
from coral.core.tensor_checks import element_count
from coral.core.training_names import is_training_state
from coral.core.units import human_bytes
from coral.porcelain.ci.benchmark import stored_bytes
from coral.porcelain.ci.schema import ValidationSchema
from coral.porcelain.ci.validate import ValidationResult, validate_commit
from coral.porcelain.compare import diff_commits
from coral.version_control.ci_results import CIResults
from coral.version_control.diff import ADDED, CHANGED, REMOVED, SHAPE_CHANGED, TensorComparison
from coral.version_control.objects import Commit, Tree
from coral.version_control.repository import Repository

DEFAULT_TOP = 10
Advance = Callable[[int], None]


@dataclass(frozen=True)
class SideSize:
    """One commit's model: tensor and parameter counts, raw and stored bytes."""

    tensors: int
    parameters: int
    raw_bytes: int
    stored_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {
            "tensors": self.tensors,
            "parameters": self.parameters,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
        }


@dataclass(frozen=True)
class MetricDelta:
    name: str
    a: Any
    b: Any

    @property
    def delta(self) -> float | None:
        if _number(self.a) and _number(self.b):
            return float(self.b) - float(self.a)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "delta": self.delta}


@dataclass(frozen=True)
class ReportTable:
    """A table of the report: the first column is the key (a name, never cut)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric_from: int = 1  # columns from this one on hold numbers (right-aligned)
    code_keys: bool = False  # the key column holds names (shown as code in Markdown)


@dataclass
class CIReport:
    a_ref: str
    b_ref: str
    a: Commit
    b: Commit
    a_size: SideSize
    b_size: SideSize
    new_stored_bytes: int  # what B's tensors that A lacks take on disk
    counts: dict[str, int]  # the diff engine's categories
    changes: list[TensorComparison]  # the top rows: structural changes, then largest relative
    more_changes: int  # differing tensors not listed
    metrics: list[MetricDelta]
    validation: ValidationResult
    training_state_hidden: int = 0
    top: int = DEFAULT_TOP
    notes: list[str] = field(default_factory=list)

    # -- content ---------------------------------------------------------------------------------
    def tables(self) -> list[ReportTable]:
        a, b = self.a_size, self.b_size
        overview = ReportTable(
            "",
            ["", f"base {self.a_ref}", f"head {self.b_ref}", "change"],
            [
                ["commit", self.a.short_hash, self.b.short_hash, ""],
                ["tensors", f"{a.tensors:,}", f"{b.tensors:,}", _signed_int(b.tensors - a.tensors)],
                [
                    "parameters",
                    f"{a.parameters:,}",
                    f"{b.parameters:,}",
                    _signed_int(b.parameters - a.parameters),
                ],
                [
                    "size",
                    human_bytes(a.raw_bytes),
                    human_bytes(b.raw_bytes),
                    _signed_bytes(b.raw_bytes - a.raw_bytes),
                ],
                [
                    "stored",
                    human_bytes(a.stored_bytes),
                    human_bytes(b.stored_bytes),
                    f"+{human_bytes(self.new_stored_bytes)} new",
                ],
            ],
        )
        out = [overview]
        if self.changes:
            rows = [
                [
                    t.name,
                    t.category.replace("_", " "),
                    _shape_text(t),
                    _relative(t),
                    num(t.metrics.max_abs) if t.metrics else "-",
                ]
                for t in self.changes
            ]
            title = "Largest changes"
            if self.more_changes:
                title += f" (top {len(self.changes)}; {self.more_changes} more)"
            headers = ["tensor", "change", "shape", "relative", "max abs"]
            out.append(ReportTable(title, headers, rows, numeric_from=3, code_keys=True))
        if self.metrics:
            out.append(
                ReportTable(
                    "Metrics",
                    ["metric", "base", "head", "change"],
                    [[m.name, _value(m.a), _value(m.b), _signed(m.delta)] for m in self.metrics],
                    code_keys=True,
                )
            )
        return out

    def counts_line(self) -> str:
        line = f"Tensors: {counts_text(self.counts)}"
        if self.training_state_hidden:
            line += f" ({self.training_state_hidden} training-state tensors left out)"
        return line

    def validation_lines(self) -> list[str]:
        v = self.validation
        verdict = "passed" if v.ok else f"failed, {len(v.violations)} violations"
        if len(v.violations) == 1:
            verdict = "failed, 1 violation"
        schema = f"schema {v.schema}" if v.schema else "default checks"
        return [f"Validation of {self.b_ref}: {verdict} ({schema})"] + [
            x.line for x in v.violations
        ]

    def title(self) -> str:
        return f"Coral: {self.a_ref} ({self.a.short_hash}) → {self.b_ref} ({self.b.short_hash})"

    def markdown(self) -> str:
        """The report as GitHub-flavoured Markdown (a pull-request comment)."""
        lines = [f"### {_md(self.title())}", ""]
        for table in self.tables():
            if table.title:
                lines += [f"**{_md(table.title)}**", ""]
            lines += _md_table(table)
            lines.append("")
            if table.title == "":
                lines += [_md(self.counts_line()), ""]
        head, *violations = self.validation_lines()
        lines.append(f"**{_md(head)}**")
        if violations:
            lines.append("")
            lines += [f"- {_md(v)}" for v in violations]
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"ref": self.a_ref, "commit": self.a.commit_hash, **self.a_size.to_dict()},
            "b": {"ref": self.b_ref, "commit": self.b.commit_hash, **self.b_size.to_dict()},
            "new_stored_bytes": self.new_stored_bytes,
            "counts": dict(self.counts),
            "changes": [_change_dict(t) for t in self.changes],
            "more_changes": self.more_changes,
            "training_state_hidden": self.training_state_hidden,
            "metrics": [m.to_dict() for m in self.metrics],
            "validation": self.validation.to_dict(),
        }


# -- building it --------------------------------------------------------------------------------


def ci_report(
    repo: Repository,
    a_ref: str,
    b_ref: str,
    *,
    schema: ValidationSchema | None = None,
    top: int = DEFAULT_TOP,
    progress: Advance | None = None,
) -> CIReport:
    """Compare `a_ref` (the base, e.g. origin/main) with `b_ref` (the pull request's head) and
    validate `b_ref` against `schema` (the default checks without one)."""
    a, b = repo.get_commit(a_ref), repo.get_commit(b_ref)
    diff = diff_commits(repo, a.commit_hash, b.commit_hash)
    rows = diff.rows
    ordered = sorted(rows, key=_rank)
    shown = ordered[: max(top, 0)]
    a_tree, b_tree = repo.read_tree(a.tree_id), repo.read_tree(b.tree_id)
    new_ids = {e.tensor_id for e in b_tree.entries.values()} - {
        e.tensor_id for e in a_tree.entries.values()
    }
    validation = validate_commit(repo, b_ref, schema=schema, progress=progress)
    return CIReport(
        a_ref,
        b_ref,
        a,
        b,
        _size(repo, a_tree),
        _size(repo, b_tree),
        stored_bytes(repo, new_ids),
        diff.result.counts(),
        shown,
        len(ordered) - len(shown),
        _metric_deltas(_metrics(repo, a), _metrics(repo, b)),
        validation,
        diff.training_state_hidden,
        top,
    )


def _size(repo: Repository, tree: Tree) -> SideSize:
    entries = [e for n, e in tree.entries.items() if not is_training_state(n)]
    return SideSize(
        len(entries),
        sum(element_count(e.shape) for e in entries),
        sum(e.nbytes for e in entries),
        stored_bytes(repo, (e.tensor_id for e in entries)),
    )


def _rank(t: TensorComparison) -> tuple[int, float, str]:
    """Structural changes first (shape, added, removed), then the largest relative change."""
    order = {SHAPE_CHANGED: 0, ADDED: 1, REMOVED: 2, CHANGED: 3}
    rel = t.metrics.relative if t.metrics is not None else math.inf
    return (order.get(t.category, 4), -rel if not math.isnan(rel) else -math.inf, t.name)


def _metrics(repo: Repository, commit: Commit) -> dict[str, Any]:
    found = dict(commit.metadata.get("metrics") or {})
    recorded = CIResults(repo.database).latest(commit.commit_hash, "eval")
    if recorded is not None:
        found.update(recorded.data.get("metrics") or {})
    return found


def _metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> list[MetricDelta]:
    return [MetricDelta(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))]


# -- formatting ---------------------------------------------------------------------------------


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _value(x: Any) -> str:
    if x is None:
        return "-"
    return num(float(x)) if _number(x) else str(x)


def _signed(x: float | None) -> str:
    if x is None:
        return ""
    return "0" if x == 0 else ("+" if x > 0 else "") + num(x)


def _signed_int(n: int) -> str:
    return "0" if n == 0 else f"{n:+,}"


def _signed_bytes(n: int) -> str:
    return "0" if n == 0 else ("+" if n > 0 else "-") + human_bytes(abs(n))


def _relative(t: TensorComparison) -> str:
    """The relative change; where only NaN / inf values moved (left out of the norms), says so."""
    m = t.metrics
    if m is None:
        return "-"
    if m.nonfinite_mismatched and not m.relative:
        return "NaN/inf"
    return num(m.relative)


def _shape_text(t: TensorComparison) -> str:
    def fmt(shape: tuple[int, ...] | None) -> str:
        if shape is None:
            return ""
        return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"

    if t.category == SHAPE_CHANGED:
        return f"{fmt(t.old_shape)} → {fmt(t.new_shape)}"
    return fmt(t.new_shape if t.new_shape is not None else t.old_shape)


def _change_dict(t: TensorComparison) -> dict[str, Any]:
    return {
        "name": t.name,
        "category": t.category,
        "old_shape": list(t.old_shape) if t.old_shape is not None else None,
        "new_shape": list(t.new_shape) if t.new_shape is not None else None,
        "relative": t.metrics.relative if t.metrics else None,
        "max_abs": t.metrics.max_abs if t.metrics else None,
    }


def _md(text: str) -> str:
    """Text safe inside Markdown (a table cell or a line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_table(table: ReportTable) -> list[str]:
    def cells(row: list[str], code: bool) -> str:
        shown = [_code(c) if code and i == 0 else _md(c) for i, c in enumerate(row)]
        return "| " + " | ".join(shown) + " |"

    align = ["--:" if i >= table.numeric_from else "---" for i in range(len(table.headers))]
    return [
        cells(table.headers, False),
        "| " + " | ".join(align) + " |",
        *(cells(r, table.code_keys) for r in table.rows),
    ]


def _code(text: str) -> str:
    """A name as inline code in a table cell (backticks and pipes cannot end it early)."""
    return "`" + _md(text).replace("`", "'") + "`" if text else ""

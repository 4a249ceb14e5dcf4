"""Small formatters the browser's widgets share: hashes, shapes, numbers, metrics, and the
style of each diff category.

Styles use the 16 standard colours and attributes (bold, dim, reverse) only, so a terminal
without 256 colours shows the same distinctions; every category also has a marker character
(the `--ascii` chart's), so nothing is told by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from coral.core.units import human_bytes as human_bytes
from coral.utils.ascii_report import MARKERS

HASH_LEN = 10  # DESIGN §8: hashes print at one length

CATEGORY_STYLES: dict[str, str] = {
    "identical": "dim",
    "minor_changes": "cyan",
    "moderate_changes": "yellow",
    "major_changes": "bold red",
    "changed": "yellow",
    "shape_changed": "magenta",
    "added": "green",
    "removed": "red",
}
CATEGORY_WORDS: dict[str, str] = {
    "identical": "identical",
    "minor_changes": "minor",
    "moderate_changes": "moderate",
    "major_changes": "major",
    "changed": "changed",
    "shape_changed": "shape",
    "added": "added",
    "removed": "removed",
}
CHANGE_STYLES = {"added": "green", "changed": "yellow", "identical": "dim", "removed": "red"}


def short(commit_hash: str | None) -> str:
    return (commit_hash or "")[:HASH_LEN]


def ref_label(ref: str | None) -> str:
    """A ref as typed, a full hash at HASH_LEN, None as "staged" (HEAD plus the staging area)."""
    if ref is None:
        return "staged"
    full = len(ref) == 64 and all(ch in "0123456789abcdef" for ch in ref)
    return short(ref) if full else ref


def marker(category: str) -> str:
    """The `--ascii` chart's marker of a category ('*' for an ungraded change)."""
    return MARKERS.get(category, "*")


def fmt_shape(shape: Sequence[int] | None) -> str:
    if shape is None:
        return ""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_num(x: Any, spec: str = ".4g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return format(x, spec)
    return str(x)


def fmt_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M")


def metric_text(metrics: Mapping[str, Any], limit: int = 3) -> str:
    """'loss=0.41 acc=0.9' (the first `limit` metrics, '…' when there are more)."""
    items = [f"{k}={fmt_num(v)}" for k, v in list(metrics.items())[:limit]]
    return " ".join(items) + (" …" if len(metrics) > limit else "")


def first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else ""

"""Words, numbers and colours every diff view shares (ASCII, PNG, HTML, the CLI table).

All counts come from a `compare_models` dictionary (`coral.utils.comparison`), whose `counts`
are the diff engine's five categories.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coral.core.count_text import COUNT_ORDER as COUNT_ORDER  # re-exported for the views
from coral.core.count_text import ENGINE_LABELS as ENGINE_LABELS
from coral.core.count_text import counts_text as counts_text
from coral.core.count_text import num as num
from coral.core.units import human_bytes as human_bytes  # re-exported for the reports

CATEGORY_COLORS: dict[str, str] = {
    "identical": "#2e7d32",
    "minor_changes": "#9ccc65",
    "moderate_changes": "#ffb300",
    "major_changes": "#e53935",
    "shape_changed": "#8e24aa",
    "added": "#1e88e5",
    "removed": "#757575",
}
CATEGORY_LABELS: dict[str, str] = {
    "identical": "identical",
    "minor_changes": "minor",
    "moderate_changes": "moderate",
    "major_changes": "major",
    "shape_changed": "shape changed",
    "added": "added",
    "removed": "removed",
}
GRADES: tuple[str, ...] = ("minor_changes", "moderate_changes", "major_changes")


def change(layer: Mapping[str, Any]) -> float | None:
    """1 − combined_similarity (0 for identical), None for layers without a similarity."""
    sim = layer.get("combined_similarity")
    return None if sim is None else max(0.0, 1.0 - float(sim))


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def similarity_text(layer: Mapping[str, Any]) -> str:
    """The combined similarity as a percentage that never reads 100% for a changed layer."""
    sim = layer.get("combined_similarity")
    if sim is None:
        return "-"
    if layer.get("bit_identical"):
        return "100%"
    for digits in (2, 4, 6, 8):
        text = pct(sim, digits)
        if not text.startswith("100."):
            return text
    return ">99.999999%"


def change_text(layer: Mapping[str, Any]) -> str:
    """1 − similarity, short: '0' for identical, '3.1e-07', '0.42', or the category."""
    c = change(layer)
    if c is None:
        return CATEGORY_LABELS.get(layer["category"], layer["category"])
    if layer.get("bit_identical"):
        return "0"
    return f"{c:.2g}" if c >= 0.01 else f"{c:.1e}"


def grades_text(diff: Mapping[str, Any]) -> str:
    """How the changed tensors grade: '20 minor, 10 moderate, 2 major'."""
    c = diff["category_counts"]
    return ", ".join(f"{c.get(k, 0)} {CATEGORY_LABELS[k]}" for k in GRADES)


def summary_lines(diff: Mapping[str, Any]) -> list[str]:
    s = diff["summary"]
    total = s["total_params"]
    frac = s["changed_params"] / total if total else 0.0
    lines = [
        f"Tensors: {counts_text(diff['counts'])}",
        f"Changed parameters {s['changed_params']:,} of {total:,} ({frac:.1%}); "
        f"overall similarity {s['overall_similarity']:.2%}",
        f"Changed tensors by similarity: {grades_text(diff)}",
    ]
    if diff.get("nonfinite_layers"):
        lines.append("NaN/inf in: " + ", ".join(diff["nonfinite_layers"]))
    return lines


def title(diff: Mapping[str, Any], arrow: str = "→") -> str:
    return f"Coral diff: {diff.get('model_a_name', 'A')} {arrow} {diff.get('model_b_name', 'B')}"


def byte_unit(largest: float) -> tuple[str, float]:
    """The binary unit (name, size) that shows `largest` as a number below 1024."""
    unit = 1.0
    for name in ("B", "KiB", "MiB", "GiB", "TiB"):
        if largest < unit * 1024 or name == "TiB":
            return name, unit
        unit *= 1024
    return "TiB", unit  # pragma: no cover

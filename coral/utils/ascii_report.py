"""`coral diff --ascii`: a plain-ASCII diff that fits the terminal and never cuts a name.

From a `compare_models` dictionary: the engine's counts, a block grid (one row per block, one
character per module: the change on a 1–9 log scale) and one bar per drawn tensor. Every
symbol means one thing: markers and grid letters name categories, digits are magnitudes,
`#` fills bars. When names and bars do not fit side by side, each name gets a line of its own.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from coral.utils.block_grid import BlockGrid, block_grid
from coral.utils.report_format import (
    CATEGORY_LABELS,
    GRADES,
    change,
    change_text,
    summary_lines,
    title,
)

_LOG_MIN, _LOG_MAX = -6.0, 0.0  # bars and grid digits span 1e-6 .. 1 of 1 - similarity
MARKERS: dict[str, str] = {
    "identical": "=",
    "minor_changes": "~",
    "moderate_changes": "*",
    "major_changes": "!",
    "shape_changed": "S",
    "added": "+",
    "removed": "-",
}
BAR = "#"
LEVELS = "123456789"  # grid cells of changed tensors: 9 + log10(1 - similarity), rounded
_KEYS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_W = 8


def _log_pos(c: float) -> float:
    """Position in [0, 1] of a change on the log axis (0 for no change)."""
    if c <= 0.0 or math.isnan(c):
        return 0.0
    if math.isinf(c):
        return 1.0
    return min(1.0, max(0.0, (math.log10(c) - _LOG_MIN) / (_LOG_MAX - _LOG_MIN)))


def cell_symbol(layer: Mapping[str, Any]) -> str:
    """One grid character: a level 1-9 for a changed tensor, else its category marker."""
    c = change(layer)
    if layer["category"] == "identical" or c is None:
        return MARKERS.get(layer["category"], "?")
    level = 9 + round(math.log10(c)) if c > 0 and math.isfinite(c) else 9
    return LEVELS[min(8, max(0, level - 1))]


_KEEP = "\x00"  # a space that never breaks: "= identical" stays on one line


def _wrap(text: str, width: int) -> list[str]:
    lines = textwrap.wrap(
        text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False
    )
    return [line.replace(_KEEP, " ") for line in lines] or [""]


def _pairs(items: dict[str, str]) -> str:
    return ", ".join(
        f"{m}{_KEEP}{CATEGORY_LABELS[k].replace(' ', _KEEP)}" for k, m in items.items()
    )


def _grid_lines(grid: BlockGrid, width: int) -> list[str]:
    if not grid.rows:
        return []
    symbols = _pairs({k: m for k, m in MARKERS.items() if k not in GRADES})
    out = _wrap(
        "Change per block (digit = 9 + log10(1 - similarity), rounded: 1 for 1e-8 or less .. "
        f"9{_KEEP}for{_KEEP}1; {symbols}; blank: no such tensor):",
        width,
    )
    if len(grid.columns) > len(_KEYS):
        return [*out, f"  ({len(grid.columns)} modules per block: too many to draw)", ""]
    label_w = max(len(r) for r in grid.rows)
    stacked = label_w + 2 + min(len(grid.columns), 8) > width
    per_chunk = max(1, width - 2 if stacked else width - label_w - 2)
    for start in range(0, len(grid.columns), per_chunk):
        cols = range(start, min(len(grid.columns), start + per_chunk))
        keys = "".join(_KEYS[j] for j in cols)
        out.append(("  " if stacked else " " * (label_w + 2)) + keys)
        for i, row in enumerate(grid.rows):
            cells = "".join(
                cell_symbol(grid.cells[(i, j)]) if (i, j) in grid.cells else " " for j in cols
            )
            if stacked:
                out += [row, "  " + cells.rstrip()]
            else:
                out.append(f"{row:<{label_w}}  {cells}".rstrip())
    entries = [f"{_KEYS[j]} {m}" for j, m in enumerate(grid.columns)]
    entry_w = max(len(e) for e in entries) + 2
    per_line = max(1, (width - 2) // entry_w)
    for k in range(0, len(entries), per_line):
        out.append("  " + "".join(e.ljust(entry_w) for e in entries[k : k + per_line]).rstrip())
    return [*out, ""]


def _ruler(bar_w: int) -> str:
    ruler = [" "] * bar_w
    last_start = bar_w + 1
    for decade, label in ((0, "1"), (-1, ".1"), (-2, ".01"), (-4, "1e-4"), (-6, "1e-6")):
        col = round((decade - _LOG_MIN) / (_LOG_MAX - _LOG_MIN) * bar_w) - 1
        start = max(0, min(bar_w - len(label), col - len(label) + 1))
        if start + len(label) >= last_start:
            continue  # labels are placed right to left and never overlap
        last_start = start
        ruler[start : start + len(label)] = label
    return "".join(ruler).rstrip()


def _bar_body(layer: Mapping[str, Any], bar_w: int) -> str:
    c = change(layer)
    cat = layer["category"]
    if c is None:
        fill = MARKERS.get(cat, "?")
        return (fill * 2 + f" {CATEGORY_LABELS.get(cat, cat)} ").ljust(bar_w, fill)[:bar_w]
    n = round(_log_pos(c) * bar_w)
    if c > 0 and n == 0:
        n = 1
    return (BAR * n).ljust(bar_w)


def _bar_lines(layers: Sequence[Mapping[str, Any]], width: int) -> list[str]:
    if not layers:
        return []
    name_w = max(len(ly["name"]) for ly in layers)
    # "name m|bar|   value" side by side, else the name on a line of its own above "  m|bar|..."
    side_by_side = width - name_w - 4 - _VALUE_W >= 12
    bar_w = min(50, width - name_w - 4 - _VALUE_W) if side_by_side else width - 5 - _VALUE_W
    start = " " * (name_w + 3 if side_by_side else 4)  # where the bar begins
    head = "change = 1 - similarity (log scale)" if bar_w >= 36 else "1 - similarity"
    out = [start + head, start + _ruler(bar_w)]
    for ly in layers:
        marker = MARKERS.get(ly["category"], "?")
        value = change_text(ly) if change(ly) is not None else "-"
        bar = f"{marker}|{_bar_body(ly, bar_w)}|{value:>{_VALUE_W}}"
        if side_by_side:
            out.append(f"{ly['name']:<{name_w}} {bar}")
        else:
            out += [ly["name"], f"  {bar}"]
    return out


def render_diff_ascii(
    diff: Mapping[str, Any],
    width: int = 80,
    *,
    max_layers: int | None = None,
    show_identical: bool = False,
) -> str:
    """A plain-ASCII diff for terminals: summary, block grid and one bar per tensor.

    Bars show the change 1 - combined_similarity on a log scale from 1e-6 to 1; every line is
    at most `width` columns unless a single name is longer. Identical tensors get no bar
    unless `show_identical`; with `max_layers`, only the most changed tensors get one (in
    layer order) and a note says how many were left out.
    """
    width = max(20, int(width))
    layers = list(diff["layers"])
    out = [title(diff, "->")]
    for line in summary_lines(diff):
        out += _wrap(line, width)
    out.append("")
    grid = block_grid(layers, show_identical=show_identical)
    out += _grid_lines(grid, width)

    drawn = [ly for ly in layers if show_identical or ly["category"] != "identical"]
    shown = drawn
    if max_layers is not None and len(drawn) > max_layers:
        ranked = sorted(range(len(drawn)), key=lambda i: -(change(drawn[i]) or 2.0))
        keep = set(ranked[:max_layers])
        shown = [ly for i, ly in enumerate(drawn) if i in keep]
    out += _bar_lines(shown, width)
    if len(shown) < len(drawn):
        out.append(f"... {len(drawn) - len(shown)} less changed tensors not shown")
    hidden = len(layers) - len(drawn)
    if hidden:
        out.append(f"{hidden} identical tensor{'s' if hidden != 1 else ''} not drawn")
    out.append("")
    out += _wrap(f"Markers: {_pairs(MARKERS)}; {BAR}{_KEEP}bar{_KEEP}length", width)
    out += _wrap(
        "Changed tensors grade by similarity: minor > 99% >= moderate > 90% >= major", width
    )
    return "\n".join(line.rstrip() for line in out)

"""Filling a DataTable with rows whose columns are sized before the first frame is painted.

Textual's DataTable measures automatic column widths on idle, and keys its cell cache without
the width: a frame painted between `add_row` and that idle (a loaded machine, a worker's
result arriving mid-paint) caches every cell cut to its header's width, and the cells stay cut
until the table is cleared again. `fill_table` measures the cells itself and gives each
column an explicit width, so no frame depends on that idle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[Sequence[Cell], str]  # the cells, the row's key


def cell_width(cell: Cell) -> int:
    """Terminal columns `cell` takes (its widest line)."""
    text = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in text.splitlines()), default=0)


def fill_table(table: DataTable[Any], labels: Sequence[str], rows: Sequence[Row]) -> None:
    """Replace `table`'s columns and rows: `labels` as headers, each `(cells, key)` a row, every
    column as wide as its widest cell or label."""
    widths = [cell_width(label) for label in labels]
    for cells, _ in rows:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], cell_width(cell))
    table.clear(columns=True)
    for label, width in zip(labels, widths, strict=True):
        table.add_column(label, width=width, key=label)
    for cells, key in rows:
        table.add_row(*cells, key=key)

"""A histogram drawn with text: columns of eighth blocks, an axis with the range under them.

Pure functions (no textual), so tests and other text front ends can use them. Two histograms
drawn with the same `scale` and the same bins can be read side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"
ASCII_BLOCKS = " .:-=+*#@"  # for terminals without Unicode: one character per cell, 8 levels


def resample(counts: Sequence[int], width: int) -> list[int]:
    """`counts` merged into at most `width` columns (sums of neighbouring bins)."""
    n = len(counts)
    if n <= width or width <= 0:
        return list(counts)
    out = []
    for j in range(width):
        lo, hi = j * n // width, (j + 1) * n // width
        out.append(sum(counts[lo:hi]))
    return out


def histogram_lines(
    counts: Sequence[int],
    edges: Sequence[float],
    *,
    width: int = 32,
    height: int = 6,
    scale: int | None = None,
    ascii_only: bool = False,
) -> list[str]:
    """`height` lines of columns (tallest = `scale`, default the largest count), then the
    axis: the first and last edge under the first and last column. Empty counts draw a note."""
    if not counts or sum(counts) == 0:
        return ["(no finite values)"]
    cols = resample(counts, width)
    top = max(scale or 0, max(cols)) or 1
    blocks = ASCII_BLOCKS if ascii_only else BLOCKS
    levels = len(blocks) - 1
    lines = []
    for row in range(height, 0, -1):  # top line first
        line = []
        for c in cols:
            eighths = round(c / top * height * levels)
            fill = eighths - (row - 1) * levels
            if fill >= levels:
                line.append(blocks[-1])
            elif fill > 0:
                line.append(blocks[fill])
            elif row == 1 and c > 0:
                line.append(blocks[1])  # a non-empty bin is never invisible
            else:
                line.append(" ")
        lines.append("".join(line).rstrip() or "")
    lines.append("-" * len(cols))
    if edges:
        left, right = f"{edges[0]:.3g}", f"{edges[-1]:.3g}"
        gap = max(1, len(cols) - len(left) - len(right))
        lines.append(left + " " * gap + right)
    return lines

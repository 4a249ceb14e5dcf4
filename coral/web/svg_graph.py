"""The commit graph as one small SVG per history row, from the prefixes `coral log --graph`
prints (`graph_rows`): `*` a commit on lane i (column 2i), `|` a lane going on, `/` and `\\`
between columns a lane joining or forking. Row after row, the pieces meet at the cell edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coral.web.svg import colour

LANE = 14  # px between lanes
ROW = 26  # px: a commit row
JOINT = 12  # px: a connector row
OVER = 2  # px a lane runs past its cell, so that rows separated by a border still join


@dataclass(frozen=True)
class GraphCell:
    prefix: str
    is_commit: bool
    has_parents: bool = True


def _x(lane: int) -> float:
    return LANE / 2 + lane * LANE


def graph_svgs(cells: Sequence[GraphCell], *, continued: bool = False) -> list[str]:
    """One SVG per row, all the same width; `continued`: lanes come from an earlier page."""
    lanes = max((len(c.prefix) // 2 + 1 for c in cells), default=1)
    width = lanes * LANE
    out = []
    above = ""
    if continued and cells:
        above = cells[0].prefix.replace("*", "|")
    for cell in cells:
        h = ROW if cell.is_commit else JOINT
        parts = []
        for p, ch in enumerate(cell.prefix):
            if p % 2 == 0:
                lane = p // 2
                x = _x(lane)
                c = colour(lane)
                if ch == "|":
                    parts.append(_line(x, -OVER, x, h + OVER, c))
                elif ch == "*":
                    if p < len(above) and above[p] in "|*\\/":
                        parts.append(_line(x, -OVER, x, h / 2, c))
                    if cell.has_parents:
                        parts.append(_line(x, h / 2, x, h + OVER, c))
                    parts.append(
                        f'<circle class="node" cx="{x}" cy="{h / 2}" r="4.5" fill="{c}" '
                        'stroke="#fff" stroke-width="1.5"/>'
                    )
            elif ch == "/":
                upper, lower = (p + 1) // 2, (p - 1) // 2
                parts.append(_line(_x(upper), 0, _x(lower), h, colour(upper)))
            elif ch == "\\":
                upper, lower = (p - 1) // 2, (p + 1) // 2
                parts.append(_line(_x(upper), 0, _x(lower), h, colour(lower)))
        out.append(
            f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{h}" viewBox="0 0 {width} {h}">' + "".join(parts) + "</svg>"
        )
        ends = cell.is_commit and not cell.has_parents  # a root: its lane stops here
        above = _bottom(cell.prefix.replace("*", " ") if ends else cell.prefix)
    return out


def _bottom(prefix: str) -> str:
    """What a row leaves at its lower edge, as lane characters (for the next row's top)."""
    chars = list(prefix)
    for p, ch in enumerate(prefix):
        if ch == "/":
            lower = p - 1
            chars[p] = " "
            if lower >= 0:
                chars[lower] = "|"
        elif ch == "\\":
            chars[p] = " "
            while len(chars) <= p + 1:
                chars.append(" ")
            chars[p + 1] = "|"
    return "".join(chars)


def _line(x1: float, y1: float, x2: float, y2: float, c: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{c}" '
        'stroke-width="2" stroke-linecap="round"/>'
    )

"""The diff's block heatmap as inline SVG (DESIGN §8): one row per block (`encoder.layer.3`),
one column per module, each cell coloured by the change 1 − similarity on the log colour scale
the PNG uses (viridis, spanning exactly the changes drawn); tensors outside any block family get
a bar each on the same scale. Identical tensors are left out unless asked for; every drawn row
and column is labelled; every cell names its tensor on hover."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from coral.utils.block_grid import BlockGrid, block_grid
from coral.utils.report_format import CATEGORY_COLORS, CATEGORY_LABELS, change, change_text

IDENTICAL_FILL = "#e6e6e6"
SYMBOLS = {"identical": "=", "added": "+", "removed": "−", "shape_changed": "S"}
MAX_OTHERS = 300  # bars drawn for tensors outside block families; the table lists the rest
CHAR_PX = 6.6  # width of a character of the 11 px label font
# viridis at 0, 1/8, ..., 1 (matplotlib's colormap, sampled)
_VIRIDIS = (
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
)


def viridis(t: float) -> str:
    """The viridis colour at t in [0, 1] as #rrggbb."""
    t = min(1.0, max(0.0, t)) * (len(_VIRIDIS) - 1)
    i = min(len(_VIRIDIS) - 2, int(t))
    f = t - i
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b, strict=True))


def scale(layers: Sequence[Mapping[str, Any]]) -> tuple[float, float] | None:
    """The log colour range (lo, hi) of the changes drawn: at least one decade, centred on the
    data (the PNG's rule); None when nothing changed."""
    changes = [
        c
        for ly in layers
        if ly["category"] != "identical" and (c := change(ly)) is not None and c > 0
    ]
    if not changes:
        return None
    lo, hi = min(changes), max(changes)
    if hi / lo < 10.0:
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10.0), mid * math.sqrt(10.0)
    return lo, hi


def fill(ly: Mapping[str, Any], rng: tuple[float, float] | None) -> str:
    c = change(ly)
    if ly["category"] == "identical":
        return IDENTICAL_FILL
    if c is None or rng is None:
        return CATEGORY_COLORS.get(ly["category"], "#9e9e9e")
    lo, hi = rng
    t = (math.log10(max(c, 1e-300)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    return viridis(t)


def _ink(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#212121"


def _tip(ly: Mapping[str, Any]) -> str:
    cat = CATEGORY_LABELS.get(ly["category"], ly["category"])
    return f"{ly['name']}: {cat}, 1 − similarity {change_text(ly)}"


def heatmap_svg(
    comparison: Mapping[str, Any], *, show_identical: bool = False, link: str | None = None
) -> str:
    """The heatmap of a `compare_models` dictionary; `link` (a URL with `{name}`) makes each
    cell and bar a link to that tensor."""
    layers = comparison["layers"]
    grid = block_grid(layers, show_identical=show_identical)
    rng = scale([*grid.cells.values(), *grid.others])
    parts: list[str] = []
    y = 8.0
    width = 0.0
    if grid.rows:
        svg, w, h = _grid(grid, rng, link)
        parts.append(f'<g class="blocks" transform="translate(0 {y})">{svg}</g>')
        width, y = max(width, w), y + h + 16
    if grid.others:
        svg, w, h = _others(grid.others, rng, link)
        parts.append(f'<g class="others" transform="translate(0 {y})">{svg}</g>')
        width, y = max(width, w), y + h + 16
    if not parts:
        message = (
            f"nothing changed ({grid.hidden_identical} identical tensors not drawn)"
            if grid.hidden_identical
            else "no tensors to draw"
        )
        return (
            '<svg class="heatmap empty" xmlns="http://www.w3.org/2000/svg" width="480" '
            'height="40" font-family="DejaVu Sans,Helvetica,Arial,sans-serif" font-size="12">'
            f'<text x="8" y="24" fill="#616161">{escape(message)}</text></svg>'
        )
    legend, lw, lh = _legend(rng)
    parts.append(f'<g class="legend" transform="translate(0 {y})">{legend}</g>')
    width, y = max(width, lw), y + lh
    return (
        f'<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}" role="img" '
        'aria-label="change per block" font-family="DejaVu Sans,Helvetica,Arial,sans-serif" '
        'font-size="11">' + "".join(parts) + "</svg>"
    )


def _wrap_link(mark: str, ly: Mapping[str, Any], link: str | None) -> str:
    if link is None or ly["category"] == "removed":
        return mark
    href = escape(link.replace("{name}", _quote(ly["name"])))
    return f'<a href="{href}">{mark}</a>'


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _grid(
    grid: BlockGrid, rng: tuple[float, float] | None, link: str | None
) -> tuple[str, float, float]:
    n_cols = len(grid.columns)
    cell = max(12.0, min(26.0, 900.0 / max(1, n_cols)))
    label_w = max(len(r) for r in grid.rows) * CHAR_PX + 10
    head_h = min(220.0, max(len(c) for c in grid.columns) * CHAR_PX * 0.72 + 12)
    out = []
    for j, col in enumerate(grid.columns):
        x = label_w + j * cell + cell / 2
        out.append(
            f'<text class="col-label" transform="translate({x + 3:.1f} {head_h - 4:.1f}) '
            f'rotate(-45)" fill="#424242">{escape(col)}</text>'
        )
    for i, row in enumerate(grid.rows):
        y = head_h + i * cell
        out.append(
            f'<text class="row-label" x="{label_w - 6:.1f}" y="{y + cell / 2 + 4:.1f}" '
            f'text-anchor="end" font-family="DejaVu Sans Mono,monospace" fill="#212121">'
            f"{escape(row)}</text>"
        )
    for (i, j), ly in sorted(grid.cells.items()):
        x, y = label_w + j * cell, head_h + i * cell
        colour = fill(ly, rng)
        symbol = SYMBOLS.get(ly["category"], "")
        text = (
            f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
            f'fill="{_ink(colour)}" font-size="10">{escape(symbol)}</text>'
            if symbol and cell >= 14
            else ""
        )
        mark = (
            f'<g class="cell" data-name="{escape(ly["name"])}" '
            f'data-category="{escape(ly["category"])}"><rect x="{x + 1:.1f}" y="{y + 1:.1f}" '
            f'width="{cell - 2:.1f}" height="{cell - 2:.1f}" fill="{colour}" rx="2">'
            f"<title>{escape(_tip(ly))}</title></rect>{text}</g>"
        )
        out.append(_wrap_link(mark, ly, link))
    width = label_w + n_cols * cell + head_h * 0.72 + 8
    return "".join(out), width, head_h + len(grid.rows) * cell


def _others(
    layers: Sequence[Mapping[str, Any]], rng: tuple[float, float] | None, link: str | None
) -> tuple[str, float, float]:
    shown = list(layers[:MAX_OTHERS])
    row = 16.0
    label_w = max(len(ly["name"]) for ly in shown) * CHAR_PX + 10
    bar_w = 320.0
    lo, hi = rng if rng else (1e-6, 1.0)
    floor, top = math.log10(lo / 10.0), math.log10(hi * 2.0)
    out = [
        '<text x="0" y="11" fill="#424242" font-weight="bold">'
        "Tensors outside a block structure</text>"
    ]
    for i, ly in enumerate(shown):
        y = 18 + i * row
        c = change(ly)
        if ly["category"] == "identical":
            frac = 0.0
        elif c is None:  # added, removed, shape changed: no similarity, a full bar
            frac = 1.0
        else:
            frac = (math.log10(max(c, 10**floor)) - floor) / (top - floor)
        colour = fill(ly, rng)
        mark = (
            f'<g class="other" data-name="{escape(ly["name"])}" '
            f'data-category="{escape(ly["category"])}">'
            f'<text x="{label_w - 6:.1f}" y="{y + 12:.1f}" text-anchor="end" '
            f'font-family="DejaVu Sans Mono,monospace" fill="#212121">{escape(ly["name"])}</text>'
            f'<rect x="{label_w:.1f}" y="{y + 2:.1f}" width="{max(3.0, frac * bar_w):.1f}" '
            f'height="{row - 4:.1f}" fill="{colour}"><title>{escape(_tip(ly))}</title></rect>'
            f'<text x="{label_w + max(3.0, frac * bar_w) + 5:.1f}" y="{y + 12:.1f}" '
            f'fill="#616161">{escape(change_text(ly))}</text></g>'
        )
        out.append(_wrap_link(mark, ly, link))
    height = 18 + len(shown) * row
    if len(layers) > len(shown):
        out.append(
            f'<text x="0" y="{height + 12:.1f}" fill="#616161">… and '
            f"{len(layers) - len(shown)} more (listed in the table)</text>"
        )
        height += 18
    return "".join(out), label_w + bar_w + 70, height


def _legend(rng: tuple[float, float] | None) -> tuple[str, float, float]:
    out = []
    x = 0.0
    if rng is not None:
        lo, hi = rng
        stops = "".join(
            f'<stop offset="{k / 8:.3f}" stop-color="{viridis(k / 8)}"/>' for k in range(9)
        )
        out.append(
            f'<defs><linearGradient id="change-scale">{stops}</linearGradient></defs>'
            '<text x="0" y="12" fill="#424242">1 − similarity</text>'
            '<rect x="92" y="2" width="200" height="12" fill="url(#change-scale)"/>'
            f'<text x="92" y="28" fill="#616161">{lo:.1e}</text>'
            f'<text x="292" y="28" text-anchor="end" fill="#616161">{hi:.1e}</text>'
        )
        x = 310.0
    for cat in ("identical", "shape_changed", "added", "removed"):
        colour = IDENTICAL_FILL if cat == "identical" else CATEGORY_COLORS[cat]
        out.append(
            f'<rect x="{x:.0f}" y="2" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16:.0f}" y="12" fill="#424242">{SYMBOLS[cat]} '
            f"{escape(CATEGORY_LABELS[cat])}</text>"
        )
        x += 40 + len(CATEGORY_LABELS[cat]) * CHAR_PX
    return "".join(out), x, 34.0

"""Charts as inline SVG, drawn on the server: line plots, bar charts, histograms, stacked bars.

No JavaScript and no chart library: a page is complete as sent, prints, and works offline.
Every mark has a `<title>` (the browser shows it on hover); axes carry tick labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1e88e5",
    "#e53935",
    "#43a047",
    "#fb8c00",
    "#8e24aa",
    "#00acc1",
    "#6d4c41",
    "#c0ca33",
    "#5e35b1",
    "#d81b60",
)
_FONT = 'font-family="DejaVu Sans,Helvetica,Arial,sans-serif"'
MAX_MARKERS = 400  # points drawn as circles; beyond that, the line alone
MAX_VERTICES = 2000  # a longer line is thinned to about this many points (every k-th, + last)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def fmt(x: float) -> str:
    """A tick or tooltip number: short, exact enough."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a >= 1e5 or a < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values from at most `lo` to at least `hi`."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    t = start
    while len(ticks) < 50:
        ticks.append(round(t, 12))
        if t >= hi - step * 1e-9:  # the last tick covers hi
            break
        t += step
    return ticks


@dataclass(frozen=True)
class Line:
    """One series: a label, and (x, y) points; a y of None breaks the line."""

    label: str
    points: Sequence[tuple[float, float | None]]
    colour: str = ""


def _svg(width: int, height: int, body: list[str], cls: str, label: str) -> str:
    return (
        f'<svg class="chart {cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="{escape(label)}" '
        f'{_FONT} font-size="11">' + "".join(body) + "</svg>"
    )


def _empty(width: int, height: int, cls: str, message: str) -> str:
    return _svg(
        width,
        height,
        [
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#757575">'
            f"{escape(message)}</text>"
        ],
        cls + " empty",
        message,
    )


def line_chart(
    lines: Sequence[Line],
    *,
    width: int = 760,
    height: int = 280,
    x_label: str = "",
    y_label: str = "",
    x_tick_text: Callable[[float], str] | None = None,
    point_title: Callable[[Line, float, float], str] | None = None,
    cls: str = "line-chart",
) -> str:
    """Lines on shared axes, with a legend; `x_tick_text` names an x tick (a commit), and
    `point_title` the tooltip of a point."""
    finite = [
        (x, y)
        for ln in lines
        for x, y in ln.points
        if y is not None and math.isfinite(y) and math.isfinite(x)
    ]
    if not finite:
        return _empty(width, height, cls, "nothing to plot")
    left, right, top, bottom = 64, 16, 14 + 16 * ((len(lines) + 3) // 4), 44
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    yt = nice_ticks(min(ys), max(ys))
    y0, y1 = min(yt[0], min(ys)), max(yt[-1], max(ys))
    if y1 == y0:
        y1 = y0 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa"/>']
    for t in yt:
        y = py(t)
        body.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#616161">'
            f"{escape(fmt(t))}</text>"
        )
    for t in nice_ticks(x0, x1, 6):
        if t < x0 or t > x1:
            continue
        x = px(t)
        text = x_tick_text(t) if x_tick_text else fmt(t)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" '
            'stroke="#9e9e9e"/>'
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#616161">'
            f"{escape(text)}</text>"
        )
    body.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#9e9e9e"/>'
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#9e9e9e"/>'
    )
    if x_label:
        body.append(
            f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" fill="#424242">'
            f"{escape(x_label)}</text>"
        )
    if y_label:
        body.append(
            f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
            f'fill="#424242">{escape(y_label)}</text>'
        )
    for i, ln in enumerate(lines):
        c = ln.colour or colour(i)
        segments: list[list[tuple[float, float]]] = [[]]
        for x, yv in ln.points:
            if yv is None or not math.isfinite(yv):
                segments.append([])
            else:
                segments[-1].append((x, yv))
        segments = [_thin(seg) for seg in segments]
        for seg in segments:
            if len(seg) > 1:
                pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
                body.append(
                    f'<polyline class="series" data-series="{escape(ln.label)}" points="{pts}" '
                    f'fill="none" stroke="{c}" stroke-width="1.8"/>'
                )
        drawn = [(x, y) for seg in segments for x, y in seg]
        if len(drawn) <= MAX_MARKERS:
            for x, y in drawn:
                tip = point_title(ln, x, y) if point_title else f"{ln.label}: {fmt(y)}"
                body.append(
                    f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.6" '
                    f'fill="{c}"><title>{escape(tip)}</title></circle>'
                )
        lx, ly = left + (i % 4) * (pw / 4), 12 + 16 * (i // 4)
        body.append(
            f'<rect x="{lx:.1f}" y="{ly - 8}" width="12" height="3" fill="{c}"/>'
            f'<text class="legend" x="{lx + 16:.1f}" y="{ly - 3}" fill="#212121">'
            f"{escape(_clip(ln.label, 34))}</text>"
        )
    return _svg(width, height, body, cls, y_label or "line chart")


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Every k-th point (and the last) of a line longer than MAX_VERTICES: a curve of 10⁵
    logged steps stays a page of a few hundred kB."""
    if len(points) <= MAX_VERTICES:
        return points
    step = math.ceil(len(points) / MAX_VERTICES)
    return [*points[::step], points[-1]] if (len(points) - 1) % step else points[::step]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 420,
    height: int = 200,
    bar_colour: str = "#1e88e5",
    value_text: Callable[[float], str] = fmt,
    cls: str = "bar-chart",
    label: str = "bar chart",
) -> str:
    """Vertical bars, one per (label, value), each labelled below and valued on hover."""
    if not bars:
        return _empty(width, height, cls, "nothing to plot")
    left, right, top, bottom = 48, 8, 10, 36
    pw, ph = width - left - right, height - top - bottom
    hi, body = _value_grid(max(v for _, v in bars), left, top, pw, ph, value_text)
    slot = pw / len(bars)
    step = max(1, math.ceil(len(bars) / max(1, pw // 28)))  # labels at least 28 px apart
    for i, (name, v) in enumerate(bars):
        h = v / hi * ph
        x = left + i * slot + slot * 0.12
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + ph - h:.1f}" width="{slot * 0.76:.1f}" '
            f'height="{h:.1f}" fill="{bar_colour}"><title>{escape(name)}: '
            f"{escape(value_text(v))}</title></rect>"
        )
        if i % step == 0:
            body.append(
                f'<text x="{x + slot * 0.38:.1f}" y="{top + ph + 14}" text-anchor="middle" '
                f'fill="#424242">{escape(_clip(name, 10))}</text>'
            )
    body.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#9e9e9e"/>'
    )
    return _svg(width, height, body, cls, label)


def histogram(
    counts: Sequence[int], edges: Sequence[float], *, width: int = 520, height: int = 200
) -> str:
    """A value histogram: bars between bin edges, the edges' range on the x axis."""
    if not counts or len(edges) != len(counts) + 1:
        return _empty(width, height, "histogram", "no finite values")
    bars = [(f"[{fmt(edges[i])}, {fmt(edges[i + 1])})", float(c)) for i, c in enumerate(counts)]
    svg = bar_chart(
        bars, width=width, height=height, cls="histogram", value_text=_count, label="histogram"
    )
    return svg


def _count(v: float) -> str:
    return f"{v:,.0f}"


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[float], str]],
    parts: Sequence[tuple[str, str]],
    *,
    width: int = 760,
    height: int = 240,
    value_text: Callable[[float], str] = fmt,
    cls: str = "stacked-bars",
) -> str:
    """One stacked bar per row (label, values per part, tooltip), parts named and coloured by
    `parts` [(name, colour)], with a legend."""
    if not rows:
        return _empty(width, height, cls, "nothing to plot")
    left, right, top, bottom = 64, 8, 26, 36
    pw, ph = width - left - right, height - top - bottom
    hi, body = _value_grid(max(sum(v) for _, v, _ in rows), left, top, pw, ph, value_text)
    slot = pw / len(rows)
    step = max(1, math.ceil(len(rows) / max(1, pw // 80)))
    for i, (name, values, tip) in enumerate(rows):
        x = left + i * slot + slot * 0.1
        base = float(top + ph)
        for (part, c), v in zip(parts, values, strict=True):
            h = max(0.0, v) / hi * ph
            base -= h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{c}"><title>{escape(name)} {escape(part)}: '
                f"{escape(value_text(v))}. {escape(tip)}</title></rect>"
            )
        if i % step == 0:
            body.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{top + ph + 14}" text-anchor="middle" '
                f'fill="#424242">{escape(name)}</text>'
            )
    lx = float(left)
    for part, c in parts:
        body.append(
            f'<rect x="{lx}" y="6" width="10" height="10" fill="{c}"/>'
            f'<text class="legend" x="{lx + 14}" y="15" fill="#212121">{escape(part)}</text>'
        )
        lx += 34 + len(part) * 6.2
    return _svg(width, height, body, cls, "stacked bars")


def _value_grid(
    top_value: float,
    left: int,
    top: int,
    pw: int,
    ph: int,
    value_text: Callable[[float], str],
) -> tuple[float, list[str]]:
    """The y scale's top (a round tick at or above `top_value`) and its gridlines with labels,
    for bars that grow up from zero."""
    hi = top_value or 1.0
    ticks = nice_ticks(0.0, hi, 4)
    hi = max(hi, ticks[-1])
    body = []
    for t in ticks:
        y = top + ph - t / hi * ph
        body.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeeee"/>'
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" fill="#616161">'
            f"{escape(value_text(t))}</text>"
        )
    return hi, body

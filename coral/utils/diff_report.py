"""Visual model diffs (roadmap item 1): terminal bars, PNG charts and a self-contained HTML report.

All renderers take the dictionary returned by `coral.utils.visualization.compare_models`.
`render_diff_ascii` needs nothing but the standard library; the PNG/HTML renderers draw with
matplotlib's Agg canvas (no display, no pyplot state) and raise a `CoralError` with an install
hint when matplotlib is missing. HTML reports embed their images as base64 PNG and carry their
own CSS and JavaScript, so they open offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.errors import CoralError
from coral.utils.visualization import CATEGORY_ORDER

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure

__all__ = [
    "render_diff_ascii",
    "render_diff_html",
    "render_diff_png",
    "render_savings_chart",
]

# Change magnitude shown = 1 - combined_similarity, on a log scale between these decades.
_LOG_MIN, _LOG_MAX = -6.0, 0.0

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
_ASCII_MARKERS: dict[str, str] = {
    "identical": "=",
    "minor_changes": ".",
    "moderate_changes": "~",
    "major_changes": "!",
    "shape_changed": "#",
    "added": "+",
    "removed": "-",
}
_SPARK_RAMP = " .:-=+*#%@"
_DIST_TITLE = "Weight distributions of the most changed layers"

# (label, getter, log-scaled) for the heatmap columns.
_METRICS: list[tuple[str, str]] = [
    ("1 −\nsimilarity", "change"),
    ("1 −\ncosine", "one_minus_cosine"),
    ("relative\nchange", "relative_change"),
    ("RMSE", "rmse"),
    ("max\n|Δ|", "max_abs_diff"),
    ("mean\n|Δ|", "mean_abs_diff"),
    ("changed\nelements", "changed_fraction"),
]


# -- shared helpers ----------------------------------------------------------------------------


def _change(layer: Mapping[str, Any]) -> float | None:
    """1 - combined_similarity, or None for layers that have no similarity."""
    sim = layer.get("combined_similarity")
    return None if sim is None else max(0.0, 1.0 - float(sim))


def _metric(layer: Mapping[str, Any], key: str) -> float | None:
    if layer.get("combined_similarity") is None:
        return None
    if key == "change":
        return _change(layer)
    if key == "one_minus_cosine":
        return max(0.0, 1.0 - float(layer["cosine_similarity"]))
    if key == "relative_change":
        return float(layer["relative_change"])
    stats = layer.get("diff_stats") or {}
    value = stats.get(key)
    return None if value is None else float(value)


def _log_pos(change: float) -> float:
    """Position in [0, 1] of a change magnitude on the log axis (0 for no change)."""
    if change <= 0.0 or math.isnan(change):
        return 0.0
    if math.isinf(change):
        return 1.0
    pos = (math.log10(change) - _LOG_MIN) / (_LOG_MAX - _LOG_MIN)
    return min(1.0, max(0.0, pos))


def _middle_clip(text: str, width: int) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    keep = width - 3
    head = (keep + 1) // 2
    return text[:head] + "..." + text[len(text) - (keep - head) :]


def _short_name(name: str, width: int) -> str:
    """Fit a dotted layer name into `width`: abbreviate leading components, then clip."""
    if len(name) <= width:
        return name
    parts = name.split(".")
    for i in range(len(parts) - 1):
        if not parts[i].isdigit() and len(parts[i]) > 1:
            parts[i] = parts[i][0]
            short = ".".join(parts)
            if len(short) <= width:
                return short
    return _middle_clip(".".join(parts), width)


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _byte_unit(largest: float) -> tuple[str, float]:
    """The binary unit (name, size) that shows `largest` as a number below 1024."""
    unit = 1.0
    for name in ("B", "KiB", "MiB", "GiB", "TiB"):
        if largest < unit * 1024 or name == "TiB":
            return name, unit
        unit *= 1024
    return "TiB", unit  # pragma: no cover


def _summary_lines(diff: Mapping[str, Any]) -> list[str]:
    s = diff["summary"]
    c = diff["category_counts"]
    total = s["total_params"]
    frac = s["changed_params"] / total if total else 0.0
    lines = [
        f"Overall similarity {s['overall_similarity']:.2%}   changed params "
        f"{s['changed_params']:,} of {total:,} ({frac:.1%})",
        f"Layers: {s['common_layers']} common, {s['added_layers']} added, "
        f"{s['removed_layers']} removed, {s['shape_changed_layers']} shape changed",
        "Categories: "
        + ", ".join(f"{CATEGORY_LABELS[k]} {c.get(k, 0)}" for k in CATEGORY_ORDER[:4]),
    ]
    if diff.get("nonfinite_layers"):
        lines.append("NaN/inf in: " + ", ".join(diff["nonfinite_layers"]))
    return lines


# -- ASCII -------------------------------------------------------------------------------------


def _sparkline(values: Sequence[float], width: int) -> str:
    """One character per value (bucketed by max when there are more values than columns)."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        per = len(values) / width
        values = [
            max(values[int(i * per) : max(int((i + 1) * per), int(i * per) + 1)])
            for i in range(width)
        ]
    top = len(_SPARK_RAMP) - 1
    out = []
    for v in values:
        level = 0 if v <= 0 else max(1, min(top, math.ceil(v * top)))
        out.append(_SPARK_RAMP[level])
    return "".join(out)


def render_diff_ascii(
    diff: Mapping[str, Any], width: int = 80, *, max_layers: int | None = None
) -> str:
    """A plain-ASCII diff for terminals: summary, sparklines and one bar per layer.

    Bars show the change 1 - combined_similarity on a log scale from 1e-6 to 1; every line is
    at most `width` columns. With `max_layers`, only the most changed layers get a bar (in
    layer order) and a note says how many were left out.
    """
    width = max(20, int(width))
    layers = list(diff["layers"])
    out: list[str] = []
    for line in (
        f"Coral diff: {diff.get('model_a_name', 'A')} -> {diff.get('model_b_name', 'B')}",
        *_summary_lines(diff),
    ):
        out += _wrap(line, width)
    out.append("")

    spark_w = width - 12
    change_vals = [1.0 if _change(ly) is None else _log_pos(_change(ly) or 0.0) for ly in layers]
    rel = [
        math.inf if ly["combined_similarity"] is None else float(ly["relative_change"] or 0.0)
        for ly in layers
    ]
    finite_rel = [r for r in rel if math.isfinite(r) and r > 0]
    rel_top = max(finite_rel) if finite_rel else 1.0
    rel_floor = rel_top * 1e-6
    rel_vals = []
    for r in rel:
        if math.isinf(r):
            rel_vals.append(1.0)
        elif r <= 0:
            rel_vals.append(0.0)
        else:
            rel_vals.append(max(0.0, (math.log10(max(r, rel_floor)) - math.log10(rel_floor)) / 6.0))
    if layers:
        intro = f"Per layer, in layer order ({len(layers)} layers; ' ' none .. '@' most):"
        out += _wrap(intro, width)
        out.append(f"  change  |{_sparkline(change_vals, spark_w)}|")
        out.append(f"  rel.chg |{_sparkline(rel_vals, spark_w)}|")
        out.append("")

    shown = layers
    if max_layers is not None and len(layers) > max_layers:
        ranked = sorted(
            range(len(layers)),
            key=lambda i: -(2.0 if _change(layers[i]) is None else (_change(layers[i]) or 0.0)),
        )
        keep = set(ranked[:max_layers])
        shown = [ly for i, ly in enumerate(layers) if i in keep]

    sim_w = 8
    name_w = max(8, min(40, int(width * 0.34)))
    bar_w = width - name_w - 2 - 2 - 1 - sim_w  # "name m |bar| sim"
    if bar_w < 10:
        name_w = max(6, name_w - (10 - bar_w))
        bar_w = width - name_w - 5 - sim_w
    title = "change = 1 - similarity (log scale)" if bar_w >= 36 else "change (log)"
    out.append(f"{'Layer':<{name_w}}   {title:<{bar_w}} {'similar':>{sim_w}}")
    ruler = [" "] * bar_w
    last_end = -2
    for decade, label in ((0, "1"), (-1, ".1"), (-2, ".01"), (-4, "1e-4"), (-6, "1e-6")):
        col = round((decade - _LOG_MIN) / (_LOG_MAX - _LOG_MIN) * bar_w) - 1
        start = max(0, min(bar_w - len(label), col - len(label) + 1))
        if decade == 0:
            last_end = start  # labels are placed right to left
        elif start + len(label) >= last_end:
            continue
        else:
            last_end = start
        for i, ch in enumerate(label):
            ruler[start + i] = ch
    out.append(f"{'':<{name_w}}   {''.join(ruler).rstrip()}")

    for ly in shown:
        cat = ly["category"]
        marker = _ASCII_MARKERS.get(cat, "?")
        name = _short_name(ly["name"], name_w)
        change = _change(ly)
        if change is None:
            label = f" {CATEGORY_LABELS.get(cat, cat)} "
            fill = "+" if cat == "added" else "-" if cat == "removed" else "#"
            body = (fill * 2 + label).ljust(bar_w, fill)[:bar_w]
            sim = "-"
        else:
            n = round(_log_pos(change) * bar_w)
            if change > 0 and n == 0:
                n = 1
            body = ("#" * n).ljust(bar_w)
            sim = _pct(ly["combined_similarity"])
        out.append(f"{name:<{name_w}} {marker}|{body}|{sim:>{sim_w}}")
    if len(shown) < len(layers):
        out.append(f"... {len(layers) - len(shown)} less changed layers not shown")
    out.append("")
    markers = ", ".join(f"{_ASCII_MARKERS[k]} {CATEGORY_LABELS[k]}" for k in CATEGORY_ORDER)
    out += _wrap("Markers: " + markers, width)
    out += _wrap(
        "Change thresholds: identical < 1e-4 <= minor < 0.01 <= moderate < 0.1 <= major", width
    )
    return "\n".join(_fit(line, width) for line in out)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False) or [""]


def _fit(line: str, width: int) -> str:
    line = line.rstrip()
    return line if len(line) <= width else line[: width - 3] + "..."


# -- matplotlib drawing ------------------------------------------------------------------------


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CoralError(
            "visual diffs need matplotlib",
            hint="pip install 'coral-vcs[viz]' (or use the ASCII output: --ascii)",
        ) from exc


def _new_figure(width: float, height: float) -> Figure:
    _require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    fig.set_facecolor("white")
    return fig


def _save_png(fig: Figure, path: Path | io.BytesIO) -> None:
    fig.savefig(path, format="png", dpi=110, facecolor="white")


def _title(diff: Mapping[str, Any]) -> str:
    return f"Coral diff: {diff.get('model_a_name', 'A')} → {diff.get('model_b_name', 'B')}"


def _column_normalise(values: list[float | None]) -> list[float]:
    """Map one metric column to [0, 1] on a log scale spanning 6 decades below its maximum."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    top = max(finite) if finite else 0.0
    out: list[float] = []
    for v in values:
        if v is None:
            out.append(math.nan)
        elif top <= 0.0 or v <= 0.0:
            out.append(0.0)
        elif math.isinf(v):
            out.append(1.0)
        else:
            floor = top * 1e-6
            out.append(max(0.0, (math.log10(max(v, floor)) - math.log10(floor)) / 6.0))
    return out


def _row_layout(n: int) -> tuple[float, int, float]:
    """(inches per layer row, label every k-th row, label font size)."""
    if n <= 40:
        return 0.3, 1, 9.0
    if n <= 80:
        return 0.2, 1, 7.0
    return 16.0 / n, math.ceil(n / 80), 6.5


def _overview_height(n: int) -> float:
    per_row, _, _ = _row_layout(max(n, 1))
    return max(4.2, min(18.5, per_row * max(n, 1) + 2.6))


def _draw_overview(fig: Figure | SubFigure, diff: Mapping[str, Any], with_title: bool) -> None:
    """Heatmap of layers x metrics (column-normalised) beside magnitude bars, rows aligned."""
    import matplotlib as mpl
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullLocator

    layers = list(diff["layers"])
    n = len(layers)
    _, label_every, fontsize = _row_layout(max(n, 1))

    if with_title:
        fig.suptitle(_title(diff), fontsize=14, fontweight="bold")
    gs = fig.add_gridspec(1, 2, width_ratios=[1.15, 1.0], wspace=0.02)
    ax_h = fig.add_subplot(gs[0, 0])
    ax_b = fig.add_subplot(gs[0, 1], sharey=ax_h)

    if n == 0:
        for ax in (ax_h, ax_b):
            ax.text(0.5, 0.5, "no layers", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return

    # --- heatmap
    columns = []
    for _label, key in _METRICS:
        raw = [_metric(ly, key) for ly in layers]
        if key == "changed_fraction":
            columns.append([math.nan if v is None else v for v in raw])
        else:
            columns.append(_column_normalise(raw))
    matrix = np.array(columns, dtype=np.float64).T  # rows = layers
    cmap = mpl.colormaps["magma_r"].with_extremes(bad="#e0e0e0")
    image = ax_h.imshow(
        np.ma.masked_invalid(matrix),
        aspect="auto",
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    ax_h.set_xticks(range(len(_METRICS)))
    ax_h.set_xticklabels([m[0] for m in _METRICS], fontsize=8.5)
    ax_h.xaxis.set_ticks_position("top")
    ax_h.xaxis.set_label_position("top")
    ax_h.tick_params(axis="x", which="both", length=0, pad=2)
    plt_labels = [ly["name"] if i % label_every == 0 else "" for i, ly in enumerate(layers)]
    ax_h.set_yticks(range(n))
    ax_h.set_yticklabels([_short_name(t, 44) for t in plt_labels], fontsize=fontsize)
    ax_h.tick_params(axis="y", length=0)
    for spine in ax_h.spines.values():
        spine.set_visible(False)
    if n <= 40:
        ax_h.set_xticks(np.arange(-0.5, len(_METRICS), 1), minor=True)
        ax_h.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax_h.grid(which="minor", color="white", linewidth=1.2)
        ax_h.tick_params(which="minor", length=0)
        for i, ly in enumerate(layers):
            if ly["combined_similarity"] is None:
                ax_h.text(
                    (len(_METRICS) - 1) / 2,
                    i,
                    CATEGORY_LABELS.get(ly["category"], ly["category"]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#424242",
                    style="italic",
                )
                continue
            for j, (_, key) in enumerate(_METRICS):
                value = _metric(ly, key)
                shade = matrix[i, j]
                text = _pct(value, 0) if key == "changed_fraction" else _num(value)
                ax_h.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if (not math.isnan(shade) and shade > 0.55) else "#212121",
                )
    cbar = fig.colorbar(image, ax=ax_h, location="bottom", shrink=0.8, pad=0.01, aspect=40)
    cbar.set_label(
        "per-metric magnitude (log scale, 6 decades below each column's max)", fontsize=8
    )
    cbar.ax.tick_params(labelsize=7)
    ax_h.set_title("Change metrics per layer", fontsize=11, pad=8, loc="left")

    # --- magnitude bars
    ys = list(range(n))
    widths, colors, hatches = [], [], []
    for ly in layers:
        change = _change(ly)
        cat = ly["category"]
        colors.append(CATEGORY_COLORS.get(cat, "#9e9e9e"))
        if change is None:
            widths.append(1.0)
            hatches.append("//")
        else:
            widths.append(max(change, 10**_LOG_MIN))
            hatches.append("")
    # barh on a log axis: bars start at the axis floor and end at the change.
    lefts = [10**_LOG_MIN] * n
    spans = [max(w - 10**_LOG_MIN, 0.0) for w in widths]
    bars = ax_b.barh(ys, spans, left=lefts, color=colors, height=0.72, edgecolor="none")
    for bar, hatch in zip(bars, hatches, strict=True):
        if hatch:
            bar.set_hatch(hatch)
            bar.set_edgecolor("white")
    ax_b.set_xscale("log")
    ax_b.set_xlim(10**_LOG_MIN, 1.0)
    ax_b.xaxis.set_minor_locator(NullLocator())
    ax_b.set_yticks(ys)
    ax_b.tick_params(axis="y", left=False, labelleft=False)
    ax_b.tick_params(axis="x", labelsize=8)
    ax_b.set_xlabel("change = 1 − combined similarity (log scale)", fontsize=9)
    for x in (1e-4, 1e-2, 1e-1):
        ax_b.axvline(x, color="#9e9e9e", linestyle="--", linewidth=0.8, zorder=0)
    for lo, hi, text in (
        (1e-6, 1e-4, "identical"),
        (1e-4, 1e-2, "minor"),
        (1e-2, 1e-1, "moderate"),
        (1e-1, 1.0, "major"),
    ):
        ax_b.text(
            math.sqrt(lo * hi),
            1.005,
            text,
            transform=ax_b.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#616161",
        )
    if n <= 80:
        for y, ly, w in zip(ys, layers, widths, strict=True):
            change = _change(ly)
            if change is None:
                label = CATEGORY_LABELS.get(ly["category"], "")
                ax_b.text(
                    2e-6,
                    y,
                    label,
                    va="center",
                    ha="left",
                    fontsize=7.5,
                    color="white",
                    fontweight="bold",
                    bbox={
                        "facecolor": CATEGORY_COLORS.get(ly["category"], "#9e9e9e"),
                        "edgecolor": "none",
                        "pad": 1.5,
                    },
                )
                continue
            if ly.get("bit_identical") or change == 0.0:
                label = "= bit-identical" if ly.get("bit_identical") else "= equal values"
                ax_b.text(
                    1.3e-6,
                    y,
                    label,
                    va="center",
                    ha="left",
                    fontsize=7.5,
                    color=CATEGORY_COLORS["identical"],
                    fontweight="bold",
                )
                continue
            label = _pct(ly["combined_similarity"])
            inside = w > 0.02
            ax_b.text(
                w * (0.8 if inside else 1.35),
                y,
                label,
                va="center",
                ha="right" if inside else "left",
                fontsize=7.5,
                color="white" if inside else "#212121",
            )
    ax_b.set_ylim(n - 0.5, -0.5)
    for side in ("top", "right"):
        ax_b.spines[side].set_visible(False)
    ax_b.set_title("Layer-wise change magnitude", fontsize=11, pad=16, loc="left")
    present = [c for c in CATEGORY_ORDER if diff["category_counts"].get(c)]
    fig.legend(
        handles=[
            Patch(
                color=CATEGORY_COLORS[c],
                label=f"{CATEGORY_LABELS[c]} ({diff['category_counts'][c]})",
            )
            for c in present
        ],
        loc="outside lower right",
        ncol=min(7, len(present)),
        fontsize=8.5,
        frameon=False,
        title="layer categories (count)",
        title_fontsize=8.5,
    )


def _sample(arr: np.ndarray, limit: int = 1_000_000) -> np.ndarray:
    flat = arr.reshape(-1)
    if np.iscomplexobj(flat):
        flat = np.abs(flat)
    step = max(1, flat.size // limit)
    x = np.asarray(flat[::step], dtype=np.float64)
    return x[np.isfinite(x)]


def _values_of(weights: Mapping[str, Any], name: str) -> np.ndarray | None:
    from coral.utils.visualization import _read

    if name not in weights:
        return None
    try:
        return _read(weights[name])
    except Exception:
        return None


def _hist_layers(diff: Mapping[str, Any], limit: int = 4) -> list[Mapping[str, Any]]:
    return list(diff["most_changed_layers"][:limit])


def _draw_distributions(
    fig: Figure | SubFigure,
    diff: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    with_title: bool,
) -> None:
    """Before/after value histograms of the most changed layers."""
    chosen = _hist_layers(diff)
    if with_title:
        fig.suptitle(_DIST_TITLE, fontsize=12, fontweight="bold")
    if not chosen:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(
            0.5,
            0.5,
            "no changed layers to compare",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    label_a = str(diff.get("model_a_name", "before"))
    label_b = str(diff.get("model_b_name", "after"))
    for ax, ly in zip(axes, chosen, strict=True):
        a = _values_of(before, ly["name"])
        b = _values_of(after, ly["name"])
        xa = _sample(a) if a is not None else np.zeros(0)
        xb = _sample(b) if b is not None else np.zeros(0)
        del a, b
        both = np.concatenate([xa, xb]) if (xa.size or xb.size) else np.zeros(1)
        lo, hi = float(both.min()), float(both.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 61)
        if xa.size:
            ax.hist(xa, bins=edges, color="#1e88e5", alpha=0.45, label=_middle_clip(label_a, 18))
        if xb.size:
            ax.hist(
                xb,
                bins=edges,
                histtype="step",
                color="#e53935",
                linewidth=1.6,
                label=_middle_clip(label_b, 18),
            )
        ax.set_title(
            f"{_short_name(ly['name'], 34)}\n{_pct(ly['combined_similarity'])} similar",
            fontsize=9,
        )
        ax.tick_params(labelsize=7)
        ax.set_xlabel("value", fontsize=8)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Patch(facecolor="#1e88e5", alpha=0.45, label=f"before: {_middle_clip(label_a, 40)}"),
            Patch(
                facecolor="none",
                edgecolor="#e53935",
                linewidth=1.6,
                label=f"after: {_middle_clip(label_b, 40)}",
            ),
        ],
        loc="outside lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )


def render_diff_png(
    diff: Mapping[str, Any],
    path: str | Path,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> Path:
    """Write a PNG: per-layer change heatmap (layers x metrics, column-normalised) beside
    layer-wise magnitude bars; with `before`/`after` weights also before/after histograms of the
    most changed layers. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(diff["layers"])
    top_h = _overview_height(n)
    with_hist = before is not None and after is not None
    hist_h = 3.0 if with_hist else 0.0
    fig = _new_figure(15.0, top_h + hist_h + 0.9)
    fig.suptitle(_title(diff), fontsize=15, fontweight="bold")
    summary = "   ·   ".join(_summary_lines(diff)[:2])
    top: Figure | SubFigure = fig
    bottom: SubFigure | None = None
    if with_hist:
        subs: Any = fig.subfigures(2, 1, height_ratios=[top_h + 0.6, hist_h], hspace=0.02)
        top, bottom = subs[0], subs[1]
    top.suptitle(summary, fontsize=10, color="#424242")
    _draw_overview(top, diff, with_title=False)
    if bottom is not None and before is not None and after is not None:
        bottom.suptitle(_DIST_TITLE, fontsize=11, fontweight="bold")
        _draw_distributions(bottom, diff, before, after, with_title=False)
    _save_png(fig, path)
    return path


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Helvetica,Arial,sans-serif;
margin:0;background:#f5f6f8;color:#212121}
header{background:#263238;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#b0bec5;font-size:13px}
main{padding:20px 32px;max-width:1500px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 3px rgba(0,0,0,.12);
min-width:150px}
.card .v{font-size:22px;font-weight:600}.card .k{font-size:12px;color:#616161;margin-top:2px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
section h2{font-size:16px;margin:0 0 10px}
img{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 9px;border-bottom:1px solid #eceff1;text-align:right;white-space:nowrap}
th{background:#eceff1;position:sticky;top:0;cursor:pointer;user-select:none}
th:after{content:' \\2195';color:#9e9e9e;font-size:11px}
th.asc:after{content:' \\25B2';color:#263238}th.desc:after{content:' \\25BC';color:#263238}
td.l,th.l{text-align:left}td.name{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;
white-space:normal;word-break:break-all}
tbody tr:hover{background:#f1f8e9}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-size:11px;
font-weight:600}
.bar{display:inline-block;height:9px;border-radius:2px;vertical-align:middle;margin-right:6px}
.legend span{margin-right:14px;font-size:12px}
footer{color:#9e9e9e;font-size:12px;padding:0 32px 24px}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var heads = table.querySelectorAll('th');
  heads.forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('asc');
      heads.forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    _save_png(fig, buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _html_page(title: str, subtitle: str, body: str) -> str:
    from coral import __version__

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>\n"
        f"<main>\n{body}\n</main>\n"
        f"<footer>Generated by Coral {html.escape(__version__)} on {stamp}.</footer>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


def _cell(text: str, sort_value: Any, cls: str = "") -> str:
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<td{cls_attr} data-v="{html.escape(str(sort_value), quote=True)}">{text}</td>'


def _sortable(value: float | None, missing: float = -1.0) -> float:
    if value is None or math.isnan(value):
        return missing
    return 1e300 if math.isinf(value) else value


def _layer_table(diff: Mapping[str, Any]) -> str:
    heads = [
        ("#", ""),
        ("Layer", "l"),
        ("Category", "l"),
        ("Shape", "l"),
        ("Dtype", "l"),
        ("Params", ""),
        ("Similarity", ""),
        ("Cosine", ""),
        ("Rel. change", ""),
        ("RMSE", ""),
        ("Max |Δ|", ""),
        ("Mean |Δ|", ""),
        ("Changed", ""),
    ]
    rows = []
    for i, ly in enumerate(diff["layers"]):
        cat = ly["category"]
        stats = ly.get("diff_stats") or {}
        color = CATEGORY_COLORS.get(cat, "#9e9e9e")
        shape_a, shape_b = ly.get("shape_a"), ly.get("shape_b")
        if shape_a is not None and shape_b is not None and shape_a != shape_b:
            shape = f"{tuple(shape_a)} → {tuple(shape_b)}"
        else:
            shape = str(tuple(shape_a if shape_a is not None else shape_b or []))
        dt_a, dt_b = ly.get("dtype_a"), ly.get("dtype_b")
        dtype = f"{dt_a} → {dt_b}" if dt_a and dt_b and dt_a != dt_b else str(dt_a or dt_b)
        sim = ly.get("combined_similarity")
        change = _change(ly)
        bar_w = 4 + round(56 * (_log_pos(change) if change is not None else 1.0))
        sim_text = (
            f'<span class="bar" style="width:{bar_w}px;background:{color}"></span>{_pct(sim)}'
        )
        cells = [
            _cell(str(i + 1), i + 1),
            _cell(html.escape(ly["name"]), ly["name"], "l name"),
            _cell(
                f'<span class="badge" style="background:{color}">'
                f"{html.escape(CATEGORY_LABELS.get(cat, cat))}</span>",
                CATEGORY_ORDER.index(cat) if cat in CATEGORY_ORDER else 99,
                "l",
            ),
            _cell(html.escape(shape), shape, "l"),
            _cell(html.escape(dtype), dtype, "l"),
            _cell(f"{ly['num_params']:,}", ly["num_params"]),
            _cell(sim_text, _sortable(sim)),
            _cell(_num(ly.get("cosine_similarity")), _sortable(ly.get("cosine_similarity"), -2)),
            _cell(_num(ly.get("relative_change")), _sortable(ly.get("relative_change"))),
            _cell(_num(stats.get("rmse")), _sortable(stats.get("rmse"))),
            _cell(_num(stats.get("max_abs_diff")), _sortable(stats.get("max_abs_diff"))),
            _cell(_num(stats.get("mean_abs_diff")), _sortable(stats.get("mean_abs_diff"))),
            _cell(_pct(stats.get("changed_fraction"), 1), _sortable(stats.get("changed_fraction"))),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(
        f'<th class="{c}">{html.escape(h)}</th>' if c else f"<th>{html.escape(h)}</th>"
        for h, c in heads
    )
    return (
        f'<table class="sortable" id="layers"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )


def render_diff_html(
    diff: Mapping[str, Any],
    path: str | Path,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-contained HTML diff report (embedded PNG charts, sortable layer table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = diff["summary"]
    counts = diff["category_counts"]
    n = len(diff["layers"])

    overview = _new_figure(14.0, _overview_height(n))
    _draw_overview(overview, diff, with_title=False)
    images = [("Change overview", "overview", _png_data_uri(overview))]
    if before is not None and after is not None:
        dist = _new_figure(14.0, 3.2)
        _draw_distributions(dist, diff, before, after, with_title=False)
        images.append((_DIST_TITLE, "distributions", _png_data_uri(dist)))

    total = s["total_params"]
    cards = [
        (_pct(s["overall_similarity"]), "overall similarity"),
        (f"{s['changed_params']:,}", f"changed params of {total:,}"),
        (str(s["common_layers"]), "common layers"),
        (str(s["added_layers"]), "added layers"),
        (str(s["removed_layers"]), "removed layers"),
        (str(s.get("shape_changed_layers", 0)), "shape changed"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{html.escape(v)}</div><div class="k">{html.escape(k)}'
        "</div></div>"
        for v, k in cards
    )
    legend = "".join(
        f'<span><span class="badge" style="background:{CATEGORY_COLORS[c]}">'
        f"{html.escape(CATEGORY_LABELS[c])}</span> {counts.get(c, 0)}</span>"
        for c in CATEGORY_ORDER
    )
    notes = ""
    if diff.get("nonfinite_layers"):
        notes += (
            "<p><b>NaN/inf values in:</b> "
            + html.escape(", ".join(diff["nonfinite_layers"]))
            + "</p>"
        )
    if diff.get("dtype_changed"):
        changed = html.escape(", ".join(diff["dtype_changed"]))
        notes += f"<p><b>Dtype changed:</b> {changed}</p>"
    sections = [
        f'<div class="cards">{card_html}</div>',
        f'<section><h2>Categories</h2><div class="legend">{legend}</div>{notes}</section>',
    ]
    for heading, ident, uri in images:
        sections.append(
            f"<section><h2>{html.escape(heading)}</h2>"
            f'<img id="{ident}" alt="{html.escape(heading)}" src="{uri}"></section>'
        )
    sections.append(
        f'<section><h2>Layers ({n})</h2><p style="font-size:12px;color:#616161;margin-top:0">'
        "Click a column heading to sort. Similarity combines direction (cosine) and magnitude; "
        "identical &gt; 99.99%, minor &gt; 99%, moderate &gt; 90%.</p>"
        f"{_layer_table(diff)}</section>"
    )
    page = _html_page(
        _title(diff),
        f"{diff.get('model_a_name', 'A')} vs {diff.get('model_b_name', 'B')} · {n} layers",
        "\n".join(sections),
    )
    path.write_text(page, encoding="utf-8")
    return path


# -- storage savings ---------------------------------------------------------------------------


def _savings_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    labels, messages, logical, stored, cum_l, cum_s, ratio = [], [], [], [], [], [], []
    total_l = total_s = 0
    for entry in history:
        lb, sb = int(entry.get("logical_bytes", 0) or 0), int(entry.get("stored_bytes", 0) or 0)
        total_l += lb
        total_s += sb
        labels.append(str(entry.get("commit", ""))[:12])
        messages.append(str(entry.get("message", "")))
        logical.append(lb)
        stored.append(sb)
        cum_l.append(total_l)
        cum_s.append(total_s)
        ratio.append(total_l / total_s if total_s else math.nan)
    return {
        "labels": labels,
        "messages": messages,
        "logical": logical,
        "stored": stored,
        "cum_logical": cum_l,
        "cum_stored": cum_s,
        "ratio": ratio,
    }


def _draw_savings(fig: Figure, history: Sequence[Mapping[str, Any]]) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    series = _savings_series(history)
    n = len(series["labels"])
    fig.suptitle("Coral storage savings over history", fontsize=14, fontweight="bold")
    ax_b, ax_r = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1.0])
    if n == 0:
        for ax in (ax_b, ax_r):
            ax.text(0.5, 0.5, "no commits yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return
    xs = np.arange(n)
    cum_l, cum_s = series["cum_logical"], series["cum_stored"]
    unit_name, unit = _byte_unit(max(max(cum_l), max(cum_s), 1))
    yl = [v / unit for v in cum_l]
    ys = [v / unit for v in cum_s]
    ax_b.plot(xs, yl, marker="o", ms=4, color="#1e88e5", lw=2, label="logical (raw tensor bytes)")
    ax_b.plot(xs, ys, marker="o", ms=4, color="#2e7d32", lw=2, label="stored on disk")
    ax_b.fill_between(xs, ys, yl, color="#bbdefb", alpha=0.6, label="saved")
    ax_b.yaxis.set_major_locator(MaxNLocator(6))
    ax_b.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax_b.set_ylabel(f"cumulative size ({unit_name})", fontsize=10)
    ax_b.set_ylim(bottom=0)
    ax_b.grid(axis="y", color="#eeeeee")
    ax_b.legend(loc="upper left", fontsize=9, frameon=False)
    saved = cum_l[-1] - cum_s[-1]
    ax_b.set_title(
        f"{human_bytes(cum_l[-1])} of tensors in {human_bytes(cum_s[-1])} on disk "
        f"({human_bytes(max(saved, 0))} saved)",
        fontsize=10,
        color="#424242",
        loc="left",
    )
    ratio = series["ratio"]
    ax_r.plot(xs, ratio, marker="o", ms=4, color="#e53935", lw=2)
    ax_r.axhline(1.0, color="#9e9e9e", lw=0.8, ls="--")
    finite = [r for r in ratio if math.isfinite(r)]
    if finite:
        ax_r.set_ylim(0, max(finite) * 1.18 + 0.1)
        last = next((r for r in reversed(ratio) if math.isfinite(r)), None)
        if last is not None:
            ax_r.annotate(
                f"{last:.2f}×",
                (xs[-1], last),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=9,
                color="#b71c1c",
            )
    ax_r.set_ylabel("ratio\nlogical / stored", fontsize=10)
    ax_r.grid(axis="y", color="#eeeeee")
    ax_r.yaxis.set_major_locator(MaxNLocator(5))
    step = max(1, math.ceil(n / 30))
    ax_r.set_xticks(xs[::step])
    ax_r.set_xticklabels(
        series["labels"][::step],
        rotation=45 if n > 8 else 0,
        ha="right" if n > 8 else "center",
        fontsize=8,
        family="monospace",
    )
    ax_r.set_xlabel("commit (oldest → newest)", fontsize=10)
    ax_r.set_xlim(-0.5, n - 0.5)
    for ax in (ax_b, ax_r):
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)


def render_savings_chart(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Chart cumulative logical vs stored bytes over commits (oldest first) and their ratio.

    Each entry has `commit` (short hash), `message`, `logical_bytes` (raw size of the commit's
    tensors) and `stored_bytes` (bytes the commit added on disk). A path ending in `.html`
    gets a self-contained page with the chart and a per-commit table; anything else a PNG.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(history)
    fig = _new_figure(max(9.0, min(16.0, 6.0 + 0.35 * n)), 6.6)
    _draw_savings(fig, history)
    if path.suffix.lower() not in (".html", ".htm"):
        _save_png(fig, path)
        return path

    series = _savings_series(history)
    rows = []
    for i in range(n):
        r = series["ratio"][i]
        cells = [
            _cell(str(i + 1), i + 1),
            _cell(f"<code>{html.escape(series['labels'][i])}</code>", series["labels"][i], "l"),
            _cell(html.escape(series["messages"][i]), series["messages"][i], "l name"),
            _cell(human_bytes(series["logical"][i]), series["logical"][i]),
            _cell(human_bytes(series["stored"][i]), series["stored"][i]),
            _cell(human_bytes(series["cum_logical"][i]), series["cum_logical"][i]),
            _cell(human_bytes(series["cum_stored"][i]), series["cum_stored"][i]),
            _cell("-" if math.isnan(r) else f"{r:.2f}×", _sortable(r)),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    heads = ["#", "Commit", "Message", "Logical", "Stored", "Cum. logical", "Cum. stored", "Ratio"]
    head = "".join(
        f'<th class="l">{h}</th>' if h in ("Commit", "Message") else f"<th>{h}</th>" for h in heads
    )
    table = (
        f'<table class="sortable" id="commits"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    total_l = series["cum_logical"][-1] if n else 0
    total_s = series["cum_stored"][-1] if n else 0
    cards = [
        (human_bytes(total_l), "logical size"),
        (human_bytes(total_s), "stored on disk"),
        (f"{total_l / total_s:.2f}×" if total_s else "-", "compression ratio"),
        (str(n), "commits"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{html.escape(v)}</div><div class="k">{html.escape(k)}'
        "</div></div>"
        for v, k in cards
    )
    body = (
        f'<div class="cards">{card_html}</div>'
        f'<section><h2>Cumulative size</h2><img id="savings" alt="storage savings chart" '
        f'src="{_png_data_uri(fig)}"></section>'
        f"<section><h2>Commits ({n})</h2>{table}</section>"
    )
    path.write_text(
        _html_page("Coral storage savings", f"{n} commits, oldest first", body), encoding="utf-8"
    )
    return path

"""The PNG diff: a block heatmap (layer index × module) that scales to real models.

One row per block (`encoder.layer.3`), one column per module (`attention.self.query.weight`),
each cell coloured by the change 1 − similarity on a log colour scale spanning exactly the
changes drawn (nothing saturates). Tensors outside any block family get a bar each, on the same
scale. Identical tensors are left out unless asked for (rows and columns with nothing changed
disappear); every drawn row is labelled, at a row pitch that keeps labels apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.utils.block_grid import BlockGrid, block_grid
from coral.utils.figures import DIST_TITLE, draw_distributions, new_figure, save_png
from coral.utils.report_format import (
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    change,
    change_text,
    counts_text,
    title,
)

if TYPE_CHECKING:
    from matplotlib.colors import Colormap, LogNorm
    from matplotlib.figure import Figure, SubFigure

ROW_INCHES = 0.26  # row pitch: an 8 pt label is 0.11 in tall, so labels never touch
LABEL_POINTS = 8.0
_CHAR_INCHES = LABEL_POINTS * 0.62 / 72.0
_CMAP = "viridis"
_IDENTICAL_FILL = "#e6e6e6"
_SYMBOLS = {"identical": "=", "added": "+", "removed": "−", "shape_changed": "S"}


def colour_norm(grid: BlockGrid) -> LogNorm | None:
    """A log colour scale from the smallest to the largest change drawn (None if none)."""
    from matplotlib.colors import LogNorm

    changes = [
        c
        for ly in (*grid.cells.values(), *grid.others)
        if ly["category"] != "identical" and (c := change(ly)) is not None and c > 0
    ]
    if not changes:
        return None
    lo, hi = min(changes), max(changes)
    if hi / lo < 10.0:  # at least one decade, centred on the data
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10.0), mid * math.sqrt(10.0)
    return LogNorm(vmin=lo, vmax=hi, clip=False)


def _fill(ly: Mapping[str, Any], norm: LogNorm | None, cmap: Colormap) -> tuple[float, ...]:
    from matplotlib.colors import to_rgba

    c = change(ly)
    if ly["category"] == "identical":
        return to_rgba(_IDENTICAL_FILL)
    if c is None or norm is None:
        return to_rgba(CATEGORY_COLORS.get(ly["category"], "#9e9e9e"))
    return tuple(float(v) for v in cmap(float(norm(max(c, 1e-300)))))


def _ink(rgba: tuple[float, ...]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "white" if luminance < 0.5 else "#212121"


def _draw_grid(ax: Any, grid: BlockGrid, norm: LogNorm | None, cmap: Colormap) -> None:
    n_rows, n_cols = len(grid.rows), len(grid.columns)
    image = np.ones((n_rows, n_cols, 4))
    for (i, j), ly in grid.cells.items():
        image[i, j] = _fill(ly, norm, cmap)
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_label("blocks")
    ax.set_yticks(range(n_rows), grid.rows, fontsize=LABEL_POINTS, family="monospace")
    ax.set_xticks(range(n_cols), grid.columns, fontsize=LABEL_POINTS, rotation=90)
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(length=0, pad=3)
    ax.set_xticks(np.arange(-0.5, n_cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    annotate = n_cols <= 24
    for (i, j), ly in grid.cells.items():
        symbol = _SYMBOLS.get(ly["category"])
        if symbol is None and not annotate:
            continue
        text = symbol or change_text(ly)
        ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=_ink(tuple(image[i, j])))
    ax.set_title(
        f"Change per block ({n_rows} blocks × {n_cols} module{'s' if n_cols != 1 else ''}): "
        "1 − similarity",
        fontsize=11,
        loc="left",
        pad=8,
    )


def _draw_others(ax: Any, grid: BlockGrid, norm: LogNorm | None, cmap: Colormap) -> None:
    layers = grid.others
    ys = range(len(layers))
    lo, hi = (float(norm.vmin or 1e-6), float(norm.vmax or 1.0)) if norm else (1e-6, 1.0)
    floor, top = lo / 10.0, hi * 2.0
    widths, colors = [], []
    for ly in layers:
        c = change(ly)
        colors.append(_fill(ly, norm, cmap))
        widths.append(top if c is None else max(c, floor))
    ax.barh(list(ys), [w - floor for w in widths], left=floor, color=colors, height=0.7)
    ax.set_label("others")
    ax.set_xscale("log")
    ax.set_xlim(floor, top)
    ax.set_yticks(
        list(ys), [ly["name"] for ly in layers], fontsize=LABEL_POINTS, family="monospace"
    )
    ax.set_ylim(len(layers) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=7)
    for y, ly in zip(ys, layers, strict=True):
        ax.text(
            floor * 1.15,
            y,
            change_text(ly),
            va="center",
            ha="left",
            fontsize=6.5,
            color=_ink(_fill(ly, norm, cmap)),
        )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("Tensors outside the blocks: 1 − similarity", fontsize=11, loc="left")


def _inches(grid: BlockGrid) -> tuple[float, float, float]:
    """(width, grid panel height, others panel height) of the overview, in inches."""
    label_w = max((len(r) for r in grid.rows), default=0) * _CHAR_INCHES + 0.4
    header = max((len(c) for c in grid.columns), default=0) * _CHAR_INCHES + 0.9
    cell_w = max(0.5, min(0.95, 12.0 / max(len(grid.columns), 1)))
    others_label = max((len(ly["name"]) for ly in grid.others), default=0) * _CHAR_INCHES
    width = max(9.0, min(24.0, label_w + len(grid.columns) * cell_w + 1.0, others_label + 8.0))
    grid_h = header + ROW_INCHES * len(grid.rows) if grid.rows else 0.0
    others_h = 0.8 + ROW_INCHES * len(grid.others) if grid.others else 0.0
    return width, grid_h, others_h


def draw_overview(
    fig: Figure | SubFigure, diff: Mapping[str, Any], grid: BlockGrid, heights: list[float]
) -> None:
    """The block heatmap, the others' bars, a colour bar and the category legend."""
    import matplotlib as mpl
    from matplotlib.cm import ScalarMappable
    from matplotlib.patches import Patch

    cmap = mpl.colormaps[_CMAP]
    norm = colour_norm(grid)
    panels = [h for h in heights if h > 0]
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "nothing changed", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=panels)[:, 0]
    k = 0
    if grid.rows:
        _draw_grid(axes[k], grid, norm, cmap)
        k += 1
    if grid.others:
        _draw_others(axes[k], grid, norm, cmap)
    if norm is not None:
        bar = fig.colorbar(
            ScalarMappable(norm=norm, cmap=cmap),
            ax=list(axes),
            location="bottom",
            shrink=0.6,
            aspect=45,
            pad=0.02,
        )
        bar.set_label("change = 1 − combined similarity (log scale)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    drawn = [*grid.cells.values(), *grid.others]
    present = [
        c
        for c in ("identical", "shape_changed", "added", "removed")
        if any(ly["category"] == c for ly in drawn)
    ]
    if present:
        fig.legend(
            handles=[
                Patch(
                    color=_IDENTICAL_FILL if c == "identical" else CATEGORY_COLORS[c],
                    label=f"{_SYMBOLS[c]} {CATEGORY_LABELS[c]}",
                )
                for c in present
            ],
            loc="outside lower right",
            ncol=len(present),
            fontsize=8,
            frameon=False,
        )


def summary_text(diff: Mapping[str, Any], grid: BlockGrid) -> str:
    """The counts line the PNG prints (the engine's counts, as every view prints them)."""
    s = diff["summary"]
    text = (
        f"{counts_text(diff['counts'])}\n"
        f"changed parameters {s['changed_params']:,} of {s['total_params']:,}"
    )
    if grid.hidden_identical:
        n = grid.hidden_identical
        text += f"  ·  {n} identical tensor{'s' if n != 1 else ''} not drawn"
    return text


def overview_figure(
    diff: Mapping[str, Any],
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    *,
    show_identical: bool = False,
    with_title: bool = True,
) -> Figure:
    """The whole PNG as a matplotlib Figure (histograms too when `before`/`after` given)."""
    grid = block_grid(diff["layers"], show_identical=show_identical)
    width, grid_h, others_h = _inches(grid)
    body = max(2.5, grid_h + others_h + (0.9 if grid.cells or grid.others else 0.0))
    hist_h = 3.2 if before is not None and after is not None else 0.0
    head = 1.1 if with_title else 0.7
    fig = new_figure(width, head + body + hist_h)
    if with_title:
        fig.suptitle(title(diff) + "\n" + summary_text(diff, grid), fontsize=11)
    else:
        fig.suptitle(summary_text(diff, grid), fontsize=10)
    top: Figure | SubFigure = fig
    if hist_h and before is not None and after is not None:
        subs: Any = fig.subfigures(2, 1, height_ratios=[body, hist_h], hspace=0.02)
        top = subs[0]
        subs[1].suptitle(DIST_TITLE, fontsize=11, fontweight="bold")
        draw_distributions(subs[1], diff, before, after, width=width)
    draw_overview(top, diff, grid, [grid_h, others_h])
    return fig


def render_diff_png(
    diff: Mapping[str, Any],
    path: str | Path,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    *,
    show_identical: bool = False,
) -> Path:
    """Write the PNG diff: block heatmap, bars for tensors outside blocks, and with
    `before`/`after` weights the histograms of the most changed tensors. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(overview_figure(diff, before, after, show_identical=show_identical), path)
    return path

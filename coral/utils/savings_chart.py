"""`coral stats --visual`: cumulative logical vs stored bytes over history, as a PNG or a
self-contained HTML page with a per-commit table."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.utils.figures import new_figure, png_data_uri, save_png
from coral.utils.html_page import cards, cell, page, sortable
from coral.utils.report_format import byte_unit, human_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _savings_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    labels, messages, logical, stored, cum_l, cum_s, ratio = [], [], [], [], [], [], []
    total_l = total_s = 0
    for entry in history:
        lb, sb = int(entry.get("logical_bytes", 0) or 0), int(entry.get("stored_bytes", 0) or 0)
        total_l += lb
        total_s += sb
        labels.append(str(entry.get("commit", ""))[:10])
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
    unit_name, unit = byte_unit(max(max(cum_l), max(cum_s), 1))
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
    fig = new_figure(max(9.0, min(16.0, 6.0 + 0.35 * n)), 6.6)
    _draw_savings(fig, history)
    if path.suffix.lower() not in (".html", ".htm"):
        save_png(fig, path)
        return path

    series = _savings_series(history)
    rows = []
    for i in range(n):
        r = series["ratio"][i]
        cells = [
            cell(str(i + 1), i + 1),
            cell(f"<code>{html.escape(series['labels'][i])}</code>", series["labels"][i], "l"),
            cell(html.escape(series["messages"][i]), series["messages"][i], "l msg"),
            cell(human_bytes(series["logical"][i]), series["logical"][i]),
            cell(human_bytes(series["stored"][i]), series["stored"][i]),
            cell(human_bytes(series["cum_logical"][i]), series["cum_logical"][i]),
            cell(human_bytes(series["cum_stored"][i]), series["cum_stored"][i]),
            cell("-" if math.isnan(r) else f"{r:.2f}×", sortable(r)),
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
    summary = [
        (human_bytes(total_l), "logical size"),
        (human_bytes(total_s), "stored on disk"),
        (f"{total_l / total_s:.2f}×" if total_s else "-", "compression ratio"),
        (str(n), "commits"),
    ]
    body = (
        f'<div class="cards">{cards(summary)}</div>'
        f'<section><h2>Cumulative size</h2><img id="savings" alt="storage savings chart" '
        f'src="{png_data_uri(fig)}"></section>'
        f"<section><h2>Commits ({n})</h2>{table}</section>"
    )
    path.write_text(
        page("Coral storage savings", f"{n} commits, oldest first", body), encoding="utf-8"
    )
    return path

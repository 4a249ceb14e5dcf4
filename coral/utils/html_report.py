"""The HTML diff: one self-contained page with the engine's counts, the block heatmap, the
before/after histograms and a sortable table of every tensor (names whole, never wrapped)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coral.utils.comparison import CATEGORY_ORDER
from coral.utils.figures import DIST_TITLE, draw_distributions, new_figure, png_data_uri
from coral.utils.heatmap import overview_figure
from coral.utils.html_page import cards, cell, page, sortable
from coral.utils.report_format import (
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    COUNT_ORDER,
    ENGINE_LABELS,
    change,
    num,
    pct,
    similarity_text,
    title,
)

_HEADS = [
    ("#", ""),
    ("Tensor", "l"),
    ("Category", "l"),
    ("Shape", "l"),
    ("Dtype", "l"),
    ("Params", ""),
    ("Similarity", ""),
    ("1 − cos", ""),
    ("Rel. change", ""),
    ("RMSE", ""),
    ("Max |Δ|", ""),
    ("Mean |Δ|", ""),
    ("Changed", ""),
]


def _bar_px(layer: Mapping[str, Any]) -> int:
    c = change(layer)
    if c is None:
        return 60
    if c <= 0:
        return 4
    return 4 + round(56 * min(1.0, max(0.0, (math.log10(c) + 6.0) / 6.0)))


def _row(i: int, ly: Mapping[str, Any]) -> str:
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
    sim_html = (
        f'<span class="bar" style="width:{_bar_px(ly)}px;background:{color}"></span>'
        f"{html.escape(similarity_text(ly))}"
    )
    cells = [
        cell(str(i + 1), i + 1),
        cell(html.escape(ly["name"]), ly["name"], "l name"),
        cell(
            f'<span class="badge" style="background:{color}">'
            f"{html.escape(CATEGORY_LABELS.get(cat, cat))}</span>",
            CATEGORY_ORDER.index(cat) if cat in CATEGORY_ORDER else 99,
            "l",
        ),
        cell(html.escape(shape), shape, "l"),
        cell(html.escape(dtype), dtype, "l"),
        cell(f"{ly['num_params']:,}", ly["num_params"]),
        cell(sim_html, sortable(sim)),
        cell(num(ly.get("one_minus_cosine")), sortable(ly.get("one_minus_cosine"))),
        cell(num(ly.get("relative_change")), sortable(ly.get("relative_change"))),
        cell(num(stats.get("rmse")), sortable(stats.get("rmse"))),
        cell(num(stats.get("max_abs_diff")), sortable(stats.get("max_abs_diff"))),
        cell(num(stats.get("mean_abs_diff")), sortable(stats.get("mean_abs_diff"))),
        cell(pct(stats.get("changed_fraction"), 1), sortable(stats.get("changed_fraction"))),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def layer_table(diff: Mapping[str, Any]) -> str:
    head = "".join(
        f'<th class="{c}">{html.escape(h)}</th>' if c else f"<th>{html.escape(h)}</th>"
        for h, c in _HEADS
    )
    rows = "\n".join(_row(i, ly) for i, ly in enumerate(diff["layers"]))
    return (
        f'<div class="scroll"><table class="sortable" id="layers"><thead><tr>{head}</tr>'
        f"</thead>\n<tbody>\n{rows}\n</tbody></table></div>"
    )


def render_diff_html(
    diff: Mapping[str, Any],
    path: str | Path,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    *,
    show_identical: bool = False,
) -> Path:
    """Write a self-contained HTML diff report (embedded PNG charts, sortable tensor table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = diff["summary"]
    counts = diff["counts"]
    n = len(diff["layers"])

    overview = overview_figure(diff, show_identical=show_identical, with_title=False)
    images = [("Change per block", "overview", png_data_uri(overview))]
    if before is not None and after is not None:
        dist = new_figure(14.0, 3.2)
        draw_distributions(dist, diff, before, after, width=14.0)
        images.append((DIST_TITLE, "distributions", png_data_uri(dist)))

    items = [(str(counts.get(k, 0)), f"{ENGINE_LABELS[k]} tensors") for k in COUNT_ORDER]
    items.insert(0, (f"{s['changed_params']:,}", f"changed params of {s['total_params']:,}"))
    items.insert(0, (pct(s["overall_similarity"]), "overall similarity"))
    legend = "".join(
        f'<span><span class="badge" style="background:{CATEGORY_COLORS[c]}">'
        f"{html.escape(CATEGORY_LABELS[c])}</span> {diff['category_counts'].get(c, 0)}</span>"
        for c in CATEGORY_ORDER
    )
    notes = ""
    if diff.get("nonfinite_layers"):
        names = html.escape(", ".join(diff["nonfinite_layers"]))
        notes += f"<p><b>NaN/inf values in:</b> {names}</p>"
    if diff.get("dtype_changed"):
        notes += f"<p><b>Dtype changed:</b> {html.escape(', '.join(diff['dtype_changed']))}</p>"
    sections = [
        f'<div class="cards" id="counts">{cards(items)}</div>',
        f'<section><h2>Categories</h2><div class="legend">{legend}</div>{notes}</section>',
    ]
    for heading, ident, uri in images:
        sections.append(
            f"<section><h2>{html.escape(heading)}</h2>"
            f'<img id="{ident}" alt="{html.escape(heading)}" src="{uri}"></section>'
        )
    sections.append(
        f'<section><h2>Tensors ({n})</h2><p style="font-size:12px;color:#616161;margin-top:0">'
        "Click a column heading to sort. Identical means bit-identical; a changed tensor is "
        "graded by its similarity (direction times magnitude): minor &gt; 99%, moderate "
        f"&gt; 90%, else major.</p>{layer_table(diff)}</section>"
    )
    subtitle = f"{diff.get('model_a_name', 'A')} vs {diff.get('model_b_name', 'B')} · {n} tensors"
    path.write_text(page(title(diff), subtitle, "\n".join(sections)), encoding="utf-8")
    return path

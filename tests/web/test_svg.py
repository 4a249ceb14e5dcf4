"""The server-rendered charts: axes and ticks, thinning of long curves, the commit graph's
pieces, the heatmap's colour scale and labels, and escaping of every name drawn."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from coral.porcelain.history import graph_rows
from coral.utils.block_grid import block_grid
from coral.utils.visualization import compare_models
from coral.web.svg import MAX_VERTICES, Line, bar_chart, histogram, line_chart, nice_ticks
from coral.web.svg_graph import GraphCell, graph_svgs
from coral.web.svg_heatmap import heatmap_svg, viridis
from tests.web.conftest import http_get


def test_nice_ticks() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 3)[0] <= 3 <= nice_ticks(3, 3)[-1]
    ticks = nice_ticks(-0.013, 0.0021)
    assert ticks[0] <= -0.013 and ticks[-1] >= 0.0021 and len(ticks) <= 12
    assert nice_ticks(float("nan"), 1) == [0.0]


def test_line_chart_draws_lines_breaks_and_thins() -> None:
    svg = line_chart(
        [Line("loss", [(0, 1.0), (1, None), (2, 0.5), (3, 0.25)]), Line("acc", [(0, 0.1)])],
        y_label="loss",
    )
    assert svg.count("<polyline") == 1  # the None breaks loss; acc has a single point
    assert svg.count("<circle") == 4 and "<title>loss: 0.5</title>" in svg
    long = line_chart([Line("x", [(float(i), float(i % 5)) for i in range(50_000)])])
    points = re.search(r'points="([^"]*)"', long).group(1).split()
    assert MAX_VERTICES <= len(points) <= MAX_VERTICES + 2
    assert "<circle" not in long  # too many markers: the line alone
    assert "nothing to plot" in line_chart([Line("x", [(0, None)])])


def test_bar_chart_and_histogram() -> None:
    svg = bar_chart([("0", 3.0), ("1", 1.0)])
    assert svg.count('class="bar"') == 2
    counts, edges = np.histogram(np.arange(100), bins=10)
    hist = histogram(list(counts), list(edges))
    assert hist.count('class="bar"') == 10 and "histogram" in hist
    assert "no finite values" in histogram([], [])


def test_graph_pieces_for_a_merge() -> None:
    from coral.version_control.objects import Commit

    def c(h: str, *parents: str) -> Commit:
        return Commit("t", list(parents), "a", 0.0, h, commit_hash=h)

    history = [c("m", "a", "b"), c("b", "r"), c("a", "r"), c("r")]
    rows = graph_rows(history)
    cells = [GraphCell(g, x is not None, bool(x and x.parent_hashes)) for g, x in rows]
    svgs = graph_svgs(cells)
    assert len(svgs) == len(rows) and len({re.search(r'width="(\d+)"', s)[1] for s in svgs}) == 1
    assert sum(s.count("<circle") for s in svgs) == 4
    joints = [s for s, cell in zip(svgs, cells, strict=True) if not cell.is_commit]
    assert len(joints) == 2 and all("<line" in s for s in joints)  # the fork and the join
    root = svgs[[x for _, x in rows].index(history[-1])]
    assert root.count("<line") <= 2  # nothing below a root commit


def test_heatmap_scale_labels_and_escaping() -> None:
    assert viridis(0) == "#440154" and viridis(1) == "#fde725"
    rng = np.random.default_rng(0)
    a = {f"enc.layer.{i}.{m}": rng.standard_normal(16).astype(np.float32)
         for i in range(3) for m in ("q", "k")}  # fmt: skip
    b = {k: v + np.float32(0.1 * (i + 1)) for i, (k, v) in enumerate(a.items())}
    a["<b>odd</b>"] = np.ones(2, np.float32)
    diff = compare_models(a, b)
    svg = heatmap_svg(diff, link="/tensor?ref=abc&name={name}")
    grid = block_grid(diff["layers"])
    assert svg.count('<g class="cell"') == len(grid.cells) == 6
    for row in grid.rows:
        assert f">{row}</text>" in svg
    assert "<b>odd</b>" not in svg and "&lt;b&gt;odd&lt;/b&gt;" in svg
    assert 'href="/tensor?ref=abc&amp;name=enc.layer.0.q"' in svg
    same = heatmap_svg(compare_models(a, a))
    assert "nothing changed" in same


def test_names_are_escaped_in_pages(tmp_path: Path) -> None:
    from coral.version_control.repository import Repository
    from coral.web.app import create_app
    from coral.web.server import background_server

    evil = "<img src=x onerror=alert(1)>.weight"
    repo = Repository.init(tmp_path / "r")
    repo.add_all_weights({evil: np.zeros(2, np.float32)})
    repo.commit("<script>alert(1)</script>")
    repo.add_all_weights({evil: np.ones(2, np.float32)})
    repo.commit("two")
    with background_server(create_app(repo)) as url:
        for path in ("/", "/log", "/commit/HEAD", "/commit/HEAD~1", "/diff", "/activity"):
            status, _, body = http_get(url + path)
            text = body.decode()
            assert status == 200 and "<img src=x" not in text and "<script>alert" not in text
    repo.close()

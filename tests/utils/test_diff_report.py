"""Visual diffs (roadmap item 1): ASCII bars, PNG charts, self-contained HTML in real Chromium."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.utils.diff_report import (
    render_diff_ascii,
    render_diff_html,
    render_diff_png,
    render_savings_chart,
)
from coral.utils.visualization import compare_models

from .conftest import FROZEN, HEAD

pytest.importorskip("matplotlib", reason="visual diffs need matplotlib (coral-vcs[viz])")

ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def weights(trained: dict[str, dict[str, np.ndarray]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Base and fine-tuned weights plus a shape change, an added and a removed layer."""
    before = dict(trained["base"])
    after = dict(trained["finetuned"])
    before["classifier.weight"] = np.ones((4, 8), np.float32)
    after["classifier.weight"] = np.ones((7, 8), np.float32)
    before["old.scale"] = np.ones(3, np.float32)
    after["adapter.lora_A.weight"] = np.full((8, 64), 0.01, np.float32)
    return before, after


@pytest.fixture(scope="module")
def diff(weights: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    before, after = weights
    return compare_models(before, after, "Base Model", "Fine-tuned v1")


def _load_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.exists() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(imread(path))


def _assert_not_blank(img: np.ndarray) -> None:
    rgb = img[..., :3].astype(np.float64)
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert rgb.std() > 0.05, "image is (nearly) one flat colour"
    # Something other than white and grey: the category colours were drawn.
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (saturation > 0.3).mean() > 0.002


# -- ASCII -------------------------------------------------------------------------------------

BAR_LINE = re.compile(r"([=~*!S+-])\|(.*)\|\s*(\S+)$")


def _bars(text: str) -> dict[str, tuple[str, str, str]]:
    """name -> (marker, bar, value) of every bar, side by side or under its name."""
    rows: dict[str, tuple[str, str, str]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = BAR_LINE.search(line)
        if not m:
            continue
        head = line[: m.start()].strip()
        name = head or lines[i - 1].strip()
        rows[name] = (m.group(1), m.group(2), m.group(3))
    return rows


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_ascii_fits_width_and_keeps_names_whole(diff: dict[str, Any], width: int) -> None:
    text = render_diff_ascii(diff, width=width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert not ANSI.search(text)
    assert text.isascii()
    assert lines[0] == "Coral diff: Base Model -> Fine-tuned v1"
    drawn = [ly["name"] for ly in diff["layers"] if ly["category"] != "identical"]
    assert sorted(_bars(text)) == sorted(drawn)  # one bar per changed tensor, names whole
    assert f"{len(FROZEN)} identical tensors not drawn" in text


def test_ascii_content(diff: dict[str, Any]) -> None:
    text = render_diff_ascii(diff, width=100, show_identical=True)
    rows = _bars(text)
    assert len(rows) == len(diff["layers"])
    for name in FROZEN:
        marker, bar, value = rows[name]
        assert marker == "=" and bar.strip() == "" and value == "0"
    for name in HEAD:
        marker, bar, _ = rows[name]
        assert marker == "!" and bar.count("#") > 0.8 * len(bar)
    assert "shape changed" in rows["classifier.weight"][1]
    assert "added" in rows["adapter.lora_A.weight"][1]
    assert "removed" in rows["old.scale"][1]
    # The MLP's layers 0, 2, 4 are blocks of one family: one grid row each.
    grid = [line for line in text.splitlines() if re.match(r"^[024] {2}", line)]
    assert [g[0] for g in grid] == ["0", "2", "4"]


def test_ascii_symbols_mean_one_thing() -> None:
    from coral.utils.ascii_report import BAR, LEVELS, MARKERS

    markers = list(MARKERS.values())
    assert len(set(markers)) == len(markers)
    assert not set(markers) & set(LEVELS) and BAR not in markers and BAR not in LEVELS


def test_ascii_names_stay_unambiguous() -> None:
    """BERT names that an abbreviation would make ambiguous are printed whole, at 80 columns."""
    rng = np.random.default_rng(5)
    parts = ("intermediate.dense.bias", "output.dense.bias", "attention.output.dense.bias")
    a = {f"encoder.layer.{i}.{p}": rng.standard_normal(8) for i in range(12) for p in parts}
    b = {k: v + 1e-3 for k, v in a.items()}
    text = render_diff_ascii(compare_models(a, b), width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert sorted(_bars(text)) == sorted(a)
    assert "e.l." not in text


def test_ascii_many_layers_and_limit() -> None:
    rng = np.random.default_rng(0)
    a = {f"model.layers.{i}.self_attn.q_proj.weight": rng.standard_normal(64) for i in range(300)}
    b = {k: v * (1 + 10.0 ** -(i % 7)) for i, (k, v) in enumerate(a.items())}
    d = compare_models(a, b)
    text = render_diff_ascii(d, width=72)
    assert all(len(line) <= 72 for line in text.splitlines())
    assert "model.layers.12.self_attn.q_proj.weight" in text.split()
    short = render_diff_ascii(d, width=72, max_layers=20)
    assert "280 less changed tensors not shown" in short
    assert len(_bars(short)) == 20


# -- PNG ---------------------------------------------------------------------------------------


def _bert_like(layers: int = 6) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A BERT-shaped model (names as in all-MiniLM-L6-v2) and a copy with some tensors changed."""
    rng = np.random.default_rng(3)
    modules = [f"attention.self.{p}.{k}" for p in ("query", "key", "value") for k in ("weight",
               "bias")]
    modules += ["attention.output.dense.weight", "attention.output.dense.bias",
                "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
                "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"]
    a = {f"embeddings.{n}": rng.standard_normal((8, 4)) for n in
         ("word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight")}
    a |= {f"encoder.layer.{i}.{m}": rng.standard_normal(6) for i in range(layers)
          for m in modules}
    a["pooler.dense.weight"] = rng.standard_normal((4, 4))
    b = dict(a)
    for i in range(0, layers, 2):  # every other block: its attention moves, by 1e-6 .. 1e-1
        for j, m in enumerate(modules[:6]):
            key = f"encoder.layer.{i}.{m}"
            b[key] = a[key] + 10.0 ** -(1 + (i + j) % 6) * rng.standard_normal(6)
    b["pooler.dense.weight"] = a["pooler.dense.weight"] * 1.5
    return a, b


def _axes(fig: Any, label: str) -> Any:
    return next(ax for ax in fig.axes if ax.get_label() == label)


def _labels_apart(fig: Any, ax: Any) -> None:
    """Every y tick label is drawn, non-empty, and no two overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_yticklabels()]
    assert all(t.get_text() for t in ax.get_yticklabels())
    spans = sorted((b.y0, b.y1) for b in boxes)
    assert all(lo2 >= hi1 - 0.5 for (_, hi1), (lo2, _) in itertools.pairwise(spans))


def test_heatmap_rows_are_blocks(artifacts: Path) -> None:
    from coral.utils.block_grid import block_grid
    from coral.utils.heatmap import colour_norm, overview_figure

    a, b = _bert_like()
    d = compare_models(a, b, "MiniLM", "tuned")
    grid = block_grid(d["layers"])
    assert grid.rows == ["encoder.layer.0", "encoder.layer.2", "encoder.layer.4"]
    assert len(grid.columns) == 6 and all(c.startswith("attention.self.") for c in grid.columns)
    assert [ly["name"] for ly in grid.others] == ["pooler.dense.weight"]
    assert grid.hidden_identical == d["counts"]["identical"] - 0  # no identical cell drawn
    fig = overview_figure(d, a, b)
    heat = _axes(fig, "blocks")
    assert [t.get_text() for t in heat.get_yticklabels()] == grid.rows  # every row labelled
    assert [t.get_text() for t in heat.get_xticklabels()] == grid.columns
    _labels_apart(fig, heat)
    assert [t.get_text() for t in _axes(fig, "others").get_yticklabels()] == [
        "pooler.dense.weight"
    ]
    # The colour scale spans the changes drawn: none is clipped to the ends of the colour map.
    norm = colour_norm(grid)
    changes = [1 - ly["combined_similarity"] for ly in grid.cells.values()]
    assert norm is not None and norm.vmin <= min(changes) and norm.vmax >= max(changes)
    path = render_diff_png(d, artifacts / "diff-blocks.png", before=a, after=b)
    img = _load_png(path)
    _assert_not_blank(img)


def test_heatmap_shows_identical_when_asked() -> None:
    from coral.utils.block_grid import block_grid

    a, b = _bert_like()
    d = compare_models(a, b)
    grid = block_grid(d["layers"], show_identical=True)
    assert grid.rows == [f"encoder.layer.{i}" for i in range(6)] and len(grid.columns) == 16
    assert grid.hidden_identical == 0 and grid.drawn == len(d["layers"])


def test_png_with_distributions(diff: dict[str, Any], weights: Any, artifacts: Path) -> None:
    before, after = weights
    path = render_diff_png(diff, artifacts / "diff.png", before=before, after=after)
    assert path == artifacts / "diff.png"
    img = _load_png(path)
    _assert_not_blank(img)
    plain = _load_png(render_diff_png(diff, artifacts / "diff-no-hist.png"))
    _assert_not_blank(plain)
    assert img.shape[0] > plain.shape[0]  # the histogram row adds height


def test_png_many_blocks_labels_every_row(artifacts: Path) -> None:
    from coral.utils.heatmap import overview_figure

    rng = np.random.default_rng(1)
    a = {f"model.layers.{i}.mlp.down_proj.weight": rng.standard_normal((16, 16))
         for i in range(160)}
    b = {k: v + 10.0 ** -(i % 6) * rng.standard_normal(v.shape)
         for i, (k, v) in enumerate(a.items())}
    d = compare_models(a, b, "llama-base", "llama-sft")
    fig = overview_figure(d)
    heat = _axes(fig, "blocks")
    assert len(heat.get_yticklabels()) == 160
    _labels_apart(fig, heat)
    img = _load_png(render_diff_png(d, artifacts / "diff-160-layers.png", before=a, after=b))
    _assert_not_blank(img)


def test_png_degenerate_inputs(artifacts: Path) -> None:
    empty = compare_models({}, {})
    _load_png(render_diff_png(empty, artifacts / "diff-empty.png", before={}, after={}))
    same = {"w": np.ones(4)}
    _load_png(render_diff_png(compare_models(same, same), artifacts / "diff-same.png",
                              before=same, after=same))


# -- HTML in a real browser --------------------------------------------------------------------


def _open_offline(browser: Any, path: Path, shot: Path) -> tuple[Any, list[str]]:
    """Load a local HTML file, refusing and recording every request that is not file:/data:."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    page.on("request",
            lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(shot), full_page=True)
    return page, outside


def _images(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 22), w: i.naturalWidth,"
        " complete: i.complete}))"
    )


def test_html_report_in_chromium(diff: dict[str, Any], weights: Any, artifacts: Path) -> None:
    from tests.servers.chromium import chromium_browser

    before, after = weights
    path = render_diff_html(diff, artifacts / "diff.html", before=before, after=after)
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", source), "external resource"
    assert "<link" not in source

    with chromium_browser() as browser:
        page, outside = _open_offline(browser, path, artifacts / "diff-html.png")
        assert page.title() == "Coral diff: Base Model → Fine-tuned v1"
        rows = page.locator("#layers tbody tr")
        assert rows.count() == len(diff["layers"])
        images = _images(page)
        assert len(images) == 2
        for img in images:
            assert img["src"] == "data:image/png;base64,"
            assert img["complete"] and img["w"] > 0
        assert outside == []
        # Every layer has a row with its category badge.
        table = page.locator("#layers").inner_text()
        for ly in diff["layers"]:
            assert ly["name"] in table
        # The table sorts: click "Similarity" twice for most similar first, once for least.
        header = page.locator("#layers th", has_text="Similarity")
        header.click()
        first = page.locator("#layers tbody tr").first.locator("td").nth(1).inner_text()
        assert first in {ly["name"] for ly in diff["layers"] if ly["combined_similarity"] is None}
        header.click()
        first = page.locator("#layers tbody tr").first.locator("td").nth(1).inner_text()
        assert first in FROZEN
        page.close()
    _assert_not_blank(_load_png(artifacts / "diff-html.png"))


def test_html_without_distributions(diff: dict[str, Any], artifacts: Path) -> None:
    path = render_diff_html(diff, artifacts / "diff-no-hist.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 1
    assert text.count("<tr>") == len(diff["layers"]) + 1  # + header row


def test_html_escapes_names(artifacts: Path) -> None:
    evil = {"<script>alert(1)</script>": np.ones(3)}
    d = compare_models(evil, {"<script>alert(1)</script>": np.zeros(3)}, "<b>A</b>", "B&C")
    text = render_diff_html(d, artifacts / "diff-escaped.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "B&amp;C" in text


# -- storage savings chart ---------------------------------------------------------------------


def _history(n: int = 12) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append({
            "commit": f"{(i * 2654435761) % 16**8:08x}",
            "message": f"epoch {i}: fine-tune step" if i else "initial import",
            "logical_bytes": 48 << 20,
            "stored_bytes": (48 << 20) if i == 0 else (6 << 20) + i * (256 << 10),
        })
    return out


def test_savings_chart_png(artifacts: Path) -> None:
    path = render_savings_chart(_history(), artifacts / "savings.png")
    _assert_not_blank(_load_png(path))
    _load_png(render_savings_chart([], artifacts / "savings-empty.png"))
    one = _history(1)
    one[0]["stored_bytes"] = 0  # a commit that stored nothing new
    _load_png(render_savings_chart(one, artifacts / "savings-one.png"))


def test_savings_chart_html_in_chromium(artifacts: Path) -> None:
    from tests.servers.chromium import chromium_browser

    history = _history(40)
    path = render_savings_chart(history, artifacts / "savings.html")
    assert path.suffix == ".html"
    with chromium_browser() as browser:
        page, outside = _open_offline(browser, path, artifacts / "savings-html.png")
        assert page.title() == "Coral storage savings"
        assert page.locator("#commits tbody tr").count() == 40
        images = _images(page)
        assert len(images) == 1 and images[0]["w"] > 0
        assert outside == []
        text = page.locator("body").inner_text()
        logical = sum(h["logical_bytes"] for h in history)
        stored = sum(h["stored_bytes"] for h in history)
        assert f"{logical / stored:.2f}×" in text
        page.close()


def test_savings_chart_from_repository_history(repo: Any, artifacts: Path) -> None:
    history = repo.storage_history()
    assert history[0]["message"] == "pretrained MLP"
    path = render_savings_chart(history, artifacts / "savings-repo.png")
    _assert_not_blank(_load_png(path))
    page = render_savings_chart(history, artifacts / "savings-repo.html").read_text("utf-8")
    assert page.count("<tr>") == len(history) + 1
    for h in history:
        assert h["commit"] in page


def test_visual_diff_of_repository_refs(repo: Any, artifacts: Path) -> None:
    before = repo.get_all_weights("base-model", lazy=True)
    after = repo.get_all_weights("finetuned-v1", lazy=True)
    d = compare_models(before, after, "base-model", "finetuned-v1")
    render_diff_png(d, artifacts / "diff-repo.png", before=before, after=after)
    render_diff_html(d, artifacts / "diff-repo.html", before=before, after=after)
    assert not any(w.is_loaded for w in (*before.values(), *after.values()))
    _assert_not_blank(_load_png(artifacts / "diff-repo.png"))

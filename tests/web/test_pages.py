"""The dashboard in headless Chromium (Playwright, Debian's chromium): every page renders with
no console error and no request leaving 127.0.0.1, links lead where they should, charts draw,
long lists page, and the token travels from a `coral share` link into a browser session.
Screenshots go to test-artifacts/web/ for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.servers.chromium import chromium_browser
from tests.web.conftest import TOKEN, Served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as b:
        yield b


@dataclass
class Tab:
    page: Any
    outside: list[str] = field(default_factory=list)  # requests to anywhere but the server
    errors: list[str] = field(default_factory=list)  # console errors and page errors


def open_tab(browser: Any, base: str, context: Any = None) -> Tab:
    """A page that refuses (and records) every request not for `base`'s 127.0.0.1 server."""
    viewport = {"width": 1360, "height": 900}
    page = context.new_page() if context is not None else browser.new_page(viewport=viewport)
    tab = Tab(page)
    origin = base.rstrip("/")

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url.startswith("data:"):
            route.continue_()
        else:
            tab.outside.append(url)
            route.abort()

    page.route("**/*", guard)
    page.on(
        "request",
        lambda r: None if r.url.startswith((origin + "/", "data:")) else tab.outside.append(r.url),
    )
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    return tab


def visit(tab: Tab, base: str, path: str, shot: Path | None = None) -> Any:
    response = tab.page.goto(base + path)
    tab.page.wait_for_load_state("load")
    if shot is not None:
        tab.page.screenshot(path=str(shot), full_page=True)
    return response


def clean(tab: Tab) -> None:
    assert tab.outside == [], f"requests left 127.0.0.1: {tab.outside}"
    assert tab.errors == [], f"console errors: {tab.errors}"


PAGES = [
    ("overview", "/"),
    ("history", "/log?all=true"),
    ("commit", "/commit/HEAD"),
    ("tensor", "/tensor?ref=HEAD&name=encoder.layer.1.mlp.weight"),
    ("diff", "/diff?from=HEAD~4&to=HEAD"),
    ("metrics", "/metrics"),
    ("storage", "/storage"),
    ("remotes", "/remotes"),
    ("activity", "/activity"),
    ("api", "/docs"),
    ("big-commit", "/commit/big?q=block.*"),
]


@pytest.mark.parametrize("name, path", PAGES, ids=[n for n, _ in PAGES])
def test_page_renders_offline(
    browser: Any, served: Served, artifacts: Path, name: str, path: str
) -> None:
    tab = open_tab(browser, served.url)
    response = visit(tab, served.url, path, artifacts / f"{name}.png")
    assert response.status == 200
    assert tab.page.title().endswith("· repo · Coral")
    assert "Traceback" not in tab.page.content()
    nav = tab.page.locator("header.top nav a.on")
    assert nav.count() == 1
    clean(tab)
    tab.page.close()


def test_history_graph_links_paging_and_compare(browser: Any, served: Served) -> None:
    b = served.built
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/log?all=true")
    rows = tab.page.locator("#history tbody tr")
    commits = tab.page.locator("#history tbody tr.commit")
    assert commits.count() == len(b.main) + 2
    assert tab.page.locator("#history svg.graph").count() == rows.count()
    assert tab.page.locator("#history svg.graph circle.node").count() == commits.count()
    assert tab.page.locator("#history tr.joint").count() >= 2  # the fork and the join
    lanes = tab.page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('#history circle.node'))"
        ".map(c => +c.getAttribute('cx')))"
    )
    assert lanes > 7  # some commit sits on a second lane
    # a commit link opens that commit
    tab.page.locator(f'tr[data-hash="{b.merge}"] a.commit-link').click()
    tab.page.wait_for_url(f"**/commit/{b.merge}")
    assert b.merge[:10] in tab.page.locator("h1").inner_text()
    assert tab.page.locator("a.parent").count() == 2  # a merge has two parents
    # paging: three commits a page, "older" leads to the next three
    visit(tab, served.url, "/log?per=3")
    first = tab.page.locator("tr.commit").evaluate_all("rs => rs.map(r => r.dataset.hash)")
    tab.page.locator("a[rel=next]").first.click()
    tab.page.wait_for_url("**page=1**")
    second = tab.page.locator("tr.commit").evaluate_all("rs => rs.map(r => r.dataset.hash)")
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    assert "page 2 of" in tab.page.locator(".pager .cur").first.inner_text()
    # tick two commits, compare: the diff of the older to the newer
    visit(tab, served.url, "/log")
    boxes = tab.page.locator("input.pick")
    assert tab.page.locator("#compare").is_disabled()
    boxes.nth(0).check()
    boxes.nth(2).check()
    tab.page.locator("#compare").click()
    tab.page.wait_for_url("**/diff?**")
    query = parse_qs(urlsplit(tab.page.url).query)
    assert query["to"] == [b.merge] and query["from"][0] != b.merge
    assert tab.page.locator("h1").inner_text().startswith("Diff")
    clean(tab)
    tab.page.close()


def test_commit_page_tensors_files_and_share(browser: Any, served: Served, artifacts: Path) -> None:
    b = served.built
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/commit/v1")
    assert tab.page.locator("#share-link").input_value() == f"{served.url}/commit/{b.merge}"
    table = tab.page.locator("#tensor-table")
    names = table.locator("td.name").all_inner_texts()
    assert "embed.weight" in names and not any(n.startswith("__optim__") for n in names)
    assert "stored" in table.locator("thead").inner_text()
    assert tab.page.locator("#files").inner_text().count("config.json") == 1
    assert tab.page.locator("#metrics, #experiments").count() == 0  # the merge has neither
    # training state is one click away
    tab.page.get_by_text("show them").click()
    tab.page.wait_for_url("**training=**")
    assert "__optim__/state.0.exp_avg" in tab.page.locator("#tensor-table").inner_text()
    # a tensor link opens the tensor with its histogram
    visit(tab, served.url, f"/commit/{b.main[3]}")
    assert tab.page.locator("#experiments").inner_text().count("baseline") == 1
    assert "loss" in tab.page.locator("#metrics").inner_text()
    tab.page.locator("#tensor-table a", has_text="encoder.layer.0.mlp.weight").click()
    tab.page.wait_for_url("**/tensor?**")
    bars = tab.page.locator("#histogram svg.histogram rect.bar")
    assert bars.count() == 40
    assert tab.page.locator("#facts").inner_text().count("(16, 16)") == 1
    tab.page.screenshot(path=str(artifacts / "tensor-histogram.png"), full_page=True)
    clean(tab)
    tab.page.close()


def test_big_commit_pages(browser: Any, served: Served) -> None:
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/commit/big?q=block.*")
    assert tab.page.locator("#tensor-table tbody tr").count() == 100
    assert "page 1 of 10" in tab.page.locator(".pager .cur").first.inner_text()
    tab.page.locator("a[rel=last]").first.click()
    tab.page.wait_for_url("**page=9**")
    assert "page 10 of 10" in tab.page.locator(".pager .cur").first.inner_text()
    assert tab.page.locator("#tensor-table tbody tr").count() == 100
    clean(tab)
    tab.page.close()


def test_diff_page_heatmap_and_table(browser: Any, served: Served, artifacts: Path) -> None:
    b = served.built
    api = served.json(f"/api/diff?from={b.main[0]}&to=HEAD")
    tab = open_tab(browser, served.url)
    visit(tab, served.url, f"/diff?from={b.main[0]}&to=HEAD", artifacts / "diff-heatmap.png")
    heatmap = tab.page.locator("svg.heatmap")
    assert heatmap.count() == 1
    labels = heatmap.locator("text.row-label").all_text_contents()
    assert labels == [f"encoder.layer.{i}" for i in range(4)]  # every block row is labelled
    grid = _grid(b, b.main[0], "HEAD")  # what every diff view draws
    assert heatmap.locator("g.cell").count() == len(grid.cells) > 0
    assert heatmap.locator("g.other").count() == len(grid.others)
    others = heatmap.locator("g.other").evaluate_all("gs => gs.map(g => g.dataset.name)")
    assert "adapter.weight" in others and "embed.weight" not in others  # frozen: identical
    # the counts agree with the diff engine's (the JSON API, `coral diff`)
    for k in ("changed", "added", "removed", "identical"):
        card = tab.page.locator(f"#counts .count-{k} .v").inner_text()
        assert int(card) == api["categories"][k], k
    table = tab.page.locator("#diff-table").inner_text()
    assert "adapter.weight" in table and "__optim__" not in table
    assert "1 training-state tensors left out" in tab.page.locator("#training-note").inner_text()
    # show everything: identical tensors and training state appear
    visit(tab, served.url, f"/diff?from={b.main[0]}&to=HEAD&training=true&show=all")
    table = tab.page.locator("#diff-table").inner_text()
    assert "__optim__/state.0.exp_avg" in table and "embed.weight" in table
    # a heatmap cell leads to its tensor at the newer commit
    visit(tab, served.url, f"/diff?from={b.main[0]}&to=HEAD")
    cell = heatmap.locator("a g.cell").first
    name = cell.get_attribute("data-name")
    cell.locator("rect").click()
    tab.page.wait_for_url("**/tensor?**")
    assert tab.page.locator("h1").inner_text() == name
    clean(tab)
    tab.page.close()


def _grid(b: Any, a: str, c: str) -> Any:
    from coral.porcelain.dashboard import diff_commits
    from coral.utils.block_grid import block_grid
    from coral.utils.comparison import comparison_of_diff
    from coral.version_control.repository import Repository

    with Repository(b.path) as repo:
        return block_grid(comparison_of_diff(diff_commits(repo, a, c).result)["layers"])


def test_metrics_charts_and_picker(browser: Any, served: Served, artifacts: Path) -> None:
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/metrics")
    charts = tab.page.locator("#commit-metrics .chart-box")
    assert charts.evaluate_all("bs => bs.map(b => b.dataset.metric)") == ["acc", "loss"]
    loss = tab.page.locator('#commit-metrics .chart-box[data-metric="loss"]')
    assert loss.locator("polyline.series").count() == 1
    assert loss.locator("circle.point").count() == 8  # the commits that recorded loss
    curves = tab.page.locator("#experiment-metrics svg.experiment-chart polyline.series")
    assert curves.count() == 1
    points = curves.first.get_attribute("points").split()
    assert len(points) == 40
    # untick acc: the page reloads with loss alone
    tab.page.locator('#metric-picker input[value="acc"]').uncheck()
    tab.page.wait_for_url("**metric=loss**")
    assert tab.page.locator("#commit-metrics .chart-box").count() == 1
    tab.page.screenshot(path=str(artifacts / "metrics-loss-only.png"), full_page=True)
    clean(tab)
    tab.page.close()


def test_storage_charts(browser: Any, served: Served) -> None:
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/storage?per=4")
    assert tab.page.locator("#per-commit svg.stacked-bars rect.bar").count() == 4 * 3
    assert tab.page.locator("#storage-table tbody tr").count() == 4
    assert tab.page.locator("#depths svg rect.bar").count() >= 1
    assert tab.page.locator("#encodings svg rect.bar").count() >= 1
    assert tab.page.locator("#largest-table tbody tr").count() == 20
    tab.page.locator("#storage-table a").first.click()
    tab.page.wait_for_url("**/commit/**")
    clean(tab)
    tab.page.close()


def test_remotes_overview_and_activity_links(browser: Any, served: Served) -> None:
    b = served.built
    tab = open_tab(browser, served.url)
    visit(tab, served.url, "/remotes")
    assert "origin/main" in tab.page.locator("#remotes").inner_text()
    assert "published" in tab.page.locator("#publishes").inner_text()
    visit(tab, served.url, "/")
    assert tab.page.locator("#branches tbody tr").count() == 3
    tab.page.locator("#tags a").first.click()
    tab.page.wait_for_url(f"**/commit/{b.merge}")
    visit(tab, served.url, "/activity?per=5")
    assert tab.page.locator("table.activity tbody tr").count() == 5
    tab.page.locator("a[rel=next]").click()
    tab.page.wait_for_url("**page=1**")
    assert tab.page.locator("table.activity tbody tr").count() == 5
    clean(tab)
    tab.page.close()


def test_error_page_in_browser(browser: Any, served: Served, artifacts: Path) -> None:
    tab = open_tab(browser, served.url)
    response = visit(tab, served.url, "/commit/no-such-branch", artifacts / "error-404.png")
    assert response.status == 404
    assert "no-such-branch" in tab.page.locator("#error-message").inner_text()
    assert tab.outside == []
    tab.page.close()


def test_share_link_carries_the_token_into_the_browser(
    browser: Any, served_token: Served, artifacts: Path
) -> None:
    from typer.testing import CliRunner

    from coral.cli.main import app

    b = served_token.built
    result = CliRunner().invoke(
        app,
        ["-C", str(b.path), "share", "v1", "--link", "--url", served_token.url, "--token", TOKEN],
    )
    assert result.exit_code == 0, result.output
    link = result.stdout.strip().splitlines()[0]
    assert link == f"{served_token.url}/commit/{b.merge}?token={TOKEN}"
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = open_tab(browser, served_token.url, context)
    assert visit(tab, served_token.url, link[len(served_token.url) :]).status == 200
    assert b.merge[:10] in tab.page.locator("h1").inner_text()
    tab.page.locator("header.top nav a", has_text="History").click()  # the cookie carries it
    tab.page.wait_for_url("**/log")
    assert tab.page.locator("tr.commit").count() > 0
    tab.page.screenshot(path=str(artifacts / "token-session.png"))
    clean(tab)
    context.close()
    # a fresh browser without the token is turned away
    fresh = browser.new_context()
    stranger = open_tab(browser, served_token.url, fresh)
    response = visit(stranger, served_token.url, "/log", artifacts / "token-refused.png")
    assert response.status == 401
    assert "needs a token" in stranger.page.locator("#error-message").inner_text()
    fresh.close()

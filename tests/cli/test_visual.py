"""`coral diff --visual/--ascii` and `coral stats --visual` write real charts."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from coral.cli.main import app
from coral.porcelain.compare import tensor_select
from coral.version_control.repository import Repository
from tests.cli.conftest import Invoke, assert_user_error
from tests.cli.test_output_80 import ONE_ULP, build_bert_repo


def test_diff_ascii(coral: Invoke) -> None:
    pytest.importorskip("coral.utils.diff_report")
    result = coral("diff", "HEAD~1", "HEAD", "--ascii", "--width", "90")
    assert result.exit_code == 0, result.output
    assert "encoder.weight" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 90


@pytest.mark.parametrize("name", ["diff.png", "diff.html"])
def test_diff_visual(tmp_path: Path, coral: Invoke, name: str) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("coral.utils.diff_report")
    result = coral("diff", "feature", "main", "--visual", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    data = (tmp_path / name).read_bytes()
    assert data.startswith(b"\x89PNG") if name.endswith(".png") else b"<html" in data.lower()
    assert "encoder.weight" in result.stdout  # the table is printed as well


def test_diff_visual_needs_a_known_suffix(tmp_path: Path, coral: Invoke) -> None:
    pytest.importorskip("coral.utils.diff_report")
    assert_user_error(
        coral("diff", "HEAD~1", "--visual", str(tmp_path / "x.svgz")), ".png or .html"
    )


def test_stats_visual(tmp_path: Path, coral: Invoke) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("coral.utils.diff_report")
    result = coral("stats", "--visual", str(tmp_path / "savings.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "savings.png").read_bytes().startswith(b"\x89PNG")


# -- one engine: every view agrees ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_repo(tmp_path_factory.mktemp("bert") / "repo")


COUNTS = re.compile(
    r"(\d+) changed, (?:(\d+) shape changed, )?(\d+) added, (\d+) removed, (\d+) identical"
)


def _counts(text: str) -> tuple[int, ...]:
    m = COUNTS.search(text)
    assert m, text[:500]
    return tuple(int(g or 0) for g in m.groups())


def _html_cards(page: str) -> dict[str, int]:
    cards = re.findall(
        r'<div class="v">([\d,]+)</div><div class="k">(\w[\w ]*) tensors</div>', page
    )
    return {k: int(v.replace(",", "")) for v, k in cards}


@pytest.mark.parametrize(("a", "b"), [("HEAD~2", "HEAD~1"), ("HEAD~1", "HEAD")])
def test_text_ascii_html_png_and_json_agree(
    bert_repo: Path, tmp_path: Path, a: str, b: str
) -> None:
    pytest.importorskip("matplotlib")
    from coral.utils.comparison import comparison_of_diff
    from coral.utils.heatmap import overview_figure

    runner = CliRunner()

    def run(*args: str) -> str:
        res = runner.invoke(app, ["-C", str(bert_repo), "diff", a, b, *args])
        assert res.exit_code == 0, res.output
        return res.stdout

    text = _counts(run())
    ascii_counts = _counts(run("--ascii"))
    data = json.loads(run("--json"))["categories"]
    as_json = (
        data["changed"],
        data["shape_changed"],
        data["added"],
        data["removed"],
        data["identical"],
    )
    page = run("--visual", str(tmp_path / "d.html"))
    html = (tmp_path / "d.html").read_text(encoding="utf-8")
    cards = _html_cards(html)
    as_html = tuple(cards[k] for k in ("changed", "shape changed", "added", "removed", "identical"))
    with Repository(bert_repo) as repo:
        diff = comparison_of_diff(repo.diff(a, b, select=tensor_select(None, False)))
    fig = overview_figure(diff)
    as_png = _counts(fig.get_suptitle())
    assert text == ascii_counts == as_json == as_html == as_png, (text, as_html, as_png)
    assert html.count("<tr>") == sum(text) + 1  # one table row per tensor
    assert "__optim__" not in html and "__optim__" not in fig.get_suptitle()
    assert "wrote" in page
    # The 8.4 categories refine "changed" and add up to the same numbers.
    c = diff["category_counts"]
    assert c["minor_changes"] + c["moderate_changes"] + c["major_changes"] == text[0]
    assert c["identical"] == text[4]


def test_one_ulp_change_is_changed_everywhere(bert_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = CliRunner().invoke(
        app,
        ["-C", str(bert_repo), "diff", "HEAD~2", "HEAD~1", "--visual", str(tmp_path / "d.html")],
    )
    assert res.exit_code == 0, res.output
    row = next(
        line for line in (tmp_path / "d.html").read_text("utf-8").splitlines() if ONE_ULP in line
    )
    assert ">identical<" not in row and ">minor<" in row
    assert "100%" not in row and "100.00%" not in row  # the similarity tells it from identical
    one_minus_cos = re.findall(r'<td[^>]* data-v="([^"]*)">', row)[7]  # the 1 - cos column
    assert 0.0 < float(one_minus_cos) < 1e-9


def test_training_state_stays_out_of_reports(bert_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runner = CliRunner()
    base = ["-C", str(bert_repo), "diff", "HEAD~2", "HEAD~1", "--ascii", "--width", "120"]
    assert "__optim__" not in runner.invoke(app, base).stdout
    full = runner.invoke(app, [*base, "--include-training-state"]).stdout
    assert "__optim__/0/state/3/exp_avg" in full.split()
    with Repository(bert_repo) as repo:
        weights = repo.get_all_weights("HEAD~1")
    from coral.utils.visualization import compare_models

    d = compare_models(weights, weights)
    assert d["summary"]["total_layers_a"] == 104  # no Adam moments in parameter counts
    assert (
        compare_models(weights, weights, include_training_state=True)["summary"]["total_layers_a"]
        == 104 + 156
    )


# -- progress ------------------------------------------------------------------------------------


def test_visual_diff_shows_progress_on_a_terminal(
    bert_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    import coral.cli._common as common

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(common, "err", lambda: console)
    res = CliRunner().invoke(
        app, ["-C", str(bert_repo), "diff", "HEAD~2", "HEAD~1", "--visual", str(tmp_path / "d.png")]
    )
    assert res.exit_code == 0, res.output
    drawn = buffer.getvalue()
    assert "comparing tensors" in drawn and "104/104" in drawn and "drawing d.png" in drawn
    assert "\x1b[" in drawn and "comparing tensors" not in res.stdout


def test_no_progress_when_stderr_is_no_terminal(bert_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = CliRunner().invoke(
        app, ["-C", str(bert_repo), "diff", "HEAD~2", "HEAD~1", "--visual", str(tmp_path / "d.png")]
    )
    assert res.exit_code == 0 and res.stderr == ""

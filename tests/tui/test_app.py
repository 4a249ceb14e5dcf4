"""`coral browse` driven headless with textual's pilot: keys pressed, widgets and screens
asserted; SVG snapshots of the main screens saved under test-artifacts/tui/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from coral.experiments import ExperimentTracker
from coral.porcelain.compare import diff_commits
from coral.tui.app import BrowseApp
from coral.tui.checkout_screen import CheckoutScreen
from coral.tui.diff_screen import DiffScreen
from coral.tui.help_screen import HelpScreen, key_rows
from coral.tui.main_screen import MainScreen
from coral.tui.search_screen import SearchScreen
from coral.tui.staging_screen import StagingScreen
from coral.tui.tensor_screen import TensorScreen
from coral.tui.text_screen import FileScreen
from coral.utils.ascii_report import render_diff_ascii
from coral.utils.comparison import comparison_of_diff
from coral.utils.report_format import counts_text
from coral.version_control.repository import Repository
from tests.tui.conftest import drive, screen_text, settle, snapshot
from tests.tui.history import long_history, small_history


def _select(app: BrowseApp, message: str) -> int:
    """The log row of the commit whose message is `message`."""
    rows = app.main.log_view.rows
    return next(i for i, r in enumerate(rows) if r.commit and r.commit.message == message)


async def _move_to(app: BrowseApp, pilot: Pilot[None], message: str) -> None:
    app.main.log_view.move_to(_select(app, message))
    await settle(app, pilot)


def _rows(table: DataTable) -> list[list[str]]:  # type: ignore[type-arg]
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_opens_on_refs_log_and_the_head_commit(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    head = repo.head_commit() or ""

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        main = app.main
        assert isinstance(app.screen, MainScreen) and not main.has_class("-wide")
        assert main.log_view.has_focus
        assert [r.graph for r in main.log_view.rows] == ["*", "|\\", "| *", "* |", "|/", "*"]
        assert main.log_view.selected is not None
        assert main.log_view.selected.commit_hash == head
        detail = main.detail.detail
        assert detail is not None and detail.commit.commit_hash == head
        names = [r[0] for r in _rows(main.query_one("#tensors", DataTable))]
        assert names == sorted(names) and "adapter.weight" in names
        assert "__optim__/state.0.exp_avg" not in names  # training state hidden by default
        text = snapshot(app, "main-80x24")
        lines = text.splitlines()
        assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
        for shown in (head[:10], "(HEAD -> main)", "* main", "v1", "Log: all refs"):
            assert shown in text, shown
        assert "encoder.layer.0.attn.weight" in text  # a tensor name is never cut
        assert "config.json" in text  # the model's files
        # the selected commit's ancestry: a side-branch commit leaves main's commit out
        await _move_to(app, pilot, "add an adapter")
        dim = main.log_view._ancestry
        tuned = main.log_view.rows[_select(app, "fine-tune the head")].commit
        assert tuned is not None and tuned.commit_hash not in dim and len(dim) == 2
        await _move_to(app, pilot, "merge the adapter")
        await pilot.press("t")  # training state toggled into the table
        await settle(app, pilot)
        names = [r[0] for r in _rows(main.query_one("#tensors", DataTable))]
        assert "__optim__/state.0.exp_avg" in names and len(names) == 7

    drive(BrowseApp(repo), scenario)


def test_grows_with_the_window(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    tracker = ExperimentTracker(repo)
    tracker.start("lr-sweep")
    tracker.link_commit(repo.resolve_ref("v1"))
    tracker.end()

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        assert app.main.has_class("-wide")
        text = snapshot(app, "main-160x40")
        # metrics and the experiment beside each commit
        assert "(tag: v1) fine-tune the…  val_loss=0.41 acc=0.93  [lr-sweep]" in text
        assert "base model  val_loss=0.9" in text
        refs, log = app.main.refs.region, app.main.log_view.region
        assert refs.right <= log.x and refs.height == log.height  # three columns

    drive(BrowseApp(repo), scenario, size=(160, 40))


def test_filter_tensors_by_glob(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("f")
        assert isinstance(app.focused, Input)
        await pilot.press(*"*.mlp.*")
        table = app.main.query_one("#tensors", DataTable)
        assert [r[0] for r in _rows(table)] == [
            "encoder.layer.0.mlp.weight",
            "encoder.layer.1.mlp.weight",
        ]
        await pilot.press("enter")  # to the table; then Enter opens the tensor
        assert app.focused is table
        await pilot.press("q")  # never typed into the filter: it quits from the table

    app = BrowseApp(repo)
    drive(app, scenario)
    assert app.return_code == 0


def test_mark_then_diff_with_change_map(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    expected = diff_commits(repo, repo.resolve_ref("v1~1"), repo.resolve_ref("v1"))

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await _move_to(app, pilot, "base model")
        await pilot.press("m")
        assert app.main.log_view.marked == repo.resolve_ref("v1~1")
        await _move_to(app, pilot, "fine-tune the head")
        await pilot.press("d")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen) and screen.diff is not None
        assert screen.diff.result.counts() == expected.result.counts()
        table = screen.query_one("#diff-table", DataTable)
        rows = {r[1]: r[0] for r in _rows(table)}
        assert rows == {"encoder.layer.1.mlp.weight": "! major", "head.bias": "! major"}
        text = snapshot(app, "diff-80x24")
        assert counts_text(expected.result.counts()) in text.replace("\n", " ")
        assert "1 training-state tensors hidden (t)" in text
        await pilot.press("v")  # the block-structured change map of `coral diff --ascii`
        assert screen.comparison is not None
        chart = render_diff_ascii(screen.comparison, screen.size.width - 2)
        assert "encoder.layer.1" in chart and "Change per block" in chart
        text = snapshot(app, "diff-map-80x24")
        assert "Change per block" in text and "encoder.layer.1  8" in text
        await pilot.press("v", "t")  # training state in: the optimizer tensor appears
        await settle(app, pilot)
        assert "__optim__/state.0.exp_avg" in {r[1] for r in _rows(table)}
        assert screen.diff.training_state_hidden == 0
        await pilot.press("i")  # identical tensors listed too
        assert table.row_count == len(screen.diff.result.tensors)
        table.move_cursor(row=[r[1] for r in _rows(table)].index("head.bias"))
        await pilot.press("enter")  # the tensor at both commits
        await settle(app, pilot)
        assert isinstance(app.screen, TensorScreen)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, MainScreen)

    drive(BrowseApp(repo), scenario)


def test_comparison_agrees_with_the_cli_engine(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    d = diff_commits(repo, "v1~1", "v1")
    comp = comparison_of_diff(d.result)
    assert comp["counts"] == d.result.counts()  # the TUI shows the one engine's counts


def test_tensor_statistics_and_histograms_side_by_side(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await _move_to(app, pilot, "fine-tune the head")
        await pilot.press("3")
        table = app.main.query_one("#tensors", DataTable)
        names = [r[0] for r in _rows(table)]
        table.move_cursor(row=names.index("encoder.layer.1.mlp.weight"))
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TensorScreen)
        v = screen.query_one("#versions").versions  # type: ignore[attr-defined]
        assert v is not None and v.refs[1] == repo.resolve_ref("v1~1")[:10]  # the parent
        text = snapshot(app, "tensor-80x24")
        assert text.count("std") == 2 and text.count("(8, 8) float32") == 2
        assert "█" in text  # the histograms
        await pilot.press("o")  # compare with another ref
        await pilot.press(*"side", "enter")
        await settle(app, pilot)
        assert screen.other == "side"

    drive(BrowseApp(repo), scenario)


def test_model_file_text(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        files = app.main.query_one("#files", DataTable)
        files.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, FileScreen)
        assert '"tuned": true' in screen_text(app)

    drive(BrowseApp(repo), scenario)


def test_stage_unstage_and_commit(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    save_file({"head.bias": np.full(4, 5.0, np.float32)}, str(tmp_path / "epoch7.safetensors"))

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, StagingScreen)
        assert _rows(screen.query_one("#candidates", DataTable)) == [["epoch7.safetensors"]]
        screen.query_one("#candidates", DataTable).focus()
        await pilot.press("space")  # stage the file
        await settle(app, pilot)
        staged = screen.query_one("#staged", DataTable)
        assert _rows(staged) == [["modified", "head.bias"]]
        head_table = screen.query_one("#head-tensors", DataTable)
        head_table.focus()
        head_table.move_cursor(row=[r[0] for r in _rows(head_table)].index("adapter.weight"))
        await pilot.press("space")  # stage a removal
        await settle(app, pilot)
        assert ["deleted", "adapter.weight"] in _rows(staged)
        staged.focus()
        staged.move_cursor(row=[r[1] for r in _rows(staged)].index("adapter.weight"))
        await pilot.press("space")  # unstage it again
        await settle(app, pilot)
        assert _rows(staged) == [["modified", "head.bias"]]
        snapshot(app, "staging-80x24")
        await pilot.press("d")  # what the commit would change
        await settle(app, pilot)
        diff = app.screen
        assert isinstance(diff, DiffScreen) and diff.diff is not None
        assert diff.diff.result.to_ref == "staged" and diff.diff.result.changed.keys() == {
            "head.bias"
        }
        await pilot.press("escape")
        await pilot.press("c")
        await pilot.press(*"epoch 7 | loss=0.2", "enter")
        await settle(app, pilot)
        assert _rows(staged) == []
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.main.log_view.rows[0].entry is not None
        assert app.main.log_view.rows[0].entry.commit.message == "epoch 7"

    drive(BrowseApp(repo), scenario)
    with Repository(tmp_path) as check:
        assert check.get_commit("HEAD").metrics == {"loss": 0.2}
        assert float(check.get_weight("head.bias").data[0]) == 5.0


def test_checkout_only_after_preview_and_confirmation(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    head = repo.head_commit()

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await _move_to(app, pilot, "add an adapter")
        await pilot.press("c")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, CheckoutScreen) and screen.preview is not None
        assert repo.head_commit() == head  # a preview moves nothing
        changes = {r[1]: r[0] for r in _rows(screen.query_one("#checkout-changes", DataTable))}
        assert changes == {"encoder.layer.1.mlp.weight": "* changed", "head.bias": "* changed"}
        text = snapshot(app, "checkout-80x24")
        assert "HEAD now" in text and "after" in text  # distributions before and after
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen) and repo.head_commit() == head
        app.main.refs.focus()
        await pilot.press("down", "down", "down")  # (all refs), Branches, main -> side
        await pilot.press("c", "y")
        await settle(app, pilot)
        assert repo.current_branch == "side"

    drive(BrowseApp(repo), scenario)


def test_staged_changes_block_checkout_until_forced(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    repo.add_weight("extra", np.zeros(2, np.float32))

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await _move_to(app, pilot, "base model")
        await pilot.press("c")
        await settle(app, pilot)
        assert "1 staged changes block the checkout" in screen_text(app)
        await pilot.press("y")
        await settle(app, pilot)
        assert repo.current_branch == "main"  # refused
        await pilot.press("F", "n")  # asked, and declined
        await settle(app, pilot)
        assert repo.current_branch == "main"
        await pilot.press("F", "y")
        await settle(app, pilot)
        assert repo.current_branch is None and repo.staged_changes() == {}

    drive(BrowseApp(repo), scenario)


def test_search_then_jump(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("slash")
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await pilot.press(*"val_loss<0.5", "enter")
        await settle(app, pilot)
        hits = _rows(screen.query_one(DataTable))
        assert [h[1:3] for h in hits] == [["metric", "val_loss=0.41"]]
        snapshot(app, "search-80x24")
        await pilot.press("enter")
        await settle(app, pilot)
        selected = app.main.log_view.selected
        assert isinstance(app.screen, MainScreen) and selected is not None
        assert selected.message == "fine-tune the head"
        await pilot.press("g", *"side", "enter")  # jump to a ref
        await settle(app, pilot)
        assert app.main.log_view.selected is not None
        assert app.main.log_view.selected.commit_hash == repo.resolve_ref("side")

    drive(BrowseApp(repo), scenario)


def test_help_lists_every_key(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        listed = {(k, d) for _, k, d in screen.rows}
        for _, bindings in app.key_places():
            for b in bindings:
                assert any(d == b.description for _, d in listed), b  # type: ignore[union-attr]
        assert len(key_rows(app.key_places())) > 40
        text = snapshot(app, "help-80x24")
        assert "jump to ref" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)

    drive(BrowseApp(repo), scenario)


def test_command_palette_runs_browser_commands(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+p")
        await pilot.press(*"staging")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, StagingScreen)

    drive(BrowseApp(repo), scenario)


def test_long_history_is_paged(tmp_path: Path) -> None:
    repo = long_history(tmp_path, 300)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        log = app.main.log_view
        loaded = len(log.rows)
        assert loaded == 70 and not log.done  # the first page, and one more under the screen
        await pilot.press("end")  # the cursor at the end reads more
        await settle(app, pilot)
        assert len(log.rows) > loaded and not log.done
        root = repo.resolve_ref("HEAD~299")
        log.jump_to(root)  # pages are read until the commit is loaded
        await settle(app, pilot, rounds=10)
        assert log.done and log.selected is not None and log.selected.commit_hash == root
        assert "step 0" in screen_text(app)

    drive(BrowseApp(repo, first_page=20, page=50), scenario)


def test_a_diff_can_be_cancelled(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path)
    rng = np.random.default_rng(1)
    repo.add_all_weights({f"t{i}": rng.standard_normal(256).astype(np.float32) for i in range(300)})
    repo.commit("a")
    repo.add_all_weights({f"t{i}": rng.standard_normal(256).astype(np.float32) for i in range(300)})
    repo.commit("b")

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        await pilot.press("escape")  # while it runs: stops it and goes back
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert screen._worker is not None and not screen._worker.is_running
        await pilot.press("d")  # a new diff runs to the end
        await settle(app, pilot, rounds=8)
        assert isinstance(app.screen, DiffScreen) and app.screen.diff is not None
        assert app.screen.diff.result.counts()["changed"] == 300

    drive(BrowseApp(repo), scenario)


def test_an_empty_repository(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path, shared_staging=True)

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        assert app.main.log_view.rows == [] and app.main.log_view.done
        assert "no commits yet" in screen_text(app)
        await pilot.press("d", "c", "m")  # nothing to do: nothing breaks
        assert isinstance(app.screen, MainScreen)

    drive(BrowseApp(repo), scenario)

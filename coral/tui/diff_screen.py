"""The diff of two commits: per tensor changed / added / removed with magnitudes, highlighted
by grade, and the block-structured change map (`coral diff --ascii`, DESIGN §8).

The diff runs in a worker with a progress bar; Escape cancels it (between tensors). Counts and
categories come from the one diff engine, as every other view of a diff does. Training state
is left out unless toggled (`t`); identical tensors are listed with `i`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, ProgressBar, Static
from textual.worker import Worker

from coral.porcelain.compare import CommitDiff, diff_commits
from coral.tui.format import (
    CATEGORY_STYLES,
    CATEGORY_WORDS,
    fmt_num,
    fmt_shape,
    marker,
    ref_label,
)
from coral.tui.session import Session, check_cancelled, start_job
from coral.tui.tables import Row, fill_table
from coral.tui.tensor_screen import TensorScreen
from coral.utils.ascii_report import render_diff_ascii
from coral.utils.comparison import comparison_of_diff
from coral.utils.report_format import counts_text, grades_text
from coral.version_control.diff import TensorComparison

DIFF_COLUMNS = ("status", "name", "shape", "‖Δ‖₂", "‖Δ‖/‖a‖", "1−cos", "max|Δ|")

REPORT_EVERY = 16  # tensors between progress updates


class DiffScreen(Screen[None]):
    """`from_ref` -> `to_ref` (None: HEAD plus the staged changes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back / cancel"),
        Binding("v", "toggle_map", "change map"),
        Binding("t", "training_state", "training state"),
        Binding("i", "identical", "identical tensors"),
    ]
    DEFAULT_CSS = """
    DiffScreen #diff-title { height: auto; padding: 0 1; background: $boost; }
    DiffScreen #diff-progress { height: 1; padding: 0 1; }
    DiffScreen ContentSwitcher { height: 1fr; }
    DiffScreen #diff-table { height: 1fr; }
    DiffScreen #diff-map { height: 1fr; }
    DiffScreen #diff-map Static { width: auto; }
    """

    def __init__(self, session: Session, from_ref: str, to_ref: str | None) -> None:
        super().__init__()
        self.session = session
        self.from_ref = from_ref
        self.to_ref = to_ref
        self.include_training_state = False
        self.show_identical = False
        self.diff: CommitDiff | None = None
        self.comparison: dict[str, Any] | None = None
        self._worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="diff-title")
        yield ProgressBar(id="diff-progress", show_eta=False)
        with ContentSwitcher(initial="diff-table"):
            table: DataTable[str | Text] = DataTable(id="diff-table", cursor_type="row")
            table.add_columns(*DIFF_COLUMNS)
            yield table
            with VerticalScroll(id="diff-map"):
                yield Static("", id="diff-map-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    # -- loading ----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def load(self) -> None:
        title = self.query_one("#diff-title", Static)
        sides = f"{ref_label(self.from_ref)} → {ref_label(self.to_ref)}"
        title.update(Text(f"diff {sides}: comparing… (Esc cancels)"))
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        app = self.app
        session, a, b, training = (
            self.session,
            self.from_ref,
            self.to_ref,
            self.include_training_state,
        )

        def progress(phase: str, done: int, total: int | None) -> None:
            check_cancelled()
            if done % REPORT_EVERY == 0 or done == total:
                app.call_from_thread(bar.update, total=total, progress=done)

        def work() -> tuple[CommitDiff, dict[str, Any]]:
            with session.lock:
                diff = diff_commits(
                    session.repo, a, b, include_training_state=training, progress=progress
                )
            return diff, comparison_of_diff(diff.result, ref_label(a), ref_label(b))

        self._worker = start_job(self, work, self._loaded, group="diff")

    def _loaded(self, result: tuple[CommitDiff, dict[str, Any]]) -> None:
        self.diff, self.comparison = result
        self.query_one(ProgressBar).display = False
        self._fill()

    def _fill(self) -> None:
        if self.diff is None or self.comparison is None:
            return
        d, comp = self.diff, self.comparison
        text = Text()
        text.append(f"diff {ref_label(self.from_ref)} → {ref_label(self.to_ref)}: ", "bold")
        text.append(counts_text(d.result.counts()))
        if d.result.changed:
            text.append(f" ({grades_text(comp)})")
        if d.training_state_hidden:
            text.append(f"\n{d.training_state_hidden} training-state tensors hidden (t)", "dim")
        self.query_one("#diff-title", Static).update(text)
        grades = {ly["name"]: ly["category"] for ly in comp["layers"]}
        table: DataTable[str | Text] = self.query_one("#diff-table", DataTable)
        shown = d.result.tensors if self.show_identical else d.rows
        rows: list[Row] = [(self._cells(t, grades.get(t.name, t.category)), t.name) for t in shown]
        fill_table(table, DIFF_COLUMNS, rows)
        width = max(40, self.size.width - 2)
        chart = render_diff_ascii(comp, width, show_identical=self.show_identical)
        self.query_one("#diff-map-text", Static).update(chart)

    @staticmethod
    def _cells(t: TensorComparison, grade: str) -> list[str | Text]:
        style = CATEGORY_STYLES.get(grade, "")
        status = Text(f"{marker(grade)} {CATEGORY_WORDS.get(grade, grade)}", style=style)
        old, new = t.old_shape, t.new_shape
        if old is not None and new is not None and old != new:
            shape = f"{fmt_shape(old)} → {fmt_shape(new)}"
        else:
            shape = fmt_shape(new if new is not None else old)
        m = t.metrics
        numbers = (
            [
                fmt_num(m.l2),
                fmt_num(m.relative),
                fmt_num(m.one_minus_cosine, ".3g"),
                fmt_num(m.max_abs),
            ]
            if m is not None
            else ["", "", "", ""]
        )
        return [status, Text(t.name, style=style), shape, *numbers]

    # -- keys -------------------------------------------------------------------------------
    def action_back(self) -> None:
        if self.busy and self._worker is not None:
            self._worker.cancel()
            self.app.notify("diff cancelled")
        self.app.pop_screen()

    def action_toggle_map(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "diff-map" if switcher.current == "diff-table" else "diff-table"

    def action_training_state(self) -> None:
        self.include_training_state = not self.include_training_state
        if self._worker is not None and self._worker.is_running:
            self._worker.cancel()
        self.load()

    def action_identical(self) -> None:
        self.show_identical = not self.show_identical
        self._fill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        name = event.row_key.value
        if name is None or self.to_ref is None:
            return
        self.app.push_screen(TensorScreen(self.session, self.to_ref, str(name), self.from_ref))

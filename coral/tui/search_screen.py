"""Search (`/`): commit messages, metrics (`val_loss<0.4`) and tensor names (`*.bias`), hits
streamed in newest first while the history is read; Enter on a hit jumps the log there."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, get_current_worker

from coral.porcelain.search import MESSAGE, METRIC, TENSOR, SearchHit, search_history
from coral.tui.format import HASH_LEN, first_line, short
from coral.tui.session import Session, start_job

BATCH = 20  # hits sent to the screen at a time
MAX_HITS = 2000
MATCH_WIDTH = 32  # columns of the matched text shown (longer text is cut)
SUBJECT_WIDTH = 60
KIND_STYLES = {METRIC: "green", TENSOR: "magenta"}


class SearchScreen(Screen[str | None]):
    """A query line and its hits; answers the chosen commit's hash (None: nothing chosen)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "stop / back"),
        Binding("down", "results", "to the hits", show=False),
    ]
    DEFAULT_CSS = """
    SearchScreen #search-input { dock: top; }
    SearchScreen #search-status { height: 1; padding: 0 1; color: $text-muted; }
    SearchScreen DataTable { height: 1fr; }
    """

    def __init__(self, session: Session, refs: list[str] | None = None, query: str = "") -> None:
        super().__init__()
        self.session = session
        self.refs = refs
        self.initial = query
        self.hits: list[SearchHit] = []
        self._worker: Worker[None] | None = None
        self._timer: Timer | None = None
        self.searching = False

    def compose(self) -> ComposeResult:
        yield Input(
            self.initial, placeholder="message text, metric<0.5, tensor glob", id="search-input"
        )
        yield Static(
            "text: messages, metric names, tensors changed · loss<0.4 · *.bias",
            id="search-status",
            markup=False,
        )
        table: DataTable[str | Text] = DataTable(id="search-hits", cursor_type="row")
        # Hits arrive in batches, so the columns have fixed widths (see coral.tui.tables).
        table.add_column("commit", width=HASH_LEN)
        table.add_column("kind", width=max(len(k) for k in (MESSAGE, METRIC, TENSOR)))
        table.add_column("match", width=MATCH_WIDTH)
        table.add_column("subject", width=SUBJECT_WIDTH)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self.initial:
            self.start(self.initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, lambda: self.start(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.start(event.value)
        self.query_one(DataTable).focus()

    def start(self, query: str) -> None:
        """Search for `query`, replacing the hits of an earlier search."""
        if self._worker is not None:
            self._worker.cancel()
        self.hits = []
        table: DataTable[str | Text] = self.query_one(DataTable)
        table.clear()
        status = self.query_one("#search-status", Static)
        if not query.strip():
            status.update("type a query")
            return
        status.update(f"searching {query!r}… (Esc stops)")
        self.searching = True
        session, refs, app = self.session, self.refs, self.app

        def work() -> int:
            batch: list[SearchHit] = []
            n = 0
            worker = get_current_worker()
            with session.lock:
                for hit in search_history(session.repo, query, refs):
                    if worker.is_cancelled:
                        return n
                    batch.append(hit)
                    n += 1
                    if len(batch) >= BATCH:
                        app.call_from_thread(self._add, batch)
                        batch = []
                    if n >= MAX_HITS:
                        break
            if batch:
                app.call_from_thread(self._add, batch)
            return n

        def done(n: int) -> None:
            self.searching = False
            more = f" (first {MAX_HITS})" if n >= MAX_HITS else ""
            status.update(f"{n} hits for {query!r}{more}")

        self._worker = start_job(self, work, done, group="search")

    def _add(self, hits: list[SearchHit]) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        for hit in hits:
            key = f"{len(self.hits)}"
            self.hits.append(hit)
            table.add_row(
                Text(short(hit.commit.commit_hash), style="yellow"),
                Text(hit.kind, style=KIND_STYLES.get(hit.kind, "")),
                hit.what,
                "" if hit.kind == MESSAGE else first_line(hit.commit.message),
                key=key,
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            hit = self.hits[int(event.row_key.value)]
            self.dismiss(hit.commit.commit_hash)

    def on_unmount(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def action_results(self) -> None:
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        if self.searching and self._worker is not None:
            self._worker.cancel()
            self.searching = False
            self.query_one("#search-status", Static).update("stopped")
            return
        self.dismiss(None)

"""The detail pane: the selected commit, its tensors as a table (filterable by glob) and its
model files (config.json, tokenizer files, ...).

Enter on a tensor opens it (statistics and histogram, beside its version at another commit);
Enter on a file shows its text.
"""

from __future__ import annotations

import fnmatch
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from coral.porcelain.history import CommitDetail, commit_detail
from coral.porcelain.provenance import record_summary
from coral.tui.format import (
    CHANGE_STYLES,
    fmt_num,
    fmt_shape,
    fmt_time,
    human_bytes,
    short,
)
from coral.tui.log_view import LogView
from coral.tui.session import Session, start_job
from coral.tui.tables import Cell, Row, fill_table
from coral.version_control.objects import Commit
from coral.version_control.provenance import read_provenance

TENSOR_COLUMNS = ("name", "shape", "dtype", "size", "stored", "encoding", "vs parent")
FILE_COLUMNS = ("model file", "size")


def name_matches(name: str, pattern: str) -> bool:
    """A glob (`encoder.*`), or a plain substring when the pattern has no glob characters."""
    if not pattern:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern.lower() in name.lower()


class CommitPane(Vertical):
    """Header, tensor filter, tensor table, file table of one commit."""

    ALLOW_MAXIMIZE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "back: filter to table, table to log", show=False),
    ]
    DEFAULT_CSS = """
    CommitPane { background: $surface; }
    CommitPane #commit-header { height: auto; max-height: 8; padding: 0 1; }
    CommitPane #tensor-filter { height: 1; border: none; padding: 0 1; margin: 0; }
    CommitPane #tensors { height: 1fr; }
    CommitPane #commit-notes { height: auto; padding: 0 1; color: $text-muted; }
    CommitPane #files { height: auto; max-height: 6; }
    """

    class OpenTensor(Message):
        def __init__(self, commit: Commit, name: str) -> None:
            super().__init__()
            self.commit = commit
            self.name = name

    class OpenFile(Message):
        def __init__(self, commit: Commit, path: str) -> None:
            super().__init__()
            self.commit = commit
            self.path = path

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.detail: CommitDetail | None = None
        self.include_training_state = False
        self._shown: list[str] = []
        self._pending: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="commit-header")
        yield Input(placeholder="filter tensors: glob or text (f)", id="tensor-filter")
        table: DataTable[str | Text] = DataTable(
            id="tensors", cursor_type="row", zebra_stripes=True
        )
        table.add_columns(*TENSOR_COLUMNS)
        yield table
        yield Static("", id="commit-notes")
        files: DataTable[str] = DataTable(id="files", cursor_type="row")
        files.add_columns(*FILE_COLUMNS)
        yield files

    # -- loading ----------------------------------------------------------------------------
    def show(self, commit: Commit | None) -> None:
        """Show `commit` (read in a worker; the newest request wins)."""
        if commit is None:
            self.detail = None
            self.query_one("#commit-header", Static).update("no commits yet")
            self.query_one("#tensors", DataTable).clear()
            return
        self._pending = commit.commit_hash
        self.query_one("#commit-header", Static).update(
            Text(f"commit {short(commit.commit_hash)} … reading", style="dim")
        )
        ref, training = commit.commit_hash, self.include_training_state

        def work() -> CommitDetail:
            return self.session.call(
                commit_detail, ref, include_training_state=training, storage=True
            )

        start_job(self, work, self._loaded, group="commit-detail")

    def _loaded(self, detail: CommitDetail) -> None:
        if detail.commit.commit_hash != self._pending:
            return
        self.detail = detail
        self._header(detail)
        self._fill_tensors()
        self._fill_files(detail)

    def _header(self, d: CommitDetail) -> None:
        c = d.commit
        text = Text()
        text.append(f"commit {short(c.commit_hash)}", "bold yellow")
        if d.refs:
            text.append(f" ({', '.join(d.refs)})", "bold cyan")
        if d.pruned:
            text.append(f" [{d.pruned}]", "dim")
        text.append("\n")
        if c.is_merge:
            text.append("Merge:  " + " ".join(short(p) for p in c.parent_hashes) + "\n")
        text.append(f"Author: {c.author}\nDate:   {fmt_time(c.timestamp)}\n")
        if c.metrics:
            items = ", ".join(f"{k}={fmt_num(v)}" for k, v in c.metrics.items())
            text.append(f"Metrics: {items}\n", "green")
        text.append(c.message.strip() or "(no message)", "bold")
        recorded = record_summary(read_provenance(c.metadata))
        if recorded:  # where the weights came from: base model, training config, datasets
            text.append(f"\n{recorded}", "dim")
        self.query_one("#commit-header", Static).update(text)

    def _fill_tensors(self) -> None:
        d = self.detail
        table: DataTable[str | Text] = self.query_one("#tensors", DataTable)
        self._shown = []
        if d is None:
            table.clear()
            return
        rows: list[Row] = []
        pattern = self.query_one("#tensor-filter", Input).value.strip()
        has_parent = bool(d.commit.parent_hashes)
        for t in d.tensors:
            if not name_matches(t.name, pattern):
                continue
            e, s = t.entry, t.stored
            change = t.change if has_parent else ""
            cells: list[Cell] = [
                Text(e.name),
                fmt_shape(e.shape),
                e.dtype,
                human_bytes(e.nbytes),
                human_bytes(s.stored_bytes) if s else "-",
                s.encoding if s else "-",
                Text(change, style=CHANGE_STYLES.get(change, "")),
            ]
            rows.append((cells, e.name))
            self._shown.append(e.name)
        fill_table(table, TENSOR_COLUMNS, rows)
        notes = [f"{len(self._shown)} of {d.total_tensors} tensors"]
        if pattern:
            notes[0] += f" matching {pattern!r}"
        if d.removed:
            notes.append(f"{len(d.removed)} removed since the parent")
        if d.training_state:
            notes.append(
                f"{len(d.training_state)} training-state tensors "
                f"({human_bytes(d.training_state_bytes)}) hidden: t shows them"
            )
        self.query_one("#commit-notes", Static).update(Text("; ".join(notes)))

    def _fill_files(self, d: CommitDetail) -> None:
        files: DataTable[str] = self.query_one("#files", DataTable)
        fill_table(files, FILE_COLUMNS, [([f.path, human_bytes(f.size)], f.path) for f in d.files])
        files.display = bool(d.files)

    # -- events -----------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "tensor-filter":
            self._fill_tensors()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "tensor-filter":
            self.query_one("#tensors", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.detail is None or event.row_key.value is None:
            return
        if event.data_table.id == "tensors":
            self.post_message(self.OpenTensor(self.detail.commit, str(event.row_key.value)))
        elif event.data_table.id == "files":
            self.post_message(self.OpenFile(self.detail.commit, str(event.row_key.value)))

    def action_leave(self) -> None:
        if isinstance(self.app.focused, Input):
            self.query_one("#tensors", DataTable).focus()
        else:
            self.screen.query_one(LogView).focus()

    def action_filter(self) -> None:
        self.query_one("#tensor-filter", Input).focus()

    def action_training_state(self) -> None:
        self.include_training_state = not self.include_training_state
        if self.detail is not None:
            self.show(self.detail.commit)
        state = "shown" if self.include_training_state else "hidden"
        self.app.notify(f"training state {state}")

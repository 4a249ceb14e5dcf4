"""Staging: checkpoint files near the repository, HEAD's tensors, and what is staged.

Space on a checkpoint file stages it (as `coral add`), on a HEAD tensor stages its removal (as
`coral rm`), on a staged change unstages it (as `coral reset NAME`); `a` stages a path typed in,
`U` unstages everything, `d` diffs HEAD against what is staged, `c` commits with a message
prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from coral.porcelain.add import AddResult
from coral.porcelain.staging import (
    StagingView,
    commit_staged,
    stage_path,
    stage_removal,
    staging_view,
    unstage,
)
from coral.tui.diff_screen import DiffScreen
from coral.tui.format import short
from coral.tui.messages import RepositoryChanged
from coral.tui.prompt import PromptScreen
from coral.tui.session import Session, start_job
from coral.tui.tables import Row, fill_table

KIND_STYLES = {"new": "green", "modified": "yellow", "deleted": "red"}


class StagingScreen(Screen[None]):
    """Stage and unstage files and tensors; commit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("space", "stage_toggle", "stage / unstage"),
        Binding("a", "add_path", "stage a path…"),
        Binding("U", "unstage_all", "unstage all"),
        Binding("c", "commit", "commit…"),
        Binding("d", "diff", "diff HEAD → staged"),
        Binding("tab", "app.focus_next", "next list", show=False),
    ]
    DEFAULT_CSS = """
    StagingScreen #staging-title {
        height: 1; padding: 0 1; background: $boost; text-wrap: nowrap; text-overflow: ellipsis;
    }
    StagingScreen Horizontal { height: 1fr; }
    StagingScreen Vertical { width: 1fr; }
    StagingScreen Label { padding: 0 1; text-style: bold; }
    StagingScreen DataTable { height: 1fr; }
    """

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.view: StagingView | None = None
        self.head_names: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("staging", id="staging-title", markup=False)
        with Horizontal():
            with Vertical():
                yield Label("Checkpoint files (space: stage)")
                files: DataTable[str] = DataTable(id="candidates", cursor_type="row")
                files.add_column("path")
                yield files
                yield Label("HEAD tensors (space: stage removal)")
                head: DataTable[str] = DataTable(id="head-tensors", cursor_type="row")
                head.add_column("tensor")
                yield head
            with Vertical():
                yield Label("Staged (space: unstage)")
                staged: DataTable[str | Text] = DataTable(id="staged", cursor_type="row")
                staged.add_columns("change", "name")
                yield staged
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        def work() -> tuple[StagingView, list[str]]:
            with self.session.lock:
                repo = self.session.repo
                view = staging_view(repo)
                names = repo.list_weights("HEAD") if repo.head_commit() else []
            return view, names

        start_job(self, work, self._loaded, group="staging")

    def _loaded(self, result: tuple[StagingView, list[str]]) -> None:
        view, names = result
        self.view, self.head_names = view, names
        where = view.branch or f"detached at {short(view.head)}"
        root = self.session.repo.path
        self.query_one("#staging-title", Static).update(
            f"on {where}: {len(view.staged)} staged; files under {root}"
        )
        files: DataTable[str] = self.query_one("#candidates", DataTable)
        candidates: list[Row] = []
        for p in view.candidates:
            shown = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
            candidates.append(([shown + ("/" if p.is_dir() else "")], str(p)))
        fill_table(files, ("path",), candidates)
        head: DataTable[str] = self.query_one("#head-tensors", DataTable)
        fill_table(head, ("tensor",), [([n], n) for n in names])
        staged: DataTable[str | Text] = self.query_one("#staged", DataTable)
        staged_rows: list[Row] = []
        for item in view.staged:
            style = KIND_STYLES.get(item.kind.removeprefix("file "), "")
            staged_rows.append(([Text(item.kind, style=style), item.name], item.name))
        fill_table(staged, ("change", "name"), staged_rows)

    # -- actions ----------------------------------------------------------------------------
    def _run(self, what: str, fn: object, *args: object) -> None:
        def work() -> object:
            return self.session.call(fn, *args)  # type: ignore[arg-type]

        def done(result: object) -> None:
            if isinstance(result, AddResult):
                self.app.notify(f"staged {result.tensors} tensors: {result.describe()}")
            else:
                self.app.notify(what)
            self.reload()
            self.app.post_message(RepositoryChanged())

        start_job(self, work, done, group="staging-op", exclusive=False)

    def _focused_key(self) -> tuple[str, str] | None:
        table = self.focused
        if not isinstance(table, DataTable) or table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return (table.id or "", str(row_key.value)) if row_key.value is not None else None

    def action_stage_toggle(self) -> None:
        key = self._focused_key()
        if key is None:
            return
        table, value = key
        if table == "candidates":
            self._run(f"staged {value}", stage_path, Path(value))
        elif table == "head-tensors":
            self._run(f"staged removal of {value}", stage_removal, [value])
        elif table == "staged":
            self._run(f"unstaged {value}", unstage, [value])

    def action_unstage_all(self) -> None:
        self._run("unstaged everything", unstage, None)

    def action_diff(self) -> None:
        if self.session.repo.head_commit() is not None:
            self.app.push_screen(DiffScreen(self.session, "HEAD", None))

    def action_add_path(self) -> None:
        def answer(path: str | None) -> None:
            if path:
                full = Path(path).expanduser()
                if not full.is_absolute():
                    full = self.session.repo.path / full
                self._run(f"staged {path}", stage_path, full)

        self.app.push_screen(
            PromptScreen("Stage which checkpoint file or folder?", hint="relative to the repo"),
            answer,
        )

    def action_commit(self) -> None:
        def answer(message: str | None) -> None:
            if message:
                text, metrics = _split_metrics(message)

                def done(commit_hash: str) -> None:
                    self.app.notify(f"committed {short(commit_hash)} {text}")
                    self.reload()
                    self.app.post_message(RepositoryChanged())

                start_job(
                    self,
                    lambda: self.session.call(commit_staged, text, metrics),
                    done,
                    group="commit",
                )

        self.app.push_screen(
            PromptScreen(
                "Commit message",
                hint="metrics after a '|': epoch 3 | val_loss=0.41 acc=0.9",
            ),
            answer,
        )


def _split_metrics(answer: str) -> tuple[str, dict[str, float | str]]:
    """'msg | loss=0.4 acc=0.9' -> ('msg', {'loss': 0.4, 'acc': 0.9})."""
    text, _, rest = answer.partition("|")
    metrics: dict[str, float | str] = {}
    for pair in rest.split():
        key, sep, value = pair.partition("=")
        if sep and key:
            try:
                metrics[key] = float(value)
            except ValueError:
                metrics[key] = value
    return text.strip(), metrics

"""Before a checkout: where HEAD would go, which tensors would change (and their distributions
now and after), what is staged in the way. Nothing moves until `y` is pressed; with changes
staged, `F` drops them and checks out after a second confirmation.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from coral.porcelain.compare import (
    CheckoutPreview,
    TensorVersions,
    checkout_preview,
    tensor_versions,
)
from coral.tui.format import (
    CATEGORY_STYLES,
    CATEGORY_WORDS,
    first_line,
    fmt_shape,
    marker,
    short,
)
from coral.tui.messages import RepositoryChanged
from coral.tui.prompt import ConfirmScreen
from coral.tui.session import Session, start_job
from coral.tui.tables import Cell, Row, fill_table
from coral.tui.versions_view import VersionsView

CHANGE_COLUMNS = ("change", "tensor", "shape")


class CheckoutScreen(Screen[None]):
    """A preview of `checkout(ref)`, then the checkout on confirmation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "app.pop_screen", "cancel"),
        Binding("y", "checkout", "check out"),
        Binding("F", "force", "drop staged, check out"),
    ]
    DEFAULT_CSS = """
    CheckoutScreen #checkout-title { height: auto; padding: 0 1; background: $boost; }
    CheckoutScreen #checkout-changes { height: 1fr; min-height: 4; }
    CheckoutScreen #checkout-dist { height: 1fr; }
    """

    def __init__(self, session: Session, ref: str) -> None:
        super().__init__()
        self.session = session
        self.ref = ref
        self.preview: CheckoutPreview | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"checkout {self.ref}: reading…", id="checkout-title", markup=False)
        table: DataTable[str | Text] = DataTable(id="checkout-changes", cursor_type="row")
        table.add_columns(*CHANGE_COLUMNS)
        yield table
        with VerticalScroll(id="checkout-dist"):
            yield VersionsView(id="checkout-versions")
        yield Footer()

    def on_mount(self) -> None:
        start_job(
            self,
            lambda: self.session.call(checkout_preview, self.ref),
            self._loaded,
            group="checkout-preview",
        )

    def _loaded(self, p: CheckoutPreview) -> None:
        self.preview = p
        t = Text()
        where = f"branch {p.branch}" if p.branch else f"{short(p.target.commit_hash)} (detached)"
        t.append(f"Check out {where}: ", "bold")
        t.append(f"{short(p.head) or '(no commit)'} → {short(p.target.commit_hash)} ")
        t.append(first_line(p.target.message) + "\n")
        if not p.moves:
            t.append("HEAD is already at this commit\n", "dim")
        counts = ", ".join(f"{n} {CATEGORY_WORDS.get(k, k)}" for k, n in sorted(p.counts.items()))
        t.append(f"tensors that change: {counts or 'none'}")
        if p.files:
            t.append(f"; model files: {len(p.files)} ({', '.join(p.files)})")
        if p.training_state_hidden:
            t.append(f"; {p.training_state_hidden} training-state tensors not listed", "dim")
        if p.pruned:
            t.append(f"\nthis commit is {p.pruned}", "yellow")
        if p.staged:
            t.append(
                f"\n{len(p.staged)} staged changes block the checkout "
                "(F drops them and checks out)",
                "bold red",
            )
        else:
            t.append("\ny: check out   Esc: cancel", "bold green")
        self.query_one("#checkout-title", Static).update(t)
        table: DataTable[str | Text] = self.query_one("#checkout-changes", DataTable)
        rows: list[Row] = []
        for c in p.changes:
            style = CATEGORY_STYLES.get(c.category, "")
            shape = c.new_shape if c.new_shape is not None else c.old_shape
            cells: list[Cell] = [
                Text(f"{marker(c.category)} {CATEGORY_WORDS.get(c.category, c.category)}", style),
                Text(c.name, style=style),
                fmt_shape(shape),
            ]
            rows.append((cells, c.name))
        fill_table(table, CHANGE_COLUMNS, rows)
        if p.changes:
            table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        p = self.preview
        if p is None or event.row_key.value is None:
            return
        name = str(event.row_key.value)
        refs = ([p.head] if p.head else []) + [p.target.commit_hash]

        def shown(v: TensorVersions) -> None:
            v.refs = (["HEAD now"] if p.head else []) + [
                "after" if p.branch is None else f"after ({p.branch})"
            ]
            self.query_one(VersionsView).show(v)

        start_job(self, lambda: self.session.call(tensor_versions, name, refs), shown, group="dist")

    def _do_checkout(self, force: bool) -> None:
        ref = self.ref

        def done(target: str) -> None:
            self.app.notify(f"checked out {ref} ({short(target)})")
            self.app.post_message(RepositoryChanged())
            self.app.pop_screen()

        start_job(
            self,
            lambda: self.session.call(lambda repo: repo.checkout(ref, force=force)),
            done,
            group="checkout",
        )

    def action_checkout(self) -> None:
        if self.preview is None:
            return
        if self.preview.staged:
            self.app.notify("changes are staged: F drops them and checks out", severity="warning")
            return
        self._do_checkout(False)

    def action_force(self) -> None:
        if self.preview is None:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._do_checkout(True)

        n = len(self.preview.staged)
        self.app.push_screen(ConfirmScreen(f"Drop {n} staged changes and check out?"), answer)

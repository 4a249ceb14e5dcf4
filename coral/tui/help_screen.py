"""`?`: every key of the browser, read from the bindings themselves (so it cannot go stale)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def key_rows(places: Sequence[tuple[str, Iterable[BindingType]]]) -> list[tuple[str, str, str]]:
    """(where, keys, what) for every binding that has a description."""
    rows = []
    for where, bindings in places:
        for b in bindings:
            if not isinstance(b, Binding) or not b.description:
                continue
            keys = " / ".join(k.strip() for k in b.key.split(","))
            rows.append((where, b.key_display or keys, b.description))
    return rows


class HelpScreen(ModalScreen[None]):
    """A table of every key, by where it works."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark", "close", "close help")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > #help-title { dock: top; height: 1; padding: 0 1; background: $accent; }
    HelpScreen > DataTable { width: 90%; height: 90%; border: round $accent; }
    """

    def __init__(self, places: Sequence[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.rows = key_rows(places)

    def compose(self) -> ComposeResult:
        yield Static("Keys (Esc closes)", id="help-title", markup=False)
        table: DataTable[str | Text] = DataTable(cursor_type="row")
        table.add_columns("where", "key", "does")
        last = ""
        for where, keys, what in self.rows:
            shown = Text(where if where != last else "", style="bold")
            table.add_row(shown, Text(keys, "bold cyan"), what)
            last = where
        yield table

    def action_close(self) -> None:
        self.dismiss(None)

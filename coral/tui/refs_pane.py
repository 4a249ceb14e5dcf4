"""The refs pane: every branch (HEAD's marked), tag and remote-tracking ref.

Moving onto a ref moves the log's cursor to its commit; Enter shows only that ref's history
(Enter on "all refs" shows every branch and tag again); `c` previews checking it out.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from coral.porcelain.browse import RefItem, RefsOverview, refs_overview
from coral.tui.session import Session, start_job

ALL_REFS = "(all refs)"


class RefsPane(OptionList):
    """Branches, tags and remotes; a header line before each kind."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "log of this ref", show=False),
        Binding("c", "checkout", "preview checkout"),
    ]
    DEFAULT_CSS = """
    RefsPane { background: $surface; }
    """

    class Jump(Message):
        """The highlighted ref's commit (the log moves there)."""

        def __init__(self, item: RefItem) -> None:
            super().__init__()
            self.item = item

    class ShowLog(Message):
        """Show the history of `item` only (None: of every ref)."""

        def __init__(self, item: RefItem | None) -> None:
            super().__init__()
            self.item = item

    class Checkout(Message):
        def __init__(self, item: RefItem) -> None:
            super().__init__()
            self.item = item

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.session = session
        self.overview: RefsOverview | None = None
        self._items: dict[str, RefItem] = {}

    def reload(self) -> None:
        start_job(self, lambda: self.session.call(refs_overview), self._show, group="refs")

    def _show(self, overview: RefsOverview) -> None:
        self.overview = overview
        before = self.highlighted
        self.clear_options()
        self._items = {}
        options: list[Option] = [Option(Text(ALL_REFS, style="italic"), id="all")]
        for title, items in (
            ("Branches", overview.branches),
            ("Tags", overview.tags),
            ("Remotes", overview.remotes),
        ):
            if not items:
                continue
            options.append(Option(Text(title, style="bold underline"), disabled=True))
            for item in items:
                key = f"{item.kind}:{item.name}"
                self._items[key] = item
                label = Text()
                if item.kind == "branch":
                    label.append("* " if item.current else "  ", "bold green")
                    label.append(item.name, "bold green" if item.current else "")
                elif item.kind == "tag":
                    label.append("  " + item.name, "yellow")
                else:
                    label.append("  " + item.name, "red")
                options.append(Option(label, id=key))
        if overview.remote_names and not overview.remotes:
            options.append(Option(Text("Remotes", style="bold underline"), disabled=True))
            for name in overview.remote_names:
                options.append(Option(Text(f"  {name} (not fetched)", style="dim"), disabled=True))
        self.add_options(options)
        if before is not None and before < self.option_count:
            self.highlighted = before
        self.border_subtitle = f"{len(overview.branches)} branches, {len(overview.tags)} tags"

    def _item(self, index: int | None) -> RefItem | None:
        if index is None:
            return None
        option = self.get_option_at_index(index)
        return self._items.get(option.id or "")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        item = self._item(event.option_index)
        if item is not None and self.has_focus:
            self.post_message(self.Jump(item))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.ShowLog(self._item(event.option_index)))

    def action_checkout(self) -> None:
        item = self._item(self.highlighted)
        if item is not None:
            self.post_message(self.Checkout(item))

"""One tensor: its statistics and distribution, beside the same tensor at another commit
(the commit's parent unless another ref is given)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from coral.porcelain.compare import TensorVersions, tensor_versions
from coral.tui.format import ref_label
from coral.tui.prompt import PromptScreen
from coral.tui.session import Session, start_job
from coral.tui.versions_view import VersionsView


class TensorScreen(Screen[None]):
    """`name` at `ref`, beside `name` at `other`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("o", "other", "compare with ref…"),
        Binding("p", "parent", "compare with parent"),
        Binding("x", "swap", "swap sides"),
    ]
    DEFAULT_CSS = """
    TensorScreen #tensor-title { height: auto; padding: 0 1; background: $boost; }
    TensorScreen VerticalScroll { height: 1fr; }
    """

    def __init__(self, session: Session, ref: str, name: str, other: str | None) -> None:
        super().__init__()
        self.session = session
        self.ref = ref
        self.tensor = name
        self.other = other

    def compose(self) -> ComposeResult:
        yield Static("", id="tensor-title", markup=False)
        with VerticalScroll():
            yield VersionsView(id="versions")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        refs = [self.ref] + ([self.other] if self.other else [])
        self.query_one("#tensor-title", Static).update(f"{self.tensor}  (reading…)")

        def work() -> TensorVersions:
            return self.session.call(tensor_versions, self.tensor, refs)

        start_job(self, work, self._loaded, group="tensor")

    def _loaded(self, versions: TensorVersions) -> None:
        versions.refs = [ref_label(r) for r in versions.refs]
        sides = " vs ".join(versions.refs)
        self.query_one("#tensor-title", Static).update(f"{self.tensor}   {sides}")
        self.query_one(VersionsView).show(versions)

    def _set_other(self, ref: str | None) -> None:
        if ref:
            self.other = ref
            self.load()

    def action_other(self) -> None:
        self.app.push_screen(
            PromptScreen(
                "Compare with which ref?", self.other or "", "a branch, tag, hash, HEAD~2"
            ),
            self._set_other,
        )

    def action_parent(self) -> None:
        self._set_other(f"{self.ref}~1")

    def action_swap(self) -> None:
        if self.other:
            self.ref, self.other = self.other, self.ref
            self.load()

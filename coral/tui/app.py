"""`BrowseApp`: the terminal browser of one repository (`coral browse`).

Global keys: `?` every key, `/` search, `g` jump to a ref, `s` staging, `ctrl+p` the command
palette, `r` read everything again, `q` quit (the terminal is left as it was found).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from coral.tui.checkout_screen import CheckoutScreen
from coral.tui.commit_pane import CommitPane
from coral.tui.diff_screen import DiffScreen
from coral.tui.help_screen import HelpScreen
from coral.tui.log_view import LogView
from coral.tui.main_screen import MainScreen
from coral.tui.messages import RepositoryChanged
from coral.tui.prompt import ConfirmScreen, PromptScreen
from coral.tui.refs_pane import RefsPane
from coral.tui.search_screen import SearchScreen
from coral.tui.session import FIRST_PAGE, PAGE, Session, describe_error, start_job
from coral.tui.staging_screen import StagingScreen
from coral.tui.tensor_screen import TensorScreen
from coral.tui.text_screen import FileScreen
from coral.version_control.repository import Repository


class BrowseApp(App[None]):
    """Refs, the log with its graph, commits, tensors, diffs, staging: one repository."""

    TITLE = "coral browse"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "keys", key_display="?"),
        Binding("slash", "search", "search", key_display="/"),
        Binding("g", "jump", "jump to ref"),
        Binding("s", "staging", "staging"),
        Binding("r", "reload", "reload", show=False),
    ]
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        repo: Repository,
        *,
        first_page: int = FIRST_PAGE,
        page: int = PAGE,
    ) -> None:
        super().__init__()
        self.session = Session(repo, first_page, page)
        self.main = MainScreen(self.session)

    @classmethod
    def open(cls, path: str | Path = ".", **kwargs: int) -> BrowseApp:
        """The browser of the repository at `path` (or a parent), with the staging area
        `coral add` and `coral commit` share."""
        return cls(Repository(path, shared_staging=True), **kwargs)

    def get_default_screen(self) -> Screen[None]:
        return self.main

    # -- global actions ---------------------------------------------------------------------
    def key_places(self) -> list[tuple[str, Iterable[BindingType]]]:
        """Where each key works, for the help screen."""
        return [
            ("everywhere", self.BINDINGS),
            ("main screen", MainScreen.BINDINGS),
            ("log", LogView.BINDINGS),
            ("refs", RefsPane.BINDINGS),
            ("commit detail", [*CommitPane.BINDINGS, _ENTER_TENSOR]),
            ("diff", [*DiffScreen.BINDINGS, _ENTER_DIFF]),
            ("tensor", TensorScreen.BINDINGS),
            ("staging", StagingScreen.BINDINGS),
            ("checkout preview", CheckoutScreen.BINDINGS),
            ("search", [*SearchScreen.BINDINGS, _ENTER_HIT]),
            ("model file", FileScreen.BINDINGS),
            ("questions", [*PromptScreen.BINDINGS, *ConfirmScreen.BINDINGS]),
            ("palette", [Binding("ctrl+p", "command_palette", "command palette")]),
        ]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_places()))

    def action_search(self) -> None:
        if isinstance(self.screen, SearchScreen):
            return

        def chosen(commit_hash: str | None) -> None:
            if commit_hash:
                self._to_main()
                self.main.jump(commit_hash)

        self.push_screen(SearchScreen(self.session, self.main.log_view.refs), chosen)

    def action_jump(self) -> None:
        def answer(ref: str | None) -> None:
            if not ref:
                return

            def found(commit_hash: str) -> None:
                self._to_main()
                self.main.jump(commit_hash)

            start_job(
                self.main,
                lambda: self.session.call(lambda repo: repo.resolve_ref(ref)),
                found,
                group="jump",
            )

        self.push_screen(
            PromptScreen("Jump to which ref?", hint="branch, tag, hash, HEAD~3, origin/main"),
            answer,
        )

    def action_staging(self) -> None:
        if not isinstance(self.screen, StagingScreen):
            self.push_screen(StagingScreen(self.session))

    def action_reload(self) -> None:
        self.main.reload()

    def _to_main(self) -> None:
        while self.screen is not self.main and len(self.screen_stack) > 1:
            self.pop_screen()

    def on_repository_changed(self, event: RepositoryChanged) -> None:
        self.main.reload()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Search", "Commit messages, metrics, tensor names (/)", self.action_search
        )
        yield SystemCommand("Jump to ref", "A branch, tag or hash (g)", self.action_jump)
        yield SystemCommand("Staging", "Stage, unstage and commit (s)", self.action_staging)
        yield SystemCommand(
            "Diff",
            "The selected commit against the marked one or its parent (d)",
            self.main.action_diff,
        )
        yield SystemCommand(
            "Checkout preview",
            "What checking out the selection changes (c)",
            self.main.action_checkout,
        )
        yield SystemCommand("Keys", "Every key (?)", self.action_help)
        yield SystemCommand("Reload", "Read refs and the log again (r)", self.action_reload)
        overview = self.main.refs.overview
        for item in overview.items() if overview is not None else []:
            yield SystemCommand(
                f"Go to {item.kind} {item.name}",
                item.note or item.commit_hash[:10],
                lambda h=item.commit_hash: self._go(h),
            )
        yield from super().get_system_commands(screen)

    def _go(self, commit_hash: str) -> None:
        self._to_main()
        self.main.jump(commit_hash)

    def notify_error(self, exc: BaseException) -> None:
        self.notify(describe_error(exc), severity="error")


_ENTER_TENSOR = Binding("enter", "open", "open tensor / model file")
_ENTER_DIFF = Binding("enter", "open", "the tensor at both commits")
_ENTER_HIT = Binding("enter", "open", "jump to the hit")

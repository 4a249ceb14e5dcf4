"""The browser's first screen, laid out like lazygit: refs and the commit log on the left, the
selected commit's detail on the right (three columns side by side from 120 columns up)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Static

from coral.porcelain.browse import RefItem
from coral.tui.checkout_screen import CheckoutScreen
from coral.tui.commit_pane import CommitPane
from coral.tui.diff_screen import DiffScreen
from coral.tui.format import short
from coral.tui.log_view import LogView
from coral.tui.refs_pane import RefsPane
from coral.tui.session import Session
from coral.tui.tensor_screen import TensorScreen
from coral.tui.text_screen import FileScreen
from coral.version_control.objects import Commit

WIDE = 120  # columns from which refs, log and detail stand side by side
DETAIL_DELAY = 0.08  # seconds the cursor rests before the detail pane reads the commit


class MainScreen(Screen[None]):
    """Refs | log | detail."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "diff", "diff"),
        Binding("c", "checkout", "checkout…"),
        Binding("f", "filter", "filter tensors"),
        Binding("t", "training_state", "training state"),
        Binding("z", "zoom", "zoom pane"),
        Binding("enter", "detail", "detail", show=False),
        Binding("escape", "to_log", "back to log", show=False),
        Binding("tab", "app.focus_next", "next pane", show=False),
        Binding("shift+tab", "app.focus_previous", "previous pane", show=False),
        Binding("1", "focus_pane('refs')", "refs pane", show=False),
        Binding("2", "focus_pane('log')", "log pane", show=False),
        Binding("3", "focus_pane('tensors')", "tensor table", show=False),
    ]
    DEFAULT_CSS = """
    MainScreen #status {
        height: 1; padding: 0 1; background: $boost; text-wrap: nowrap; text-overflow: ellipsis;
    }
    MainScreen #body { height: 1fr; }
    MainScreen #left { width: 1fr; layout: vertical; }
    MainScreen #refs { height: 9; border: round $panel; }
    MainScreen #log { height: 1fr; border: round $panel; }
    MainScreen #detail { width: 1fr; border: round $panel; }
    MainScreen #refs:focus-within, MainScreen #log:focus, MainScreen #detail:focus-within {
        border: round $accent;
    }
    MainScreen.-wide #left { width: 2fr; layout: horizontal; }
    MainScreen.-wide #refs { width: 28; height: 1fr; }
    """

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._detail_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="status", markup=False)
        with Horizontal(id="body"):
            with Container(id="left"):
                refs = RefsPane(self.session, id="refs")
                refs.border_title = "Refs"
                yield refs
                log = LogView(self.session, id="log")
                log.border_title = "Log"
                yield log
            detail = CommitPane(self.session, id="detail")
            detail.border_title = "Commit"
            yield detail
        yield Footer()

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    @property
    def refs(self) -> RefsPane:
        return self.query_one(RefsPane)

    @property
    def detail(self) -> CommitPane:
        return self.query_one(CommitPane)

    def on_mount(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")
        self.log_view.focus()
        self.reload()

    def reload(self) -> None:
        """Read refs and the log again (after a commit, a checkout, staging)."""
        self.refs.reload()
        self.log_view.show_history(self.log_view.refs)

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    # -- what the panes say -----------------------------------------------------------------
    def _status(self) -> None:
        overview = self.refs.overview
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("coral browse", "bold")
        if overview is not None:
            where = overview.branch or f"detached {short(overview.head)}"
            text.append(f"  on {where}", "bold green")
            if overview.staged:
                text.append(f"  {overview.staged} staged", "yellow")
        log = self.log_view
        loaded = sum(1 for r in log.rows if r.commit is not None)
        text.append(f"  {loaded}{'' if log.done else '+'} commits")
        if log.marked:
            text.append(f"  marked {short(log.marked)}", "bold blue")
        text.append("  ? keys", "bold")
        text.append(f"  {self.session.repo.path}", "dim")
        self.query_one("#status", Static).update(text)

    def on_log_view_highlighted(self, event: LogView.Highlighted) -> None:
        commit = event.commit
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(DETAIL_DELAY, lambda: self.detail.show(commit))
        self._status()

    def on_log_view_loaded(self, event: LogView.Loaded) -> None:
        scope = "all refs" if self.log_view.refs is None else ", ".join(self.log_view.refs)
        more = "" if event.done else "+"
        self.log_view.border_title = f"Log: {scope}"
        self.log_view.border_subtitle = f"{event.commits}{more} commits"
        if event.commits == 0:
            self.detail.show(None)
        self._status()

    def on_refs_pane_jump(self, event: RefsPane.Jump) -> None:
        self.log_view.jump_to(event.item.commit_hash)
        self._status()

    def on_refs_pane_show_log(self, event: RefsPane.ShowLog) -> None:
        item = event.item
        self.log_view.show_history(None if item is None else [_ref_of(item)])
        self.log_view.focus()

    def on_refs_pane_checkout(self, event: RefsPane.Checkout) -> None:
        self.app.push_screen(CheckoutScreen(self.session, _ref_of(event.item)))

    def on_commit_pane_open_tensor(self, event: CommitPane.OpenTensor) -> None:
        self.app.push_screen(
            TensorScreen(
                self.session, event.commit.commit_hash, event.name, self._other(event.commit)
            )
        )

    def on_commit_pane_open_file(self, event: CommitPane.OpenFile) -> None:
        title = f"{event.path} at {short(event.commit.commit_hash)}"
        self.app.push_screen(FileScreen(self.session, event.commit.commit_hash, event.path, title))

    def _other(self, commit: Commit) -> str | None:
        """The other side of a comparison: the marked commit, else the first parent."""
        marked = self.log_view.marked
        if marked and marked != commit.commit_hash:
            return marked
        return commit.parent_hashes[0] if commit.parent_hashes else None

    # -- keys -------------------------------------------------------------------------------
    def action_diff(self) -> None:
        commit = self.log_view.selected
        if commit is None:
            return
        other = self._other(commit)
        if other is None:
            self.app.notify("a root commit: mark another commit (m) to diff against")
            return
        self.app.push_screen(DiffScreen(self.session, other, commit.commit_hash))

    def action_checkout(self) -> None:
        commit = self.log_view.selected
        if commit is not None:
            self.app.push_screen(CheckoutScreen(self.session, commit.commit_hash))

    def action_detail(self) -> None:
        self.query_one("#tensors").focus()

    def action_zoom(self) -> None:
        """The focused pane alone on the screen (again: back to the layout)."""
        if self.maximized is not None:
            self.minimize()
            return
        pane = self.focused
        while pane is not None and pane.id not in ("refs", "log", "detail"):
            pane = pane.parent if isinstance(pane.parent, Widget) else None
        if pane is not None:
            self.maximize(pane, container=False)

    def action_filter(self) -> None:
        self.detail.action_filter()

    def action_training_state(self) -> None:
        self.detail.action_training_state()

    def action_to_log(self) -> None:
        self.log_view.focus()

    def action_focus_pane(self, which: str) -> None:
        self.query_one(f"#{which}").focus()

    def jump(self, commit_hash: str) -> None:
        self.log_view.jump_to(commit_hash)
        self.log_view.focus()


def _ref_of(item: RefItem) -> str:
    """What to pass as a ref: the name, except for remote-tracking refs (their commit)."""
    return item.commit_hash if item.kind == "remote" else item.name

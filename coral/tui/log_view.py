"""The commit log with its graph: virtualised (only visible lines are drawn) and paged (the
first screenful is read first, more as the cursor nears the end of what is loaded).

The selected commit's ancestry among the loaded rows is drawn normally, everything else dim;
a marked commit (`m`) is the other side of the next diff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from coral.porcelain.browse import LogPager, LogRow, ancestry
from coral.tui.format import first_line, metric_text, short
from coral.tui.session import Session, start_job
from coral.version_control.objects import Commit

MIN_SUBJECT = 12  # characters of a subject kept before metrics are cut instead


class LogView(ScrollView, can_focus=True):
    """Commits newest first, one line each: graph, hash, refs, subject, metrics, experiment."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move(1)", "down", show=False),
        Binding("up,k", "move(-1)", "up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("home", "first", "first commit", show=False),
        Binding("end", "last", "last loaded commit (loads more)", show=False),
        Binding("m", "mark", "mark for diff"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log--cursor",
        "log--hash",
        "log--refs",
        "log--head",
        "log--metrics",
        "log--experiment",
        "log--other",
        "log--mark",
        "log--graph",
    }
    DEFAULT_CSS = """
    LogView { background: $surface; }
    LogView > .log--cursor { text-style: reverse; }
    LogView > .log--hash { color: ansi_yellow; }
    LogView > .log--refs { color: ansi_cyan; text-style: bold; }
    LogView > .log--head { color: ansi_green; text-style: bold; }
    LogView > .log--metrics { color: ansi_green; }
    LogView > .log--experiment { color: ansi_magenta; }
    LogView > .log--other { text-style: dim; }
    LogView > .log--mark { color: ansi_bright_white; background: ansi_blue; text-style: bold; }
    LogView > .log--graph { color: ansi_red; text-style: bold; }
    """

    class Highlighted(Message):
        """The cursor moved to `commit` (None: the log is empty)."""

        def __init__(self, commit: Commit | None) -> None:
            super().__init__()
            self.commit = commit

    class Loaded(Message):
        """A page arrived: `commits` loaded so far, `done` when the history is all read."""

        def __init__(self, commits: int, done: bool) -> None:
            super().__init__()
            self.commits = commits
            self.done = done

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.rows: list[LogRow] = []
        self.cursor = 0
        self.marked: str | None = None
        self.refs: list[str] | None = None
        self._pager: LogPager | None = None
        self._generation = 0
        self._loading = False
        self._want: str | None = None  # a commit to move to once it is loaded
        self._ancestry: set[str] = set()
        self._index: dict[str, int] = {}

    # -- loading ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._pager is not None and self._pager.done

    @property
    def busy(self) -> bool:
        return self._loading

    def show_history(self, refs: Sequence[str] | None = None) -> None:
        """Start over on the history of `refs` (None: every branch, tag and HEAD)."""
        self._generation += 1
        self.refs = list(refs) if refs is not None else None
        self._pager = LogPager(self.session.repo, self.refs)  # reads nothing until a page
        self.rows, self._index, self.cursor, self._ancestry = [], {}, 0, set()
        self._loading = False
        self._resize()
        self._fetch(self.session.first_page)

    def _fetch(self, count: int) -> None:
        if self._pager is None or self._pager.done or self._loading:
            return
        self._loading = True
        pager, generation, want = self._pager, self._generation, self._want
        session = self.session

        def work() -> list[LogRow]:
            rows: list[LogRow] = []
            with session.lock:
                rows += pager.next_page(count)
                while (
                    want
                    and not pager.done
                    and all(r.commit is None or r.commit.commit_hash != want for r in rows)
                ):
                    rows += pager.next_page(session.page)
            return rows

        def done(rows: list[LogRow]) -> None:
            if generation == self._generation:
                self._loading = False
                self._append(rows)

        def failed(exc: BaseException) -> None:
            self._loading = False
            self.app.notify(f"cannot read the log: {exc}", severity="error")

        start_job(self, work, done, group=f"log-{id(self)}", exclusive=False, failed=failed)

    def _append(self, rows: list[LogRow]) -> None:
        first = not self.rows
        for row in rows:
            if row.commit is not None:
                self._index[row.commit.commit_hash] = len(self.rows)
            self.rows.append(row)
        self._resize()
        before = self.cursor
        if first:
            self.cursor = self._commit_row(0, 1)
        if self._want is not None and self._want in self._index:
            self.cursor = self._index[self._want]
            self._want = None
        elif self._want is not None and self.done:
            self.app.notify(f"{short(self._want)} is not in this log", severity="warning")
            self._want = None
        self._cursor_moved(notify=first or self.cursor != before)
        self.post_message(self.Loaded(self._pager.commits if self._pager else 0, self.done))
        if self._want is not None:
            self._fetch(self.session.page)
        self._more_if_near_end()

    def _more_if_near_end(self) -> None:
        height = max(1, self.size.height)
        if not self.done and self.cursor >= len(self.rows) - 2 * height:
            self._fetch(self.session.page)

    def _resize(self) -> None:
        extra = 0 if self.done else 1  # the "loading" line
        self.virtual_size = Size(self.size.width, len(self.rows) + extra)
        self.refresh()

    # -- cursor -----------------------------------------------------------------------------
    @property
    def selected(self) -> Commit | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].commit
        return None

    def _commit_row(self, start: int, step: int) -> int:
        i = start
        while 0 <= i < len(self.rows) and self.rows[i].commit is None:
            i += step
        if 0 <= i < len(self.rows):
            return i
        return self.cursor

    def _cursor_moved(self, notify: bool = True) -> None:
        self._ancestry = ancestry(self.rows, self.cursor)
        self._scroll_to_cursor()
        self.refresh()
        if notify:
            self.post_message(self.Highlighted(self.selected))

    def _scroll_to_cursor(self) -> None:
        height = self.scrollable_content_region.height or self.size.height
        if height <= 0:
            return
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def move_to(self, index: int) -> None:
        index = max(0, min(len(self.rows) - 1, index))
        step = 1 if index >= self.cursor else -1
        target = self._commit_row(index, step)
        if target == self.cursor and self.rows and self.rows[index].commit is None:
            target = self._commit_row(index, -step)
        if target != self.cursor:
            self.cursor = target
            self._cursor_moved()
        self._more_if_near_end()

    def jump_to(self, commit_hash: str) -> None:
        """Move to `commit_hash`, reading pages until it is loaded."""
        if commit_hash in self._index:
            self.move_to(self._index[commit_hash])
            return
        self._want = commit_hash
        if self.done:
            self._want = None
            self.app.notify(f"{short(commit_hash)} is not in this log", severity="warning")
        elif not self._loading:
            self._fetch(self.session.page)
        # a fetch under way: _append looks for it when the page arrives

    def action_move(self, step: int) -> None:
        self.move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(1, self.size.height - 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(len(self.rows) - 1)
        if not self.done:
            self._fetch(self.session.page)

    def action_mark(self) -> None:
        c = self.selected
        if c is None:
            return
        self.marked = None if self.marked == c.commit_hash else c.commit_hash
        self.refresh()
        if self.marked:
            self.app.notify(f"marked {short(self.marked)}: move to another commit, press d")

    def on_click(self, event: Click) -> None:
        self.move_to(int(self.scroll_y) + event.y)

    # -- drawing ----------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _line(self, index: int) -> Text:
        if index >= len(self.rows):
            return Text("  … loading" if self._loading else "  … more below", style="dim")
        row = self.rows[index]
        c = row.commit
        text = Text(no_wrap=True, overflow="crop")
        is_mark = c is not None and c.commit_hash == self.marked
        text.append("M" if is_mark else " ", self._style("log--mark") if is_mark else "")
        in_line = c is not None and c.commit_hash in self._ancestry
        text.append(row.graph, self._style("log--graph") if in_line else "")
        if c is None or row.entry is None:
            return text
        text.append(" ")
        text.append(short(c.commit_hash), self._style("log--hash"))
        if row.entry.refs:
            labels = ", ".join(row.entry.refs)
            style = "log--head" if labels.startswith("HEAD") else "log--refs"
            text.append(f" ({labels})", self._style(style))
        if row.entry.pruned:
            text.append(f" [{row.entry.pruned}]", "dim")
        tail = Text(no_wrap=True)
        if c.metrics:
            tail.append("  " + metric_text(c.metrics), self._style("log--metrics"))
        if row.entry.experiments:
            names = ", ".join(n for _, n in row.entry.experiments)
            tail.append(f"  [{names}]", self._style("log--experiment"))
        subject = " " + first_line(c.message)
        room = self.size.width - cell_len(text.plain) - cell_len(tail.plain)
        keep = max(MIN_SUBJECT, room - 1)
        if cell_len(subject) > room and len(subject) > keep:  # give way: metrics stay in sight
            subject = subject[:keep] + "…"
        text.append(subject)
        text.append_text(tail)
        return text

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = int(self.scroll_y) + y
        base = self.rich_style
        if index > len(self.rows) or (index == len(self.rows) and self.done):
            return Strip.blank(width, base)
        text = self._line(index)
        row = self.rows[index] if index < len(self.rows) else None
        if row is not None and row.commit is not None and self._ancestry:
            if row.commit.commit_hash not in self._ancestry:
                text.stylize(self._style("log--other"))
        elif row is not None and row.commit is None:
            text.stylize(self._style("log--other"))
        if index == self.cursor and row is not None:
            text.pad_right(max(0, width - cell_len(text.plain)))
            text.stylize(self._style("log--cursor"))
        text.stylize_before(base)
        strip = Strip(text.render(self.app.console), cell_len(text.plain))
        return strip.crop_extend(0, width, base)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        height = max(1, self.size.height)
        if not self.done and new_value + 3 * height >= len(self.rows):  # scrolled near the end
            self._fetch(self.session.page)

    def on_resize(self) -> None:
        self._resize()
        self._more_if_near_end()

"""A scrollable page of text: a model file of a commit (config.json, a tokenizer file, ...)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from coral.tui.session import Session, start_job

MAX_SHOWN = 256 << 10  # bytes of a file shown; the rest is summarised


def file_text(data: bytes) -> str:
    """The file as text, or a line saying it is binary; long files are cut at MAX_SHOWN."""
    try:
        text = data[:MAX_SHOWN].decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(data)} bytes)"
    if len(data) > MAX_SHOWN:
        text += f"\n… {len(data) - MAX_SHOWN} more bytes"
    return text


class FileScreen(Screen[None]):
    """The model file `path` of commit `ref`."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "back")]
    DEFAULT_CSS = """
    FileScreen #file-title { height: 1; padding: 0 1; background: $boost; }
    FileScreen VerticalScroll { height: 1fr; }
    """

    def __init__(self, session: Session, ref: str, path: str, title: str) -> None:
        super().__init__()
        self.session = session
        self.ref = ref
        self.path = path
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="file-title", markup=False)
        with VerticalScroll():
            yield Static("reading…", id="file-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        path, ref = self.path, self.ref

        def work() -> str:
            files = self.session.call(lambda repo: repo.get_files(ref))
            return file_text(files.get(path, b""))

        start_job(self, work, self.query_one("#file-text", Static).update, group="file")

"""One tensor at two (or more) commits, side by side: statistics and a histogram each, drawn on
shared bins and one height scale so the distributions compare at a glance."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from coral.porcelain.compare import TensorVersions
from coral.porcelain.history import TensorDetail
from coral.tui.format import first_line, fmt_num, fmt_shape, human_bytes, short
from coral.tui.histogram import histogram_lines, resample

STAT_KEYS = ("elements", "mean", "std", "min", "max", "zeros", "nonfinite", "l2_norm")


def version_text(
    ref: str, detail: TensorDetail | None, *, width: int, scale: int, height: int = 6
) -> Text:
    """One side: which commit, the tensor's shape, dtype, storage, statistics, histogram."""
    text = Text()
    if detail is None:
        text.append(f"{ref}\n", "bold")
        text.append("not in this commit", "dim")
        return text
    c, e = detail.commit, detail.entry
    head = Text(no_wrap=True, overflow="ellipsis")
    if ref != short(c.commit_hash):
        head.append(f"{ref} ", "bold")
    head.append(short(c.commit_hash), "bold yellow")
    head.append(f" {first_line(c.message)}")
    head.truncate(width + 2, overflow="ellipsis")
    text.append_text(head)
    text.append("\n")
    text.append(f"{fmt_shape(e.shape)} {e.dtype} {human_bytes(e.nbytes)}\n")
    if detail.stored is not None:
        s = detail.stored
        text.append(
            f"stored {human_bytes(s.stored_bytes)} {s.encoding} depth {s.chain_depth}\n", "dim"
        )
    for key in STAT_KEYS:
        if key in detail.values:
            text.append(f"{key:<10}", "bold")
            text.append(f" {fmt_num(detail.values[key])}\n")
    counts, edges = detail.histogram
    for line in histogram_lines(counts, edges, width=width, height=height, scale=scale):
        text.append(line + "\n", "cyan")
    text.rstrip()
    return text


class VersionsView(Horizontal):
    """Panels for each ref of a `TensorVersions`, equal widths."""

    DEFAULT_CSS = """
    VersionsView { height: auto; }
    VersionsView > .version { width: 1fr; padding: 0 1; border-left: vkey $panel; height: auto; }
    VersionsView > .version:first-child { border-left: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.versions: TensorVersions | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="version")
        yield Static("", classes="version")

    def show(self, versions: TensorVersions) -> None:
        self.versions = versions
        panels = list(self.query(".version").results(Static))
        width = max(8, (self.size.width or 80) // max(1, len(panels)) - 4)
        bins = min(width, max(1, len(versions.edges) - 1)) if versions.edges else width
        scale = 0
        for d in versions.versions:
            if d is not None and d.histogram[0]:
                scale = max(scale, max(resample(d.histogram[0], bins)))
        for panel, ref, detail in zip(panels, versions.refs, versions.versions, strict=False):
            panel.update(version_text(ref, detail, width=bins, scale=scale))

    def on_resize(self) -> None:
        if self.versions is not None:
            self.show(self.versions)

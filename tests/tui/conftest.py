"""Driving the browser headless with textual's pilot, and saving SVG snapshots of its screens
under test-artifacts/tui/ (git-ignored) for people to look at; tests assert on their text."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from coral.tui.app import BrowseApp

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "tui"
Scenario = Callable[[BrowseApp, Pilot[None]], Awaitable[None]]


async def settle(app: BrowseApp, pilot: Pilot[None], rounds: int = 4) -> None:
    """Let workers finish and their results reach the screen (a few rounds: one result can
    start the next job, e.g. a page of the log, then the detail of its first commit)."""
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def drive(app: BrowseApp, scenario: Scenario, size: tuple[int, int] = (80, 24)) -> None:
    """Run `scenario(app, pilot)` against the app at `size`, after the first screen settled."""

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            await scenario(app, pilot)

    asyncio.run(run())


def snapshot(app: BrowseApp, name: str) -> str:
    """Save the screen as test-artifacts/tui/NAME.svg; returns its text (one line per row)."""
    svg = app.export_screenshot(title=name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.svg").write_text(svg, encoding="utf-8")
    return svg_text(svg)


def svg_text(svg: str) -> str:
    """The characters an SVG screenshot draws, row by row, each at its column."""
    rows: dict[float, dict[int, str]] = {}
    cell = 12.2  # textual's character width in its SVGs
    pattern = (
        r'<text class="[^"]*-r\d+" x="([\d.]+)" y="([\d.]+)" textLength="[\d.]+"[^>]*>(.*?)</text>'
    )
    for m in re.finditer(pattern, svg, re.S):
        x, y = float(m.group(1)), float(m.group(2))
        text = html.unescape(m.group(3)).replace("\xa0", " ")
        line = rows.setdefault(y, {})
        start = round(x / cell)
        for i, ch in enumerate(text):
            line[start + i] = ch
    out = []
    for _, line in sorted(rows.items()):
        width = max(line) + 1 if line else 0
        out.append("".join(line.get(i, " ") for i in range(width)).rstrip())
    return "\n".join(out)


def screen_text(app: BrowseApp) -> str:
    return svg_text(app.export_screenshot())

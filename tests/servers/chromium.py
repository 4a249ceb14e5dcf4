"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for tests that render HTML.

    from tests.servers.chromium import chromium_browser

    with chromium_browser() as browser:
        page = browser.new_page()
        page.goto(path.as_uri())

Skips the test with the reason when Playwright or Chromium is missing; fails instead when CI=true,
so a CI run never passes by skipping. Only loopback and file:/data: URLs are meant to be visited:
the browser is started with its background networking switched off.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: headless Chromium is required)")
    pytest.skip(reason)


def chromium_path() -> str:
    """Path of the Chromium executable, or a skip (a failure under CI) saying how to install it."""
    env = os.environ.get("CORAL_CHROMIUM")
    for candidate in ((env,) if env else ()) + _CANDIDATES:
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    _unavailable("Chromium is not installed: apt-get install -y chromium")
    raise AssertionError("unreachable")


@contextmanager
def chromium_browser(**launch_kwargs: Any) -> Iterator[Any]:
    """Yield a Playwright `Browser` running headless Chromium; closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install 'coral-vcs[test]'")
        raise AssertionError("unreachable") from None
    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True, **launch_kwargs
        )
        try:
            yield browser
        finally:
            browser.close()

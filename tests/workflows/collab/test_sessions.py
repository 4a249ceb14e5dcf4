"""The collaboration commands through a real `coral` process, and on the dashboard's commit
page (a real server on 127.0.0.1, read over HTTP and in headless Chromium)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from coral.version_control.repository import Repository
from tests.workflows.collab.conftest import Invoke, ok


def _run(repo: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORAL_USER": user, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_comment_review_audit_in_a_real_process(repo_path: Path) -> None:
    assert _run(repo_path, "ana", "review", "request", "tune", "-r", "bo").returncode == 0
    assert _run(repo_path, "bo", "comment", "tune", "-m", "head only: fine").returncode == 0
    mine = _run(repo_path, "ana", "review", "approve", "tune")
    assert mine.returncode == 1 and mine.stdout == ""
    lines = mine.stderr.splitlines()
    assert lines[0].startswith("error: ana requested review #1") and lines[1].startswith("hint:")
    assert "Traceback" not in mine.stderr
    done = _run(repo_path, "bo", "review", "approve", "tune", "-m", "LGTM")
    assert done.returncode == 0 and "is approved" in done.stdout
    shown = _run(repo_path, "ana", "show", "tune").stdout
    assert "Review: approved by bo (#1, requested by ana)" in shown
    assert "head only: fine" in shown
    audit = _run(repo_path, "ana", "audit", "--limit", "3", "--json")
    assert [(e["actor"], e["action"]) for e in json.loads(audit.stdout)] == [
        ("bo", "review.approve"),
        ("bo", "comment.add"),
        ("ana", "review.request"),
    ]
    table = _run(repo_path, "ana", "audit").stdout
    assert "review.approve" in table and all(len(line) <= 80 for line in table.splitlines())


def test_dashboard_commit_page_shows_comments_and_review(
    repo_path: Path, coral: Invoke, coral_as: Invoke
) -> None:
    pytest.importorskip("fastapi", reason="the dashboard needs the `web` extra")
    from coral.web.app import create_app
    from coral.web.server import background_server
    from tests.servers.chromium import chromium_browser

    ok(coral("review", "request", "tune", "-r", "bo"))
    ok(coral_as("bo", "review", "reject", "tune", "-m", "bias too"))
    ok(coral_as("bo", "comment", "tune", "-m", "<b>not bold</b>", "-m", "second"))
    tip = json.loads(ok(coral("show", "tune", "--json")))["commit_hash"]
    repo = Repository(repo_path, shared_staging=True)
    try:
        with background_server(create_app(repo)) as url:
            with urllib.request.urlopen(f"{url}/commit/tune", timeout=60) as response:
                html = response.read().decode()
            assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # escaped, never markup
            with urllib.request.urlopen(f"{url}/commit/main", timeout=60) as response:
                assert 'id="comments"' not in response.read().decode()  # none there
            with chromium_browser() as browser:
                page = browser.new_page()
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.goto(f"{url}/commit/{tip}")
                page.wait_for_load_state("load")
                assert page.locator("#review .badge").inner_text() == "rejected"
                assert "requested by ana" in page.locator("#review").inner_text()
                comments = page.locator("#comments .comment")
                assert comments.count() == 1
                text = comments.first.inner_text()
                assert "#1" in text and "bo" in text and "<b>not bold</b>" in text
                assert "second" in text
                assert errors == []
                page.close()
    finally:
        repo.close()

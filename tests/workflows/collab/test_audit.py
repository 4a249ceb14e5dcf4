"""`coral audit`: every ref change, push, pull, fetch, publish and gc is recorded with its
actor and outcome; filters; 80 columns; an audit write that fails never fails the command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from coral.version_control.repository import Repository
from tests.workflows.collab.conftest import Invoke, assert_user_error, model, ok


def _entries(coral: Invoke, *args: str) -> list[dict]:
    return json.loads(ok(coral("audit", "--json", *args)))


def test_ref_changes_are_audited_with_old_and_new(coral: Invoke, coral_as: Invoke) -> None:
    made = _entries(coral)  # the fixture: init, import, checkout -b, import
    assert {e["actor"] for e in made} == {"ana"}
    assert set(made[0]) == {"id", "at", "actor", "action", "target", "outcome", "detail"}
    main = json.loads(ok(coral("show", "main", "--json")))["commit_hash"]
    tune = json.loads(ok(coral("show", "tune", "--json")))["commit_hash"]
    assert [(e["action"], e["target"], e["detail"]["old"], e["detail"]["new"]) for e in made] == [
        ("ref.update", "refs/heads/tune", main, tune),  # the fine-tune's commit
        ("ref.update", "HEAD", main, main),  # checkout tune
        ("ref.create", "refs/heads/tune", None, main),
        ("ref.create", "refs/heads/main", None, main),
    ]
    ok(coral_as("bo", "tag", "v1", "main"))
    ok(coral_as("bo", "tag", "-d", "v1"))
    ok(coral_as("bo", "checkout", "main"))
    ok(coral_as("bo", "branch", "old", "main"))
    ok(coral_as("bo", "branch", "-d", "old"))
    ok(coral_as("bo", "merge", "tune"))  # a fast-forward of main
    ok(coral_as("bo", "checkout", main))  # detached
    got = [
        (e["action"], e["target"], e["detail"]["old"], e["detail"]["new"])
        for e in _entries(coral, "--actor", "bo")
    ]
    assert got == [
        ("ref.update", "HEAD", tune, main),
        ("ref.update", "refs/heads/main", main, tune),
        ("ref.delete", "refs/heads/old", main, None),
        ("ref.create", "refs/heads/old", None, main),
        ("ref.update", "HEAD", tune, main),
        ("ref.delete", "refs/tags/v1", main, None),
        ("ref.create", "refs/tags/v1", None, main),
    ]
    assert all(e["outcome"] == "ok" for e in _entries(coral))
    # filters
    assert {e["action"] for e in _entries(coral, "--action", "ref")} == {
        "ref.create",
        "ref.update",
        "ref.delete",
    }
    assert len(_entries(coral, "--action", "ref.delete")) == 2
    assert len(_entries(coral, "--limit", "3")) == 3
    assert _entries(coral, "--since", "1h") == _entries(coral)
    assert _entries(coral, "--since", "2999-01-01") == []
    assert len(_entries(coral, "--since", "2000-01-01T00:00")) == 11
    assert_user_error(coral("audit", "--since", "yesterday-ish"), "yesterday-ish", "2h")
    assert_user_error(coral("audit", "--limit", "0"), "--limit")
    # the table fits 80 columns and names each entry's actor, action and target
    table = ok(coral("audit"))
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "bo" in table and "ref.delete" in table and "tags/v1" in table
    assert f"{main[:10]}→{tune[:10]}" in table
    assert ok(coral("audit", "--actor", "nobody")).strip() == "no audit entries match"


def test_push_fetch_pull_gc_and_publish_are_audited(
    coral: Invoke, coral_as: Invoke, tmp_path: Path
) -> None:
    url = (tmp_path / "remote").as_uri()
    tune = json.loads(ok(coral("show", "tune", "--json")))["commit_hash"]
    ok(coral("remote", "add", "origin", url))
    assert_user_error(coral("fetch"), "holds no Coral repository")  # audited as failed
    ok(coral("push", "origin", "tune"))
    clone = tmp_path / "clone"
    ok(coral_as("bo", "clone", url, str(clone), repo=None))
    ok(coral_as("bo", "fetch", "origin", repo=clone))
    # bo's history diverges from ana's: ana's push is refused (non-fast-forward) ...
    with Repository(clone) as theirs:
        theirs.add_all_weights(model(5))
        theirs.commit("bo's change")
    ok(coral_as("bo", "push", "origin", "tune", repo=clone))
    ok(coral("import", str(tmp_path / "base.safetensors"), "-m", "back to base"))
    assert coral("push", "origin", "tune").exit_code == 1
    # ... and so is ana's pull (diverged)
    assert coral("pull", "origin", "tune").exit_code == 1
    ok(coral("fetch"))
    ok(coral("gc"))
    ok(coral("gc", "--dry-run"))  # changes nothing: not audited
    ok(coral("publish", "local", str(tmp_path / "out"), "--ref", "main"))

    mine = [e for e in _entries(coral) if not e["action"].startswith("ref.")]
    assert [(e["action"], e["outcome"]) for e in mine] == [
        ("publish", "ok"),
        ("gc", "ok"),
        ("fetch", "ok"),
        ("pull", "failed"),  # a pull fetches: one entry, for the pull
        ("push", "failed"),
        ("push", "ok"),
        ("fetch", "failed"),
    ]
    assert {e["actor"] for e in mine} == {"ana"}
    published, gc, _, pulled, refused, pushed, empty = mine
    assert "holds no Coral repository" in empty["detail"]["error"]
    assert pushed["target"] == "origin" and pushed["detail"]["url"] == url
    assert pushed["detail"]["refs"] == {"heads/tune": [None, tune]}
    assert "non-fast-forward" in refused["detail"]["errors"][0]
    assert "diverged" in pulled["detail"]["errors"][0]
    assert set(gc["detail"]) == {"removed", "freed_bytes"}
    assert published["target"].startswith("local:")
    main = json.loads(ok(coral("show", "main", "--json")))["commit_hash"]
    assert published["detail"]["commit"] == main
    # in the clone: bo's clone (a pull), fetch and push, and the refs they moved
    theirs = json.loads(ok(coral_as("bo", "audit", "--json", repo=clone)))
    assert [e["action"] for e in theirs if not e["action"].startswith("ref.")] == [
        "push",
        "fetch",
        "pull",
    ]
    assert {e["actor"] for e in theirs} == {"bo"}
    assert any(e["action"] == "ref.create" and e["target"] == "refs/heads/tune" for e in theirs)
    table = ok(coral("audit", "--action", "push"))
    assert "push failed" in table and all(len(line) <= 80 for line in table.splitlines())


def test_an_audit_write_that_fails_never_fails_the_operation(
    coral: Invoke, repo_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = sqlite3.connect(repo_path / ".coral" / "coral.db")
    db.execute(
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    db.commit()
    db.close()
    before = len(_entries(coral))
    ok(coral("branch", "side", "main"))
    ok(coral("comment", "tune", "-m", "still works"))
    ok(coral("review", "request", "tune"))
    assert len(_entries(coral)) == before  # nothing could be audited ...
    with Repository(repo_path) as repo:  # ... but every operation happened
        assert repo.refs.branch_tip("side") == repo.resolve_ref("main")
        assert repo.reflog("side")[0].message.startswith("branch: created")
    assert [c["text"] for c in json.loads(ok(coral("comment", "tune", "--json")))["comments"]] == [
        "still works"
    ]
    assert json.loads(ok(coral("review", "show", "tune", "--json")))["state"] == "open"
    assert "audit entry ref.create on refs/heads/side not written" in caplog.text

"""`coral comment`: paragraphs, listing, deleting your own, shown by `coral show`."""

from __future__ import annotations

import json

from tests.workflows.collab.conftest import Invoke, assert_user_error, ok


def test_comment_list_show_and_delete(coral: Invoke, coral_as: Invoke) -> None:
    made = json.loads(ok(coral("comment", "tune", "-m", "head only", "-m", "ok?", "--json")))
    assert set(made) == {"id", "commit_hash", "author", "at", "text"}
    assert made["author"] == "ana" and made["text"] == "head only\n\nok?"
    tip = json.loads(ok(coral("show", "tune", "--json")))["commit_hash"]
    assert made["commit_hash"] == tip
    assert ok(coral_as("bo", "comment", "tune", "-m", "looks fine")).startswith(
        f"Commented on {tip[:10]} (#2)"
    )
    ok(coral("comment", "main", "-m", "the base"))

    listed = ok(coral("comment", "tune"))
    assert listed.splitlines()[0] == f"2 comments on {tip[:10]} tuned head"
    assert "#1 ana" in listed and "    head only" in listed and "#2 bo" in listed
    assert "the base" not in listed
    data = json.loads(ok(coral("comment", "tune", "--json")))
    assert data["commit_hash"] == tip
    assert [c["id"] for c in data["comments"]] == [1, 2]

    shown = ok(coral("show", "tune"))
    assert "Comments (2):" in shown and "looks fine" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert [c["text"] for c in json.loads(ok(coral("show", "tune", "--json")))["comments"]] == [
        "head only\n\nok?",
        "looks fine",
    ]

    # only its author deletes a comment
    assert_user_error(coral("comment", "--delete", "2"), "#2", "bo", "you are ana")
    assert ok(coral_as("bo", "comment", "--delete", "2")).strip() == (
        f"Deleted comment #2 on {tip[:10]}"
    )
    assert [c["id"] for c in json.loads(ok(coral("comment", "tune", "--json")))["comments"]] == [1]
    assert_user_error(coral("comment", "--delete", "2"), "no comment #2")
    entries = json.loads(ok(coral("audit", "--action", "comment", "--json")))
    assert [(e["action"], e["actor"], e["detail"]["id"]) for e in entries] == [
        ("comment.delete", "bo", 2),
        ("comment.add", "ana", 3),
        ("comment.add", "bo", 2),
        ("comment.add", "ana", 1),
    ]


def test_comment_mistakes(coral: Invoke) -> None:
    assert ok(coral("comment")).startswith("no comments on ")  # HEAD, nothing yet
    assert_user_error(coral("comment", "nope", "-m", "x"), "nope")
    assert_user_error(coral("comment", "tune", "-m", "  "), "empty")
    assert_user_error(coral("comment", "--delete", "1", "-m", "x"), "--delete")
    assert json.loads(ok(coral("comment", "tune", "--json")))["comments"] == []

"""`coral review request|approve|reject|list|show`: GitHub's rules, who and when recorded."""

from __future__ import annotations

import json

from tests.workflows.collab.conftest import Invoke, assert_user_error, ok


def test_request_reject_approve_cycle(coral: Invoke, coral_as: Invoke) -> None:
    out = ok(coral("review", "request", "tune", "-r", "bo", "-r", "cy", "-m", "head only"))
    tip = json.loads(ok(coral("show", "tune", "--json")))["commit_hash"]
    assert out.strip() == f"Requested review #1 of {tip[:10]} (tune) from bo, cy"
    assert "Review: open, waiting on bo, cy (#1, requested by ana)" in ok(coral("show", "tune"))
    # one open review per commit
    assert_user_error(coral("review", "request", "tune"), "open already", "#1")
    # the requester cannot review their own request, unless they say so
    assert_user_error(coral("review", "approve", "tune"), "ana requested review #1", "--self")
    # a rejection needs a reason
    assert_user_error(coral_as("bo", "review", "reject", "tune"), "reason")

    rejected = json.loads(
        ok(coral_as("bo", "review", "reject", "tune", "-m", "bias too", "--json"))
    )
    assert rejected["state"] == "rejected" and rejected["rejected_by"] == ["bo"]
    assert rejected["waiting_on"] == ["cy"]
    # another approval does not lift bo's rejection; bo's own later approval does
    assert "is rejected" in ok(coral_as("cy", "review", "approve", "tune"))
    assert "is approved" in ok(coral_as("bo", "review", "approve", "tune", "-m", "fixed"))

    review = json.loads(ok(coral("review", "show", "tune", "--json")))
    assert review["state"] == "approved" and review["commit_hash"] == tip
    (only,) = review["reviews"]
    assert only["requested_by"] == "ana" and only["reviewers"] == ["bo", "cy"]
    assert [(v["reviewer"], v["verdict"], v["message"]) for v in only["verdicts"]] == [
        ("bo", "rejected", "bias too"),
        ("cy", "approved", ""),
        ("bo", "approved", "fixed"),
    ]
    assert all(v["at"] >= only["requested_at"] for v in only["verdicts"])
    shown = ok(coral("review", "show", "tune"))
    assert "requested by ana from bo, cy" in shown and "rejected by bo" in shown
    assert "        " not in shown.splitlines()[0]
    assert "Review: approved by bo, cy (#1, requested by ana)" in ok(coral("show", "tune"))
    assert json.loads(ok(coral("show", "tune", "--json")))["review"]["state"] == "approved"

    # an approved commit can be asked about again: a new review
    ok(coral("review", "request", "tune", "-m", "after the rebase"))
    assert json.loads(ok(coral("review", "show", "tune", "--json")))["state"] == "open"


def test_self_review_and_unrequested_verdicts(coral: Invoke, coral_as: Invoke) -> None:
    ok(coral("review", "request", "tune"))
    mine = json.loads(ok(coral("review", "approve", "tune", "--self", "--json")))
    assert mine["state"] == "approved"
    assert mine["verdicts"][0]["self_review"] is True
    assert "(own request)" in ok(coral("review", "show", "tune"))
    # a verdict nobody asked for is recorded too (no requester: no self-review rule)
    unasked = json.loads(ok(coral_as("bo", "review", "reject", "main", "-m", "no", "--json")))
    assert unasked["requested_by"] is None and unasked["state"] == "rejected"


def test_list_and_mistakes(coral: Invoke, coral_as: Invoke) -> None:
    assert ok(coral("review", "list")).strip() == "no reviews"
    ok(coral("review", "request", "main", "-r", "bo"))
    ok(coral("review", "request", "tune", "-r", "bo"))
    ok(coral_as("bo", "review", "approve", "main"))
    listed = ok(coral("review", "list"))
    assert all(len(line) <= 80 for line in listed.splitlines())
    lines = [line.split() for line in listed.splitlines() if line.strip()]
    assert lines[0][:4] == ["#", "commit", "ref", "state"]
    assert [row[2:4] for row in lines[2:]] == [["tune", "open"], ["main", "approved"]]
    data = json.loads(ok(coral("review", "list", "--state", "open", "--json")))
    assert [r["ref"] for r in data] == ["tune"]
    assert {
        "id",
        "commit_hash",
        "ref",
        "state",
        "requested_by",
        "requested_at",
        "reviewers",
        "message",
        "verdicts",
        "approved_by",
        "rejected_by",
        "waiting_on",
        "updated_at",
    } == set(data[0])
    assert ok(coral("review", "list", "--state", "rejected")).strip() == "no rejected reviews"
    assert_user_error(coral("review", "list", "--state", "merged"), "merged", "open")
    for args in (("request", "nope"), ("approve", "nope"), ("reject", "nope", "-m", "x")):
        assert_user_error(coral("review", *args), "nope")
    assert_user_error(coral("review", "show", "nope"), "nope")
    assert ok(coral("review", "show", "HEAD~1")).splitlines()[0].endswith("(main): approved")
    entries = json.loads(ok(coral("audit", "--action", "review", "--json")))
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("review.approve", "bo"),
        ("review.request", "ana"),
        ("review.request", "ana"),
    ]

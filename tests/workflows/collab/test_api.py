"""The porcelain and storage API behind `coral comment`, `coral review` and `coral audit`."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from coral.errors import CoralError, RefNotFoundError
from coral.porcelain.collab import (
    add_comment,
    approve,
    audit_log,
    collaboration,
    delete_comment,
    list_comments,
    list_reviews,
    parse_since,
    reject,
    request_review,
    reviews_of,
)
from coral.version_control.audit import AuditLog, audited, current_actor
from coral.version_control.repository import Repository
from coral.version_control.reviews import ReviewOpenError, SelfReviewError
from tests.workflows.collab.conftest import model


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("CORAL_USER", "ana")
    r = Repository.init(tmp_path / "r")
    r.add_all_weights(model(0))
    r.commit("base")
    yield r
    r.close()


def test_current_actor_env_then_config_then_os_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORAL_AUTHOR", raising=False)
    monkeypatch.setenv("CORAL_USER", "ana")
    assert current_actor({"user": {"name": "cy"}}) == "ana"
    monkeypatch.delenv("CORAL_USER")
    monkeypatch.setenv("CORAL_AUTHOR", "dee")  # the commit author, when no CORAL_USER
    assert current_actor({"user": {"name": "cy"}}) == "dee"
    monkeypatch.delenv("CORAL_AUTHOR")
    assert current_actor({"user": {"name": "cy"}}) == "cy"
    assert current_actor({}) == current_actor() == getpass.getuser()
    # ref changes take the repository's config
    with Repository.init(tmp_path / "r") as repo:
        with repo.config_path.open("a", encoding="utf-8") as f:
            f.write('\n[user]\nname = "cy"\n')
        repo.add_all_weights(model(0))
        repo.commit("base")
        assert [e.actor for e in AuditLog(repo.database).entries()] == ["cy"]


def test_a_ref_change_and_its_audit_entry_share_one_transaction(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "r") as repo:
        with pytest.raises(RuntimeError), repo.database.transaction() as tx:
            repo.refs.create_branch(tx, "x", "ab" * 32, "branch: test")
            assert [e.target for e in AuditLog(repo.database).entries()] == ["refs/heads/x"]
            raise RuntimeError("abort")
        assert repo.refs.branch_tip("x") is None
        assert AuditLog(repo.database).entries() == []  # rolled back with the ref
        repo.add_all_weights(model(0))
        repo.commit("base")  # the table made anew, outside that transaction
        assert [e.action for e in AuditLog(repo.database).entries()] == ["ref.create"]


def test_audited_records_failures_and_reraises(repo: Repository) -> None:
    with pytest.raises(CoralError), audited(repo.database, "gc", target="x") as note:
        note.detail["step"] = 1
        raise CoralError("disk on fire", hint="x")
    with audited(repo.database, "push", actor="bo") as note:
        note.outcome = "denied"
    push, gc = AuditLog(repo.database).entries(limit=2)
    assert (gc.outcome, gc.detail, gc.actor) == (
        "failed",
        {"step": 1, "error": "disk on fire"},
        "ana",
    )
    assert (push.outcome, push.actor) == ("denied", "bo")


def test_comments_api(repo: Repository) -> None:
    c = add_comment(repo, "HEAD", ["one", "", " two "])
    assert c.text == "one\n\ntwo" and c.author == "ana"
    other = add_comment(repo, "main", ["mine"], author="bo")
    assert [x.id for x in list_comments(repo, "main").comments] == [c.id, other.id]
    with pytest.raises(CoralError, match="written by bo"):
        delete_comment(repo, other.id)
    assert delete_comment(repo, other.id, actor="bo") == other
    with pytest.raises(CoralError, match="no comment"):
        delete_comment(repo, other.id, actor="bo")
    with pytest.raises(RefNotFoundError):
        add_comment(repo, "nope", ["x"])
    assert collaboration(repo, repo.resolve_ref("HEAD")).comments == [c]


def test_reviews_api(repo: Repository) -> None:
    head = repo.resolve_ref("HEAD")
    assert collaboration(repo, head).review is None
    r = request_review(repo, "main", reviewers=["bo", "bo", " "], message="please")
    assert (r.state, r.requested_by, r.reviewers, r.commit_hash) == ("open", "ana", ["bo"], head)
    with pytest.raises(ReviewOpenError):
        request_review(repo, "HEAD")
    with pytest.raises(SelfReviewError):
        approve(repo, "main")
    with pytest.raises(CoralError, match="reason"):
        reject(repo, "main", " ", reviewer="bo")
    r = reject(repo, "main", "no", reviewer="bo")
    assert (r.state, r.rejected_by, r.waiting_on) == ("rejected", ["bo"], [])
    r = approve(repo, "main", reviewer="cy")
    assert r.state == "rejected" and r.approved_by == ["cy"]  # bo's rejection stands
    r = approve(repo, "main", reviewer="bo")
    assert r.state == "approved"
    assert [v.verdict for v in reviews_of(repo, "HEAD").reviews[0].verdicts] == [
        "rejected",
        "approved",
        "approved",
    ]
    assert [x.id for x in list_reviews(repo, "approved")] == [r.id]
    assert list_reviews(repo, "open") == []
    with pytest.raises(CoralError, match="unknown review state"):
        list_reviews(repo, "merged")
    assert collaboration(repo, head).review == r


def test_audit_log_filters_and_since(repo: Repository) -> None:
    repo.create_branch("b")
    add_comment(repo, "b", ["x"], author="bo")
    assert [e.action for e in audit_log(repo, actor="bo")] == ["comment.add"]
    assert [e.action for e in audit_log(repo, action="ref")] == ["ref.create", "ref.create"]
    assert len(audit_log(repo, limit=1)) == 1
    assert audit_log(repo, since="2999-01-01") == []
    assert len(audit_log(repo, since="5m")) == 3
    with pytest.raises(CoralError, match="at least 1"):
        audit_log(repo, limit=0)
    now = 1_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since("2h", now) == now - 7200
    assert parse_since("3 days", now) == now - 3 * 86400
    assert parse_since("1w", now) == now - 7 * 86400
    assert parse_since("1970-01-02T00:00:00+00:00") == 86400
    with pytest.raises(CoralError, match="date or a duration"):
        parse_since("soon")


def test_acting_as_names_who_a_server_acts_for(repo: Repository) -> None:
    from coral.version_control.audit import acting_as

    with acting_as("token:writer"):
        assert current_actor({"user": {"name": "cy"}}) == "token:writer"
        repo.create_branch("served")
    assert current_actor() == "ana"
    (entry,) = AuditLog(repo.database).entries(limit=1)
    assert (entry.actor, entry.target) == ("token:writer", "refs/heads/served")

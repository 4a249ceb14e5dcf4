"""Working together on a repository: comments on commits, reviews, and the audit log.

One function per user operation (`coral comment`, `coral review ...`, `coral audit`); the actor
is `current_actor()` (CORAL_USER, the config's `[user] name`, the OS user) unless given.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coral.errors import CoralError
from coral.version_control.audit import AuditEntry, AuditLog, current_actor
from coral.version_control.comments import Comment, CommentStore
from coral.version_control.objects import Commit
from coral.version_control.repository import Repository
from coral.version_control.reviews import APPROVED, REJECTED, STATES, Review, ReviewStore

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w|week)s?\s*$", re.I)
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
_SECONDS = {"s": 1, "sec": 1, "m": _MINUTE, "min": _MINUTE, "h": _HOUR, "hr": _HOUR}
_SECONDS.update({"d": _DAY, "day": _DAY, "w": 7 * _DAY, "week": 7 * _DAY})


@dataclass
class CommitComments:
    """The comments on one commit, oldest first."""

    commit: Commit
    comments: list[Comment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_hash": self.commit.commit_hash,
            "comments": [c.to_dict() for c in self.comments],
        }


@dataclass
class CommitReviews:
    """The reviews of one commit, newest first (the first is its current state)."""

    commit: Commit
    reviews: list[Review] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return self.reviews[0].state if self.reviews else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_hash": self.commit.commit_hash,
            "state": self.state,
            "reviews": [r.to_dict() for r in self.reviews],
        }


@dataclass
class Collaboration:
    """What `coral show` and the dashboard's commit page add to a commit."""

    comments: list[Comment]
    review: Review | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "comments": [c.to_dict() for c in self.comments],
            "review": self.review.to_dict() if self.review else None,
        }


def _me(repo: Repository, given: str | None) -> str:
    return given or current_actor(repo.config)


def _commit(repo: Repository, ref: str) -> Commit:
    return repo.read_commit(repo.resolve_ref(ref))  # RefNotFoundError with a hint


# -- comments ---------------------------------------------------------------------------------
def add_comment(
    repo: Repository, ref: str, paragraphs: Sequence[str], *, author: str | None = None
) -> Comment:
    """Comment on the commit `ref` names; each of `paragraphs` (`-m`) is one paragraph."""
    text = "\n\n".join(p.strip() for p in paragraphs if p.strip())
    if not text:
        raise CoralError(
            "the comment is empty", hint='write it with -m: coral comment REF -m "..."'
        )
    commit = _commit(repo, ref)
    return CommentStore(repo.database).add(commit.commit_hash, text, author=_me(repo, author))


def list_comments(repo: Repository, ref: str = "HEAD") -> CommitComments:
    """The comments on the commit `ref` names."""
    commit = _commit(repo, ref)
    return CommitComments(commit, CommentStore(repo.database).for_commit(commit.commit_hash))


def delete_comment(repo: Repository, comment_id: int, *, actor: str | None = None) -> Comment:
    """Delete comment `comment_id`; only its author may."""
    store = CommentStore(repo.database)
    me = _me(repo, actor)
    found = store.get(comment_id)
    if found is None:
        raise CoralError(
            f"no comment #{comment_id}", hint="list a commit's comments with `coral comment REF`"
        )
    if found.author != me:
        raise CoralError(
            f"comment #{comment_id} was written by {found.author}; you are {me}",
            hint="only its author can delete a comment (CORAL_USER or [user] name says who "
            "you are)",
        )
    deleted = store.delete(comment_id, actor=me)
    if deleted is None:  # deleted by its author in another process meanwhile
        raise CoralError(f"no comment #{comment_id}", hint="it was deleted meanwhile")
    return deleted


# -- reviews ----------------------------------------------------------------------------------
def request_review(
    repo: Repository,
    ref: str,
    *,
    reviewers: Iterable[str] = (),
    message: str = "",
    author: str | None = None,
) -> Review:
    """Ask for a review of the commit `ref` names (ReviewOpenError when one is open)."""
    commit = _commit(repo, ref)
    names = [r.strip() for r in reviewers if r.strip()]
    return ReviewStore(repo.database).request(
        commit.commit_hash, ref, author=_me(repo, author), reviewers=names, message=message
    )


def approve(
    repo: Repository,
    ref: str,
    *,
    message: str = "",
    allow_self: bool = False,
    reviewer: str | None = None,
) -> Review:
    """Approve the commit `ref` names (its latest review; SelfReviewError on your own request
    unless `allow_self`)."""
    commit = _commit(repo, ref)
    return ReviewStore(repo.database).give_verdict(
        commit.commit_hash,
        ref,
        reviewer=_me(repo, reviewer),
        verdict=APPROVED,
        message=message,
        allow_self=allow_self,
    )


def reject(
    repo: Repository,
    ref: str,
    reason: str,
    *,
    allow_self: bool = False,
    reviewer: str | None = None,
) -> Review:
    """Reject the commit `ref` names, saying why."""
    if not reason.strip():
        raise CoralError(
            "a rejection needs a reason",
            hint='say what to change: coral review reject REF -m "..."',
        )
    commit = _commit(repo, ref)
    return ReviewStore(repo.database).give_verdict(
        commit.commit_hash,
        ref,
        reviewer=_me(repo, reviewer),
        verdict=REJECTED,
        message=reason.strip(),
        allow_self=allow_self,
    )


def list_reviews(repo: Repository, state: str | None = None) -> list[Review]:
    """Every review, newest first; only those in `state` (open, approved, rejected)."""
    if state is not None and state not in STATES:
        raise CoralError(f"unknown review state {state!r}", hint=f"use one of {', '.join(STATES)}")
    return ReviewStore(repo.database).query(state)


def reviews_of(repo: Repository, ref: str = "HEAD") -> CommitReviews:
    """The reviews of the commit `ref` names, newest first."""
    commit = _commit(repo, ref)
    return CommitReviews(commit, ReviewStore(repo.database).for_commit(commit.commit_hash))


def collaboration(repo: Repository, commit_hash: str) -> Collaboration:
    """The comments and the current review of one commit (a full hash)."""
    return Collaboration(
        CommentStore(repo.database).for_commit(commit_hash),
        ReviewStore(repo.database).latest(commit_hash),
    )


# -- audit ------------------------------------------------------------------------------------
def audit_log(
    repo: Repository,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Audit entries newest first: `action` a verb or prefix (`ref`, `review.approve`),
    `since` a date or a duration back from now (`2h`, `7d`)."""
    if limit is not None and limit < 1:
        raise CoralError(f"--limit must be at least 1, not {limit}", hint="e.g. --limit 20")
    return AuditLog(repo.database).entries(
        action=action or None,
        actor=actor or None,
        since=parse_since(since) if since else None,
        limit=limit,
    )


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds of `text`: an ISO date or time (`2026-01-31`, `2026-01-31T12:00`, local
    time unless it says otherwise) or a duration back from now (`90s`, `30m`, `2h`, `7d`,
    `1w`)."""
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
        return (time.time() if now is None else now) - seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CoralError(
            f"cannot read {text!r} as a date or a duration",
            hint="write a date (2026-01-31, 2026-01-31T12:00) or a duration (30m, 2h, 7d, 1w)",
        ) from None
    return when.timestamp()  # naive: local time

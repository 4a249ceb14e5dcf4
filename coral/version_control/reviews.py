"""Reviews of commits, kept in the repository database (component `reviews`, schema 1).

A review is requested on a commit (by its author, naming reviewers or not); reviewers approve or
reject it, each verdict recorded with who and when. As on GitHub, a review's state follows each
reviewer's latest verdict: `rejected` while any reviewer's latest is a rejection, else
`approved` once anyone approved, else `open`; the author of a request may not review it unless
they say so (`allow_self`). Every request and verdict is audited (`review.request`,
`review.approve`, `review.reject`) in the same transaction.

Tables: `reviews (id, commit_id, ref, requested_by, requested_at, reviewers, message, state,
updated_at)` and `review_verdicts (id, review_id, reviewer, verdict, message, self_review, at)`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from coral.errors import CoralError
from coral.version_control.audit import record_safely
from coral.version_control.database import ComponentTables

COMPONENT = "reviews"
SCHEMA_VERSION = 1
OPEN, APPROVED, REJECTED = "open", "approved", "rejected"
STATES = (OPEN, APPROVED, REJECTED)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL,
    ref TEXT NOT NULL,
    requested_by TEXT,
    requested_at REAL NOT NULL,
    reviewers TEXT NOT NULL DEFAULT '[]',
    message TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_commit ON reviews (commit_id, id);
CREATE TABLE IF NOT EXISTS review_verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    review_id INTEGER NOT NULL,
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    self_review INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_verdicts_by_review ON review_verdicts (review_id, id);
"""
_REVIEW_COLUMNS = (
    "SELECT id, commit_id, ref, requested_by, requested_at, reviewers, message, state, "
    "updated_at FROM reviews"
)


class ReviewOpenError(CoralError):
    default_hint = "see it with `coral review show REF`; approve or reject it first"


class SelfReviewError(CoralError):
    default_hint = "ask someone else to review it, or pass --self to review your own request"


@dataclass(frozen=True)
class Verdict:
    """One reviewer's approval or rejection."""

    reviewer: str
    verdict: str  # APPROVED or REJECTED
    message: str
    at: float
    self_review: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "verdict": self.verdict,
            "message": self.message,
            "at": self.at,
            "self_review": self.self_review,
        }


@dataclass(frozen=True)
class Review:
    """A review of one commit: the request (None for `requested_by` when a reviewer gave a
    verdict unasked) and the verdicts, oldest first."""

    id: int
    commit_hash: str
    ref: str
    requested_by: str | None
    requested_at: float
    reviewers: list[str]
    message: str
    state: str
    updated_at: float
    verdicts: list[Verdict] = field(default_factory=list)

    def latest(self) -> dict[str, Verdict]:
        """Each reviewer's latest verdict."""
        return {v.reviewer: v for v in self.verdicts}

    @property
    def approved_by(self) -> list[str]:
        return [r for r, v in self.latest().items() if v.verdict == APPROVED]

    @property
    def rejected_by(self) -> list[str]:
        return [r for r, v in self.latest().items() if v.verdict == REJECTED]

    @property
    def waiting_on(self) -> list[str]:
        """Named reviewers who have given no verdict yet."""
        given = self.latest()
        return [r for r in self.reviewers if r not in given]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "commit_hash": self.commit_hash,
            "ref": self.ref,
            "state": self.state,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "reviewers": list(self.reviewers),
            "message": self.message,
            "updated_at": self.updated_at,
            "approved_by": self.approved_by,
            "rejected_by": self.rejected_by,
            "waiting_on": self.waiting_on,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def state_of(verdicts: list[Verdict]) -> str:
    """A review's state from its verdicts (each reviewer's latest counts)."""
    latest = {v.reviewer: v.verdict for v in verdicts}
    if REJECTED in latest.values():
        return REJECTED
    return APPROVED if APPROVED in latest.values() else OPEN


class ReviewStore(ComponentTables):
    """Request, approve, reject and list the reviews of a repository's commits."""

    component, schema_version, schema_sql = COMPONENT, SCHEMA_VERSION, _SCHEMA

    # -- writes -------------------------------------------------------------------------------
    def request(
        self,
        commit_hash: str,
        ref: str,
        *,
        author: str,
        reviewers: list[str] | None = None,
        message: str = "",
    ) -> Review:
        """Open a review of `commit_hash` (named `ref` by the requester); ReviewOpenError when
        one is open already."""
        self._ensure()
        now = time.time()
        names = list(dict.fromkeys(reviewers or []))
        with self.db.transaction() as tx:
            current = self._latest(tx, commit_hash)
            if current is not None and current.state == OPEN:
                raise ReviewOpenError(
                    f"a review of {commit_hash[:10]} is open already (#{current.id}, requested "
                    f"by {current.requested_by or 'nobody'})"
                )
            cur = tx.execute(
                "INSERT INTO reviews (commit_id, ref, requested_by, requested_at, reviewers, "
                "message, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (commit_hash, ref, author, now, json.dumps(names), message, OPEN, now),
            )
            review_id = int(cur.lastrowid or 0)
            record_safely(
                self.db,
                "review.request",
                actor=author,
                target=commit_hash,
                detail={"id": review_id, "ref": ref, "reviewers": names},
                conn=tx,
            )
            review = self._read(tx, review_id)
        assert review is not None
        return review

    def give_verdict(
        self,
        commit_hash: str,
        ref: str,
        *,
        reviewer: str,
        verdict: str,
        message: str = "",
        allow_self: bool = False,
    ) -> Review:
        """Approve or reject the latest review of `commit_hash` (one is made, unrequested, when
        there is none). The requester may not review their own request unless `allow_self`."""
        if verdict not in (APPROVED, REJECTED):
            raise ValueError(f"a verdict is {APPROVED!r} or {REJECTED!r}, not {verdict!r}")
        self._ensure()
        now = time.time()
        with self.db.transaction() as tx:
            review = self._latest(tx, commit_hash)
            own = review is not None and review.requested_by == reviewer
            if own and not allow_self:
                assert review is not None
                raise SelfReviewError(
                    f"{reviewer} requested review #{review.id} of {commit_hash[:10]} and "
                    "cannot review it"
                )
            if review is None:
                cur = tx.execute(
                    "INSERT INTO reviews (commit_id, ref, requested_by, requested_at, "
                    "reviewers, message, state, updated_at) VALUES (?, ?, NULL, ?, '[]', '', ?, ?)",
                    (commit_hash, ref, now, OPEN, now),
                )
                review = self._read(tx, int(cur.lastrowid or 0))
                assert review is not None
            tx.execute(
                "INSERT INTO review_verdicts (review_id, reviewer, verdict, message, "
                "self_review, at) VALUES (?, ?, ?, ?, ?, ?)",
                (review.id, reviewer, verdict, message, int(own), now),
            )
            verdicts = [*review.verdicts, Verdict(reviewer, verdict, message, now, own)]
            tx.execute(
                "UPDATE reviews SET state=?, updated_at=? WHERE id=?",
                (state_of(verdicts), now, review.id),
            )
            record_safely(
                self.db,
                "review.approve" if verdict == APPROVED else "review.reject",
                actor=reviewer,
                target=commit_hash,
                detail={"id": review.id, "ref": ref, "message": message, "self": own},
                conn=tx,
            )
            updated = self._read(tx, review.id)
        assert updated is not None
        return updated

    # -- reads --------------------------------------------------------------------------------
    def latest(self, commit_hash: str) -> Review | None:
        """The newest review of `commit_hash` (None when it was never reviewed)."""
        try:
            return self._latest(self.db.connection(), commit_hash)
        except sqlite3.OperationalError:  # no table yet: nothing reviewed
            return None

    def for_commit(self, commit_hash: str) -> list[Review]:
        """Every review of `commit_hash`, newest first."""
        return self._list(" WHERE commit_id=? ORDER BY id DESC", (commit_hash,))

    def query(self, state: str | None = None, limit: int | None = None) -> list[Review]:
        """Reviews newest first, only those in `state` when given."""
        if state is not None and state not in STATES:
            raise ValueError(f"a review state is one of {', '.join(STATES)}, not {state!r}")
        where = " WHERE state=?" if state else ""
        sql = where + " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return self._list(sql, (state,) if state else ())

    def _list(self, sql: str, params: tuple[Any, ...]) -> list[Review]:
        conn = self.db.connection()
        try:
            rows = conn.execute(_REVIEW_COLUMNS + sql, params).fetchall()
        except sqlite3.OperationalError:  # no table yet: nothing reviewed
            return []
        return [_review(r, self._verdicts(conn, int(r[0]))) for r in rows]

    def _latest(self, conn: sqlite3.Connection, commit_hash: str) -> Review | None:
        row = conn.execute(
            _REVIEW_COLUMNS + " WHERE commit_id=? ORDER BY id DESC LIMIT 1", (commit_hash,)
        ).fetchone()
        return _review(row, self._verdicts(conn, int(row[0]))) if row else None

    def _read(self, conn: sqlite3.Connection, review_id: int) -> Review | None:
        row = conn.execute(_REVIEW_COLUMNS + " WHERE id=?", (review_id,)).fetchone()
        return _review(row, self._verdicts(conn, review_id)) if row else None

    @staticmethod
    def _verdicts(conn: sqlite3.Connection, review_id: int) -> list[Verdict]:
        rows = conn.execute(
            "SELECT reviewer, verdict, message, at, self_review FROM review_verdicts "
            "WHERE review_id=? ORDER BY id",
            (review_id,),
        ).fetchall()
        return [Verdict(str(r[0]), str(r[1]), str(r[2]), float(r[3]), bool(r[4])) for r in rows]


def _review(row: Any, verdicts: list[Verdict]) -> Review:
    return Review(
        id=int(row[0]),
        commit_hash=str(row[1]),
        ref=str(row[2]),
        requested_by=row[3],
        requested_at=float(row[4]),
        reviewers=list(json.loads(row[5] or "[]")),
        message=str(row[6]),
        state=str(row[7]),
        updated_at=float(row[8]),
        verdicts=verdicts,
    )

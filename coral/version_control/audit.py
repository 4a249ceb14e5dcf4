"""The audit log: who did what to the repository, when, and whether it was allowed.

Kept in the repository database, table `audit_log` (component `audit`, schema 1), append-only:
`(id, at, actor, action, target, outcome, detail)`. `action` is a dotted verb such as
`ref.update`, `push`, `pull`, `fetch`, `publish`, `gc`, `review.approve`, `remote.read`;
`outcome` is `ok`, `denied` or `failed`; `detail` a JSON object (old and new commit of a ref,
the remote's URL without credentials, a token's *name*, never a secret).

>>> log = AuditLog(repo.database)
>>> log.record("push", actor="ana", target="origin", detail={"refs": {"main": "ab12..."}})
>>> [e.action for e in log.entries(limit=10)]

Operations record through `record_safely` or `audited`, which never let a failing audit write
fail the operation they describe (it is logged on the `coral.audit` logger instead); the actor
of a local command is `current_actor()`.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from coral.core.redact import redact_text
from coral.version_control.database import Database

log = logging.getLogger("coral.audit")
_ACTING_AS: ContextVar[str | None] = ContextVar("coral_audit_actor", default=None)
COMPONENT = "audit"
SCHEMA_VERSION = 1
OUTCOMES = ("ok", "denied", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
"""


@dataclass(frozen=True)
class AuditEntry:
    """One audited event."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


class AuditLog:
    """Append to and read the audit log of one repository database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready = False

    def _ensure(self, conn: sqlite3.Connection | None = None) -> None:
        if self._ready:
            return
        self.db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)
        # made inside a caller's transaction, the table goes if that transaction rolls back
        self._ready = conn is None or not conn.in_transaction

    def record(
        self,
        action: str,
        *,
        actor: str,
        target: str = "",
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Append one entry (inside `conn`'s transaction when given, so it commits with the
        change it describes). Credentials in `target` and string details are redacted."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        self._ensure(conn)
        row = (
            time.time(),
            actor,
            action,
            redact_text(target),
            outcome,
            json.dumps(_redacted(detail or {}), sort_keys=True, default=str),
        )
        sql = (
            "INSERT INTO audit_log (at, actor, action, target, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        if conn is not None:
            conn.execute(sql, row)
            return
        with self.db.transaction() as tx:
            tx.execute(sql, row)

    def entries(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first; `action` matches a verb or its prefix (`review` = review.*)."""
        where: list[str] = []
        params: list[str | float] = []
        if action:
            where.append("(action = ? OR action LIKE ?)")
            params += [action, f"{action}.%"]
        for column, value in (("actor", actor), ("outcome", outcome)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = "SELECT id, at, actor, action, target, outcome, detail FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            rows = self.db.query(sql, params)
        except sqlite3.OperationalError:  # no table yet: nothing was ever audited
            return []
        return [
            AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]))
            for r in rows
        ]


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Attribute what this thread (or task) does inside the block to `actor` (a server acting
    for a token), whoever `current_actor()` would otherwise name."""
    token = _ACTING_AS.set(actor)
    try:
        yield
    finally:
        _ACTING_AS.reset(token)


def current_actor(config: Mapping[str, Any] | None = None) -> str:
    """Who runs a local command: the actor of an enclosing `acting_as`, else `CORAL_USER`, else
    the commit author's name (`CORAL_AUTHOR`, the repository config's `[user] name`), else the
    operating-system user."""
    name = _ACTING_AS.get() or os.environ.get("CORAL_USER") or os.environ.get("CORAL_AUTHOR")
    user = (config or {}).get("user")
    if not name and isinstance(user, Mapping):
        name = user.get("name")
    if name:
        return str(name)
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        return "unknown"


def database_actor(db: Database) -> str:
    """`current_actor()` for the repository whose database is `db` (its config.toml beside)."""
    from coral.version_control.repo_config import read_config

    config: dict[str, Any] = {}
    with suppress(Exception):  # an unreadable config names no user; the command reports it
        config = read_config(db.path.parent / "config.toml")
    return current_actor(config)


def record_safely(
    db: Database,
    action: str,
    *,
    actor: str | None = None,
    target: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
    conn: sqlite3.Connection | None = None,
) -> bool:
    """`AuditLog.record` that never raises: a failure is logged and False returned. Inside
    `conn`'s transaction the entry is written under a savepoint, so a failed write leaves the
    caller's transaction as it was. `actor` defaults to `database_actor(db)`."""
    try:
        who = actor or database_actor(db)
        if conn is None:
            AuditLog(db).record(action, actor=who, target=target, outcome=outcome, detail=detail)
            return True
        conn.execute("SAVEPOINT coral_audit")
        try:
            AuditLog(db).record(
                action, actor=who, target=target, outcome=outcome, detail=detail, conn=conn
            )
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO coral_audit")
                conn.execute("RELEASE coral_audit")
            raise
        conn.execute("RELEASE coral_audit")
        return True
    except Exception as exc:
        log.warning("audit entry %s on %s not written: %s", action, redact_text(target), exc)
        return False


@dataclass
class AuditNote:
    """What `audited` will record: the caller may change the outcome and add details."""

    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


@contextmanager
def audited(
    db: Database,
    action: str,
    *,
    actor: str | None = None,
    target: str = "",
    detail: Mapping[str, Any] | None = None,
) -> Iterator[AuditNote]:
    """Record `action` once the block ends: `ok` (or the outcome the block set), `failed` with
    the error when it raises (the error still propagates). The write never fails the block."""
    note = AuditNote(detail=dict(detail or {}))
    try:
        yield note
    except BaseException as exc:
        note.outcome = "failed"
        note.detail["error"] = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        record_safely(db, action, actor=actor, target=target, outcome="failed", detail=note.detail)
        raise
    record_safely(db, action, actor=actor, target=target, outcome=note.outcome, detail=note.detail)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value

"""The audit log: who did what to the repository, when, and whether it was allowed.

Kept in the repository database, table `audit_log` (component `audit`, schema 1), append-only:
`(id, at, actor, action, target, outcome, detail)`. `action` is a dotted verb such as
`ref.update`, `push`, `pull`, `fetch`, `publish`, `gc`, `review.approve`, `remote.read`;
`outcome` is `ok`, `denied` or `failed`; `detail` a JSON object (old and new commit of a ref,
the remote's URL without credentials, a token's *name*, never a secret).

>>> log = AuditLog(repo.database)
>>> log.record("push", actor="ana", target="origin", detail={"refs": {"main": "ab12..."}})
>>> [e.action for e in log.entries(limit=10)]
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from coral.core.redact import redact_text
from coral.version_control.database import Database

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

    def _ensure(self) -> None:
        if not self._ready:
            self.db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)
            self._ready = True

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
        self._ensure()
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


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value

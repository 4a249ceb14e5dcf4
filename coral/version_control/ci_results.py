"""CI results recorded on commits: benchmark measurements and the metrics of evaluation
scripts (`coral ci benchmark --eval`).

A commit is content-addressed, so its metadata cannot change after it is made; what CI learns
about it later is kept beside it, in the repository database: table `ci_results` (component
`ci`, schema 1), append-only, `(id, commit_hash, kind, recorded_at, actor, data)`, `kind` =
`benchmark` or `eval`, `data` a JSON object (the measurements, or the metrics the script
printed). The newest row of a kind is the commit's current result; older rows stay as history.

>>> results = CIResults(repo.database)
>>> results.record(commit_hash, "eval", {"accuracy": 0.91}, actor="ana")
>>> results.latest(commit_hash, "eval").data
{'accuracy': 0.91}
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from coral.version_control.database import ComponentTables

COMPONENT = "ci"
SCHEMA_VERSION = 1
KINDS = ("benchmark", "eval")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ci_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    actor TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ci_results_commit ON ci_results (commit_hash, kind);
"""


@dataclass(frozen=True)
class CIResult:
    """One recorded result."""

    id: int
    commit_hash: str
    kind: str
    recorded_at: float
    actor: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "commit": self.commit_hash,
            "kind": self.kind,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "data": self.data,
        }


class CIResults(ComponentTables):
    """Record and read the CI results of one repository database."""

    component, schema_version, schema_sql = COMPONENT, SCHEMA_VERSION, _SCHEMA

    def record(self, commit_hash: str, kind: str, data: dict[str, Any], *, actor: str) -> int:
        """Append a result for `commit_hash`; returns its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown CI result kind {kind!r}; one of {', '.join(KINDS)}")
        self._ensure()
        text = json.dumps(_finite(data), sort_keys=True, default=str, allow_nan=False)
        with self.db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO ci_results (commit_hash, kind, recorded_at, actor, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (commit_hash, kind, time.time(), actor, text),
            )
            return int(cur.lastrowid or 0)

    def history(self, commit_hash: str, kind: str | None = None) -> list[CIResult]:
        """Every result of a commit, newest first."""
        sql = (
            "SELECT id, commit_hash, kind, recorded_at, actor, data FROM ci_results "
            "WHERE commit_hash = ?"
        )
        params: list[str] = [commit_hash]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        try:
            rows = self.db.query(sql + " ORDER BY id DESC", params)
        except sqlite3.OperationalError:  # no table yet: nothing was ever recorded
            return []
        return [CIResult(int(r[0]), r[1], r[2], float(r[3]), r[4], json.loads(r[5])) for r in rows]

    def latest(self, commit_hash: str, kind: str) -> CIResult | None:
        """The newest result of `kind` for the commit."""
        found = self.history(commit_hash, kind)
        return found[0] if found else None


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

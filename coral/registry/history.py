"""Publishing history: one row per publish attempt, in the repository's SQLite database.

Table `publish_history` (component "registry", schema 1): registry, model_name, version, url,
success (0/1), error, commit_hash (NULL when the ref did not resolve), metadata (JSON of
`PublishResult.metadata`), published_at (epoch seconds). Newest = highest id. Secrets in URLs
(user info, tokens in query strings) are redacted before a row is written.
"""

from __future__ import annotations

import json
from datetime import datetime

from coral.registry.types import PublishResult, RegistryType
from coral.version_control.database import Database

COMPONENT = "registry"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS publish_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    registry     TEXT    NOT NULL,
    model_name   TEXT    NOT NULL,
    version      TEXT,
    url          TEXT,
    success      INTEGER NOT NULL,
    error        TEXT,
    commit_hash  TEXT,
    metadata     TEXT    NOT NULL,
    published_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS publish_history_model ON publish_history (model_name, registry, id);
"""

_COLUMNS = "registry, model_name, version, url, success, error, metadata, published_at"


class PublishHistory:
    """The `publish_history` table of a repository's database (created on first use)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready = False

    def _ensure(self) -> Database:
        if not self._ready:
            self.db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)
            self._ready = True
        return self.db

    def record(self, result: PublishResult) -> None:
        """Append one result (secrets in its URLs and messages redacted first)."""
        result = result.redacted()
        with self._ensure().transaction() as tx:
            tx.execute(
                "INSERT INTO publish_history (registry, model_name, version, url, success, error,"
                " commit_hash, metadata, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.registry.value,
                    result.model_name,
                    result.version,
                    result.url,
                    int(result.success),
                    result.error,
                    result.metadata.get("commit_hash"),
                    json.dumps(result.metadata, default=str, sort_keys=True),
                    result.published_at.timestamp(),
                ),
            )

    def query(
        self,
        registry: RegistryType | None = None,
        success_only: bool = False,
        limit: int | None = None,
        model_name: str | None = None,
    ) -> list[PublishResult]:
        """Matching results, newest first (redacted: rows written before redaction existed
        may hold a URL with a password)."""
        where: list[str] = []
        params: list[object] = []
        if registry is not None:
            where.append("registry = ?")
            params.append(RegistryType(registry).value)
        if success_only:
            where.append("success = 1")
        if model_name is not None:
            where.append("model_name = ?")
            params.append(model_name)
        sql = f"SELECT {_COLUMNS} FROM publish_history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(int(limit), 0))
        rows = self._ensure().query(sql, params)
        return [
            PublishResult(
                success=bool(success),
                registry=RegistryType(registry_value),
                model_name=name,
                version=version,
                url=url,
                error=error,
                metadata=json.loads(metadata),
                published_at=datetime.fromtimestamp(published_at).astimezone(),
            ).redacted()
            for registry_value, name, version, url, success, error, metadata, published_at in rows
        ]

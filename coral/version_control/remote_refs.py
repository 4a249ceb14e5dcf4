"""Remote-tracking refs (`origin/main`): what a remote's refs held at the last push or fetch.

Kept in the repository database, table `remote_refs` (component `remotes`, schema 1):
`(remote, name, commit_id, updated_at)` with `name` like `heads/main` or `tags/v1`.
"""

from __future__ import annotations

import builtins
import sqlite3
import time

from coral.version_control.database import ComponentTables, Database

COMPONENT = "remotes"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS remote_refs (
    remote TEXT NOT NULL,
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (remote, name)
);
"""


class TrackingRefs(ComponentTables):
    """Read and record remote-tracking refs."""

    component, schema_version, schema_sql = COMPONENT, SCHEMA_VERSION, _SCHEMA

    def record(self, remote: str, refs: dict[str, str | None]) -> None:
        """Set (commit) or forget (None) tracking refs of `remote` in one transaction."""
        self._ensure()
        now = time.time()
        with self.db.transaction() as tx:
            for name, commit in refs.items():
                if commit is None:
                    tx.execute("DELETE FROM remote_refs WHERE remote=? AND name=?", (remote, name))
                else:
                    tx.execute(
                        "INSERT OR REPLACE INTO remote_refs VALUES (?, ?, ?, ?)",
                        (remote, name, commit, now),
                    )

    def get(self, remote: str, name: str) -> str | None:
        try:
            rows = self.db.query(
                "SELECT commit_id FROM remote_refs WHERE remote=? AND name=?", (remote, name)
            )
        except sqlite3.OperationalError:  # no table yet: nothing was ever fetched
            return None
        return str(rows[0][0]) if rows else None

    def list(self, remote: str | None = None) -> dict[str, str]:
        """`remote/name` -> commit for every tracking ref (of one remote when given)."""
        sql = "SELECT remote, name, commit_id FROM remote_refs"
        params: tuple[str, ...] = ()
        if remote is not None:
            sql += " WHERE remote=?"
            params = (remote,)
        try:
            rows = self.db.query(sql + " ORDER BY remote, name", params)
        except sqlite3.OperationalError:
            return {}
        return {f"{r}/{_short(n)}": str(c) for r, n, c in rows}

    def names(self, remote: str) -> builtins.list[str]:
        """Tracking ref names (`heads/main`, ...) recorded for `remote`."""
        try:
            rows = self.db.query("SELECT name FROM remote_refs WHERE remote=?", (remote,))
        except sqlite3.OperationalError:
            return []
        return [str(r[0]) for r in rows]

    def forget_remote(self, remote: str) -> None:
        try:
            with self.db.transaction() as tx:
                tx.execute("DELETE FROM remote_refs WHERE remote=?", (remote,))
        except sqlite3.OperationalError:
            return


def _short(name: str) -> str:
    """`heads/main` -> `main`; tags keep their prefix (`tags/v1`)."""
    return name[len("heads/") :] if name.startswith("heads/") else name


def resolve_tracking(db: Database, expression: str) -> str | None:
    """The commit of `origin/main` (or `origin/tags/v1`), if such a tracking ref exists."""
    remote, _, rest = expression.partition("/")
    if not rest:
        return None
    refs = TrackingRefs(db)
    return refs.get(remote, rest if rest.startswith("tags/") else f"heads/{rest}")

"""`ExperimentStore`: the experiment tables in the repository's SQLite database.

The tracker opens its own connection to `.coral/coral.db` (WAL, busy timeout 30 s) and writes in
`BEGIN IMMEDIATE` transactions, so several processes can log into one repository at once.
Schema (component "experiments", version 1, recorded in `schema_versions`):

- `experiments`: one row per experiment; params as JSON; times as Unix seconds.
- `experiment_tags`: (experiment_id, position, tag), tags in the order they were added.
- `experiment_series`: one row per (experiment, metric name) with a small integer id and the
  metric's summary — count, min/max (with their steps), the last point — kept up to date with
  each batch, so `find_best`, `list` and `get_summary` never scan the points.
- `experiment_metrics`: every logged point (series_id, step, value, timestamp, metadata JSON);
  a NaN value is stored as NULL. Rowid order is logging order.
- `experiment_commits`: (experiment_id, commit_hash, source, recorded_at, committed_at) —
  commits an experiment produced; `source` says how the link was made ("end",
  "param:<key>", "log", "manual"); listed in commit-time order.
- `experiment_active`: at most one row, the repository's active experiment (what
  `coral experiment log` writes to).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coral.version_control.database import immediate_transaction

COMPONENT = "experiments"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id     TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    description       TEXT,
    status            TEXT NOT NULL,
    created_at        REAL NOT NULL,
    started_at        REAL,
    ended_at          REAL,
    params            TEXT NOT NULL DEFAULT '{}',
    commit_hash       TEXT,
    branch            TEXT,
    start_commit      TEXT,
    parent_experiment TEXT,
    notes             TEXT,
    error_message     TEXT,
    pid               INTEGER,
    host              TEXT,
    updated_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_by_name ON experiments(name, created_at);
CREATE INDEX IF NOT EXISTS experiments_by_status ON experiments(status, created_at);
CREATE TABLE IF NOT EXISTS experiment_tags (
    experiment_id TEXT NOT NULL,
    position      INTEGER NOT NULL,
    tag           TEXT NOT NULL,
    PRIMARY KEY (experiment_id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS experiment_tags_by_tag ON experiment_tags(tag);
CREATE TABLE IF NOT EXISTS experiment_series (
    series_id      INTEGER PRIMARY KEY,
    experiment_id  TEXT NOT NULL,
    name           TEXT NOT NULL,
    count          INTEGER NOT NULL DEFAULT 0,
    min_value      REAL,
    min_step       INTEGER,
    max_value      REAL,
    max_step       INTEGER,
    last_value     REAL,
    last_step      INTEGER,
    last_timestamp REAL,
    UNIQUE (experiment_id, name)
);
CREATE INDEX IF NOT EXISTS experiment_series_by_name ON experiment_series(name);
CREATE TABLE IF NOT EXISTS experiment_metrics (
    series_id INTEGER NOT NULL,
    step      INTEGER,
    value     REAL,
    timestamp REAL NOT NULL,
    metadata  TEXT
);
CREATE INDEX IF NOT EXISTS experiment_metrics_by_series ON experiment_metrics(series_id);
CREATE TABLE IF NOT EXISTS experiment_commits (
    experiment_id TEXT NOT NULL,
    commit_hash   TEXT NOT NULL,
    source        TEXT NOT NULL,
    recorded_at   REAL NOT NULL,
    committed_at  REAL,
    PRIMARY KEY (experiment_id, commit_hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS experiment_commits_by_commit ON experiment_commits(commit_hash);
CREATE TABLE IF NOT EXISTS experiment_active (
    slot          INTEGER PRIMARY KEY CHECK (slot = 1),
    experiment_id TEXT NOT NULL,
    set_at        REAL NOT NULL
);
"""

# A point waiting to be written, in column order:
# (series_id, step, value, timestamp, metadata JSON or None).
PendingPoint = tuple[int, int | None, float, float, str | None]

EXPERIMENT_COLUMNS = (
    "experiment_id",
    "name",
    "description",
    "status",
    "created_at",
    "started_at",
    "ended_at",
    "params",
    "commit_hash",
    "branch",
    "start_commit",
    "parent_experiment",
    "notes",
    "error_message",
    "pid",
    "host",
    "updated_at",
)

_SUMMARY_UPDATE = """
UPDATE experiment_series SET
    count = count + ?2,
    min_step = CASE WHEN ?3 IS NOT NULL AND (min_value IS NULL OR ?3 < min_value)
                    THEN ?4 ELSE min_step END,
    min_value = CASE WHEN ?3 IS NOT NULL AND (min_value IS NULL OR ?3 < min_value)
                     THEN ?3 ELSE min_value END,
    max_step = CASE WHEN ?5 IS NOT NULL AND (max_value IS NULL OR ?5 > max_value)
                    THEN ?6 ELSE max_step END,
    max_value = CASE WHEN ?5 IS NOT NULL AND (max_value IS NULL OR ?5 > max_value)
                     THEN ?5 ELSE max_value END,
    last_value = ?7,
    last_step = ?8,
    last_timestamp = ?9
WHERE series_id = ?1
"""


def to_json(value: Any) -> str:
    """JSON for params/metadata; numpy scalars and arrays, paths etc. become plain values."""
    return json.dumps(_plain(value), sort_keys=False, allow_nan=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    tolist = getattr(value, "tolist", None)  # numpy scalars/arrays, torch tensors
    if callable(tolist):
        try:
            return _plain(tolist())
        except Exception:
            pass
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item())
        except Exception:
            pass
    return str(value)


class ExperimentStore:
    """Reads and writes the experiment tables through one private connection.

    The connection is shared by the tracker's threads (guarded by a lock) and reopened after
    a fork. Every write is one `BEGIN IMMEDIATE` transaction.
    """

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._series_names: dict[int, tuple[str, str]] = {}
        self._ensure_schema()

    # -- connection ---------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                str(self.db_path),
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed batch survives a killed process; only an OS crash
            # or power loss can drop the last transactions.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` write transaction (joins an enclosing one)."""
        with self._lock, immediate_transaction(self._connection()) as conn:
            yield conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, tuple(params)).fetchall()

    def reset_after_fork(self) -> None:
        """In a forked child: never touch the parent's connection or its lock state."""
        if self._conn is not None:
            _INHERITED.append(
                self._conn
            )  # keep it referenced: closing it here could harm the parent
        self._conn = None
        self._lock = threading.RLock()
        self._pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None

    @staticmethod
    def exists_in(db_path: str | os.PathLike[str]) -> bool:
        """Whether the database already holds the experiment tables (a read-only check)."""
        try:
            conn = sqlite3.connect(
                f"{Path(db_path).as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
            )
        except sqlite3.Error:
            return False
        try:
            rows = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='experiment_commits'"
            ).fetchall()
            return bool(rows)
        except sqlite3.Error:
            return False
        finally:
            conn.close()

    def _ensure_schema(self) -> None:
        from coral.version_control.database import Database

        db = Database(self.db_path)
        try:
            db.ensure_component(COMPONENT, SCHEMA_VERSION, SCHEMA_SQL)
        finally:
            db.close()

    # -- experiments ----------------------------------------------------------------------------
    def insert_experiment(self, row: dict[str, Any], tags: Sequence[str]) -> None:
        cols = ", ".join(EXPERIMENT_COLUMNS)
        marks = ", ".join("?" for _ in EXPERIMENT_COLUMNS)
        values = [row.get(c) for c in EXPERIMENT_COLUMNS]
        with self.transaction() as tx:
            tx.execute(f"INSERT INTO experiments ({cols}) VALUES ({marks})", values)
            self._add_tags(tx, row["experiment_id"], tags)

    def id_exists(self, experiment_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM experiments WHERE experiment_id=?", (experiment_id,)))

    def update(self, experiment_id: str, **fields: Any) -> None:
        if not fields:
            return
        for key in fields:
            if key not in EXPERIMENT_COLUMNS or key == "experiment_id":
                raise ValueError(f"not an experiment column: {key}")
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self.transaction() as tx:
            tx.execute(
                f"UPDATE experiments SET {assignments} WHERE experiment_id=?",
                [*fields.values(), experiment_id],
            )

    def merge_params(self, experiment_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Merge `params` into the stored ones (read-modify-write in one transaction)."""
        with self.transaction() as tx:
            row = tx.execute(
                "SELECT params FROM experiments WHERE experiment_id=?", (experiment_id,)
            ).fetchone()
            merged = json.loads(row[0]) if row else {}
            merged.update(json.loads(to_json(params)))
            tx.execute(
                "UPDATE experiments SET params=?, updated_at=? WHERE experiment_id=?",
                (to_json(merged), time.time(), experiment_id),
            )
        return merged

    def add_tags(self, experiment_id: str, tags: Iterable[str]) -> None:
        with self.transaction() as tx:
            self._add_tags(tx, experiment_id, tags)

    @staticmethod
    def _add_tags(tx: sqlite3.Connection, experiment_id: str, tags: Iterable[str]) -> None:
        row = tx.execute(
            "SELECT COALESCE(MAX(position), -1) FROM experiment_tags WHERE experiment_id=?",
            (experiment_id,),
        ).fetchone()
        position = int(row[0]) + 1
        for tag in tags:
            cur = tx.execute(
                "INSERT OR IGNORE INTO experiment_tags VALUES (?, ?, ?)",
                (experiment_id, position, str(tag)),
            )
            position += cur.rowcount

    def rows(
        self,
        where: str = "",
        params: Sequence[Any] = (),
        order: str = "created_at DESC",
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(EXPERIMENT_COLUMNS)} FROM experiments"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}, rowid DESC"
        args = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [dict(zip(EXPERIMENT_COLUMNS, r, strict=True)) for r in self.query(sql, args)]

    def tags_of(self, ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {i: [] for i in ids}
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" for _ in chunk)
            for eid, tag in self.query(
                f"SELECT experiment_id, tag FROM experiment_tags WHERE experiment_id IN ({marks}) "
                "ORDER BY experiment_id, position",
                chunk,
            ):
                out[eid].append(tag)
        return out

    def commits_of(self, ids: Sequence[str]) -> dict[str, list[tuple[str, str, float]]]:
        """experiment_id -> [(commit_hash, source, recorded_at)] oldest first."""
        out: dict[str, list[tuple[str, str, float]]] = {i: [] for i in ids}
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" for _ in chunk)
            for eid, commit, source, at in self.query(
                "SELECT experiment_id, commit_hash, source, recorded_at FROM experiment_commits "
                f"WHERE experiment_id IN ({marks}) "
                "ORDER BY COALESCE(committed_at, recorded_at), recorded_at, commit_hash",
                chunk,
            ):
                out[eid].append((commit, source, at))
        return out

    def resolve(self, prefix: str) -> list[str]:
        """Experiment ids equal to `prefix`, else those starting with it."""
        exact = self.query("SELECT experiment_id FROM experiments WHERE experiment_id=?", (prefix,))
        if exact:
            return [exact[0][0]]
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return [
            r[0]
            for r in self.query(
                "SELECT experiment_id FROM experiments WHERE experiment_id LIKE ? ESCAPE '\\' "
                "LIMIT 10",
                (pattern,),
            )
        ]

    # -- metrics --------------------------------------------------------------------------------
    def series_id(self, experiment_id: str, name: str) -> int:
        """The integer id of an experiment's metric `name` (created on first use)."""
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR IGNORE INTO experiment_series (experiment_id, name) VALUES (?, ?)",
                (experiment_id, name),
            )
            row = tx.execute(
                "SELECT series_id FROM experiment_series WHERE experiment_id=? AND name=?",
                (experiment_id, name),
            ).fetchone()
        sid = int(row[0])
        self._series_names[sid] = (experiment_id, name)
        return sid

    def series_name(self, series_id: int) -> tuple[str, str]:
        """(experiment_id, name) of a series id."""
        found = self._series_names.get(series_id)
        if found is None:
            row = self.query(
                "SELECT experiment_id, name FROM experiment_series WHERE series_id=?", (series_id,)
            )
            found = self._series_names[series_id] = (row[0][0], row[0][1])
        return found

    def insert_metrics(self, points: Sequence[PendingPoint]) -> None:
        """Write a batch of points and update their series' summaries, in one transaction.

        The points go to SQLite as they are (a NaN binds as NULL); the summaries are
        aggregated by SQLite over the rows just inserted.
        """
        if not points:
            return
        with self.transaction() as tx:
            row = tx.execute("SELECT COALESCE(MAX(rowid), 0) FROM experiment_metrics").fetchone()
            first = row[0]
            tx.executemany(
                "INSERT INTO experiment_metrics (series_id, step, value, timestamp, metadata) "
                "VALUES (?, ?, ?, ?, ?)",
                points,
            )
            # per series, three scans of the rows just written (index range, no sort; SQLite
            # runs them without holding the GIL): count + last rowid, min and max with the
            # step where they occur (SQLite takes a bare column from the min/max row)
            updates = []
            for sid in {p[0] for p in points}:
                count, last_rowid = tx.execute(
                    "SELECT COUNT(*), MAX(rowid) FROM experiment_metrics "
                    "WHERE series_id=? AND rowid>?",
                    (sid, first),
                ).fetchone()
                low, low_step = tx.execute(
                    "SELECT MIN(value), step FROM experiment_metrics "
                    "WHERE series_id=? AND rowid>? AND value IS NOT NULL",
                    (sid, first),
                ).fetchone()
                high, high_step = tx.execute(
                    "SELECT MAX(value), step FROM experiment_metrics "
                    "WHERE series_id=? AND rowid>? AND value IS NOT NULL",
                    (sid, first),
                ).fetchone()
                last = tx.execute(
                    "SELECT value, step, timestamp FROM experiment_metrics WHERE rowid=?",
                    (last_rowid,),
                ).fetchone()
                updates.append((sid, count, low, low_step, high, high_step, *last))
            tx.executemany(_SUMMARY_UPDATE, updates)

    def metric_points(
        self, experiment_id: str, names: Sequence[str] | None = None
    ) -> list[tuple[str, float, int | None, float, str | None]]:
        """(name, value, step, timestamp, metadata_json) in logging order."""
        sql = (
            "SELECT s.name, m.value, m.step, m.timestamp, m.metadata FROM experiment_metrics m "
            "JOIN experiment_series s ON s.series_id = m.series_id WHERE s.experiment_id=?"
        )
        args: list[Any] = [experiment_id]
        if names:
            sql += f" AND s.name IN ({', '.join('?' for _ in names)})"
            args.extend(names)
        sql += " ORDER BY m.rowid"
        return [
            (n, math.nan if v is None else float(v), s, t, m)
            for n, v, s, t, m in self.query(sql, args)
        ]

    def summaries(self, ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """experiment_id -> metric name -> {count, min, min_step, max, max_step, last,
        last_step, last_timestamp}."""
        out: dict[str, dict[str, dict[str, Any]]] = {i: {} for i in ids}
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" for _ in chunk)
            for r in self.query(
                "SELECT experiment_id, name, count, min_value, min_step, max_value, max_step, "
                "last_value, last_step, last_timestamp FROM experiment_series "
                f"WHERE experiment_id IN ({marks}) AND count > 0 ORDER BY experiment_id, series_id",
                chunk,
            ):
                out[r[0]][r[1]] = {
                    "count": r[2],
                    "min": _nan(r[3]),
                    "min_step": r[4],
                    "max": _nan(r[5]),
                    "max_step": r[6],
                    "last": _nan(r[7]),
                    "last_step": r[8],
                    "last_timestamp": r[9],
                }
        return out

    def total_points(self) -> int:
        row = self.query("SELECT COALESCE(SUM(count), 0) FROM experiment_series")
        return int(row[0][0])

    # -- commits ---------------------------------------------------------------------------------
    def link_commit(
        self, experiment_id: str, commit_hash: str, source: str, committed_at: float | None = None
    ) -> None:
        """Link a commit (the first link of a commit keeps its source)."""
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR IGNORE INTO experiment_commits VALUES (?, ?, ?, ?, ?)",
                (experiment_id, commit_hash, source, time.time(), committed_at),
            )

    def experiments_for_commit(self, commit_hash: str) -> list[str]:
        """Ids of experiments linked to `commit_hash` (a full hash or a unique prefix)."""
        rows = self.query(
            "SELECT DISTINCT experiment_id FROM experiment_commits WHERE commit_hash=? "
            "UNION SELECT experiment_id FROM experiments WHERE commit_hash=?",
            (commit_hash, commit_hash),
        )
        if not rows and len(commit_hash) < 64:
            pattern = commit_hash.replace("%", "").replace("_", "") + "%"
            rows = self.query(
                "SELECT DISTINCT experiment_id FROM experiment_commits WHERE commit_hash LIKE ? "
                "UNION SELECT experiment_id FROM experiments WHERE commit_hash LIKE ?",
                (pattern, pattern),
            )
        return [r[0] for r in rows]

    def experiments_for_commits(self, commit_hashes: Sequence[str]) -> dict[str, list[str]]:
        """Full commit hash -> ids of the experiments linked to it (only linked commits)."""
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(dict.fromkeys(commit_hashes)), 400):
            marks = ", ".join("?" for _ in chunk)
            for commit, eid in self.query(
                "SELECT commit_hash, experiment_id FROM experiment_commits "
                f"WHERE commit_hash IN ({marks}) UNION "
                "SELECT commit_hash, experiment_id FROM experiments "
                f"WHERE commit_hash IN ({marks})",
                [*chunk, *chunk],
            ):
                out.setdefault(commit, []).append(eid)
        return out

    # -- the repository's active experiment ------------------------------------------------------
    def set_active(self, experiment_id: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO experiment_active VALUES (1, ?, ?)",
                (experiment_id, time.time()),
            )

    def get_active(self) -> str | None:
        rows = self.query("SELECT experiment_id FROM experiment_active WHERE slot=1")
        return str(rows[0][0]) if rows else None

    def clear_active(self, experiment_id: str | None = None) -> None:
        """Forget the active experiment (only if it is `experiment_id`, when given)."""
        with self.transaction() as tx:
            if experiment_id is None:
                tx.execute("DELETE FROM experiment_active")
            else:
                tx.execute("DELETE FROM experiment_active WHERE experiment_id=?", (experiment_id,))


_INHERITED: list[sqlite3.Connection] = []


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _chunks(items: Sequence[str], n: int) -> Iterator[list[str]]:
    items = list(items)
    for i in range(0, len(items), n):
        yield items[i : i + n]

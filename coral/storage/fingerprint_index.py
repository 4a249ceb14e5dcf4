"""`FingerprintIndex`: persistent SimHash fingerprints for choosing delta references.

When a tensor has no same-named tensor in the parent commit, the repository asks
`find_reference` for the most similar stored tensor of the same shape and dtype, and `add`s
every tensor it stores. The index lives in SQLite (table `fingerprints`, its own connection,
WAL, 30 s busy timeout), so every process sees the same choices and they survive reopening.

Scheme (recorded in table `fingerprint_meta`; a database written under another scheme is
refused): a 128-bit SimHash of the tensor's values (`coral.core.simhash`, seed `SEED`) stored
as 16 little-endian bytes, and cut into `NUM_BANDS` bands of `BAND_BITS` bits stored as
indexed integer columns `b0..b9` (index on shape, dtype, band). Two tensors whose cosine
similarity is high agree on at least one band with high probability (cosine 0.99: all ten
bands differ with probability ~2e-4), so a lookup reads only the rows that share a band with
the query — a few index range scans, never the whole table. Writes use synchronous=NORMAL
(the fingerprints are derived data: a power cut may lose the last few, which only means a
missed reference). Candidates are then ranked by the
Hamming distance of the full fingerprints, which estimates their angle (cos(pi * h / 128)); no
tensor is loaded. The best one whose estimated similarity reaches `similarity_threshold` wins
(ties: the most recently added).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coral.core.dtypes import dtype_name
from coral.core.projection import as_numpy
from coral.core.simhash import SimHash, SimHashConfig
from coral.errors import FormatVersionError

NUM_BITS = 128
BAND_BITS = 12
NUM_BANDS = 10  # bands cover bits 0..119; the last 8 bits only refine the distance
SEED = 0x636F72616C  # "coral"
SCHEME = f"simhash-v1:bits={NUM_BITS}:bands={NUM_BANDS}x{BAND_BITS}:seed={SEED}:block=65536"
_BAND_COLUMNS = [f"b{i}" for i in range(NUM_BANDS)]
_CACHE_SIZE = 256
# one index range scan per band; UNION drops rows found through several bands
_LOOKUP_SQL = " UNION ".join(
    "SELECT rowid, tensor_id, fingerprint FROM fingerprints "
    f"WHERE shape = ? AND dtype = ? AND {col} = ?"
    for col in _BAND_COLUMNS
)


def _shape_text(shape: tuple[int, ...]) -> str:
    return ",".join(str(int(d)) for d in shape)


class FingerprintIndex:
    """Fingerprints of stored tensors in SQLite; finds a similar tensor to delta against."""

    def __init__(self, db_path: Path | str, *, similarity_threshold: float = 0.99) -> None:
        if not -1.0 <= similarity_threshold <= 1.0:
            raise ValueError("similarity_threshold is a cosine similarity, in [-1, 1]")
        self.db_path = Path(db_path)
        self.similarity_threshold = float(similarity_threshold)
        angle = math.acos(self.similarity_threshold)
        self.max_hamming = math.floor(NUM_BITS * angle / math.pi + 1e-9)
        self._hasher = SimHash(
            SimHashConfig(num_bits=NUM_BITS, num_hyperplanes=NUM_BITS, seed=SEED)
        )
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._conn = sqlite3.connect(
            str(self.db_path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        # fingerprints are a derived cache: a crash may lose the last few, never corrupt the rest
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._init_schema()

    def _init_schema(self) -> None:
        bands = ", ".join(f"{c} INTEGER NOT NULL" for c in _BAND_COLUMNS)
        with self._transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS fingerprint_meta "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS fingerprints (tensor_id TEXT PRIMARY KEY, "
                f"shape TEXT NOT NULL, dtype TEXT NOT NULL, fingerprint BLOB NOT NULL, {bands})"
            )
            for col in _BAND_COLUMNS:
                cur.execute(
                    f"CREATE INDEX IF NOT EXISTS fingerprints_{col} "
                    f"ON fingerprints(shape, dtype, {col})"
                )
            row = cur.execute("SELECT value FROM fingerprint_meta WHERE key = 'scheme'").fetchone()
            if row is None:
                cur.execute("INSERT INTO fingerprint_meta VALUES ('scheme', ?)", (SCHEME,))
            elif row[0] != SCHEME:
                raise FormatVersionError(
                    f"fingerprint index {self.db_path} uses scheme {row[0]!r}, "
                    f"this Coral uses {SCHEME!r}",
                    hint="upgrade Coral, or drop the table `fingerprints` to rebuild the index",
                )

    class _Tx:
        def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
            self.conn, self.lock = conn, lock

        def __enter__(self) -> sqlite3.Cursor:
            self.lock.acquire()
            self.cur = self.conn.cursor()
            self.cur.execute("BEGIN IMMEDIATE")
            return self.cur

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                self.cur.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.cur.close()
                self.lock.release()

    def _transaction(self) -> FingerprintIndex._Tx:
        return FingerprintIndex._Tx(self._conn, self._lock)

    # -- fingerprints -------------------------------------------------------------------------
    def fingerprint(self, weight: Any) -> int:
        """The 128-bit SimHash (as int) of a WeightTensor or array; cached by content hash."""
        shape, dtype = self._shape_dtype(weight)
        digest = getattr(getattr(weight, "metadata", None), "hash", None)
        key = (digest, _shape_text(shape), dtype) if digest else None
        if key is not None:
            with self._lock:
                fp = self._cache.get(key)
                if fp is not None:
                    self._cache.move_to_end(key)
                    return fp
        fp = self._hasher.compute_fingerprint(weight)
        if key is not None:
            with self._lock:
                self._cache[key] = fp
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return fp

    @staticmethod
    def _shape_dtype(weight: Any) -> tuple[tuple[int, ...], str]:
        meta = getattr(weight, "metadata", None)
        if meta is not None and hasattr(meta, "dtype_name"):
            return tuple(meta.shape), meta.dtype_name
        arr = as_numpy(weight)
        return tuple(arr.shape), dtype_name(arr.dtype)

    @staticmethod
    def _bands(fp: int) -> list[int]:
        mask = (1 << BAND_BITS) - 1
        return [(fp >> (i * BAND_BITS)) & mask for i in range(NUM_BANDS)]

    # -- writing ------------------------------------------------------------------------------
    def add(self, tensor_id: str, weight: Any) -> None:
        """Record `tensor_id`'s fingerprint (a no-op when it is already recorded, or empty)."""
        shape, dtype = self._shape_dtype(weight)
        if math.prod(shape) == 0:
            return
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM fingerprints WHERE tensor_id = ?", (tensor_id,)
            ).fetchone()
        if row is not None:
            return
        fp = self.fingerprint(weight)
        values = (
            tensor_id,
            _shape_text(shape),
            dtype,
            fp.to_bytes(NUM_BITS // 8, "little"),
            *self._bands(fp),
        )
        placeholders = ", ".join("?" * len(values))
        with self._transaction() as cur:
            cur.execute(f"INSERT OR IGNORE INTO fingerprints VALUES ({placeholders})", values)

    def remove(self, tensor_ids: Iterable[str]) -> int:
        """Forget these tensors (e.g. after gc); returns how many were recorded."""
        ids = list(tensor_ids)
        removed = 0
        with self._transaction() as cur:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                cur.execute(
                    f"DELETE FROM fingerprints WHERE tensor_id IN ({', '.join('?' * len(part))})",
                    part,
                )
                removed += cur.rowcount
        return removed

    # -- reading ------------------------------------------------------------------------------
    def find_reference(self, weight: Any, exclude: str | None = None) -> str | None:
        """The recorded tensor of the same shape and dtype most similar to `weight`, when its
        estimated cosine similarity reaches `similarity_threshold`; else None."""
        best = self.find_similar(weight, exclude=exclude, limit=1)
        return best[0][0] if best else None

    def find_similar(
        self, weight: Any, exclude: str | None = None, limit: int = 10
    ) -> list[tuple[str, float]]:
        """Up to `limit` (tensor_id, estimated cosine) above the threshold, most similar first."""
        shape, dtype = self._shape_dtype(weight)
        if math.prod(shape) == 0:
            return []
        fp = self.fingerprint(weight)
        shape_txt = _shape_text(shape)
        params: list[Any] = []
        for band in self._bands(fp):
            params.extend((shape_txt, dtype, band))
        with self._lock:
            rows = self._conn.execute(_LOOKUP_SQL, params).fetchall()
        scored = []
        for rowid, tensor_id, blob in rows:
            if tensor_id == exclude:
                continue
            dist = (int.from_bytes(blob, "little") ^ fp).bit_count()
            if dist <= self.max_hamming:
                scored.append((dist, -rowid, tensor_id))
        scored.sort()
        return [(tid, math.cos(math.pi * d / NUM_BITS)) for d, _, tid in scored[:limit]]

    def records(self) -> list[tuple[str, tuple[int, ...], str, int]]:
        """Every recorded (tensor_id, shape, dtype, fingerprint), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tensor_id, shape, dtype, fingerprint FROM fingerprints ORDER BY rowid"
            ).fetchall()
        return [
            (tid, tuple(int(d) for d in shape.split(",") if d), dtype, int.from_bytes(fp, "little"))
            for tid, shape, dtype, fp in rows
        ]

    def query_plan(self) -> list[str]:
        """SQLite's plan for a lookup (for checking that it uses the band indexes)."""
        with self._lock:
            rows = self._conn.execute(
                f"EXPLAIN QUERY PLAN {_LOOKUP_SQL}", ["", "", 0] * NUM_BANDS
            ).fetchall()
        return [str(r[-1]) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0])

    def __contains__(self, tensor_id: object) -> bool:
        with self._lock:
            return (
                self._conn.execute(
                    "SELECT 1 FROM fingerprints WHERE tensor_id = ?", (tensor_id,)
                ).fetchone()
                is not None
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FingerprintIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fingerprint_bytes(fp: int) -> bytes:
    """A fingerprint as the 16 bytes stored in the index."""
    return int(fp).to_bytes(NUM_BITS // 8, "little")


def estimated_similarity(fp_a: int, fp_b: int) -> float:
    return math.cos(math.pi * (int(fp_a) ^ int(fp_b)).bit_count() / NUM_BITS)

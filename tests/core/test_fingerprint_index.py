"""FingerprintIndex: persistent reference choice in SQLite, across processes and reopenings."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.errors import FormatVersionError
from coral.storage.fingerprint_index import FingerprintIndex

REPO_ROOT = Path(__file__).resolve().parents[2]


def _w(arr: np.ndarray) -> WeightTensor:
    return WeightTensor(np.asarray(arr))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


def test_finds_near_duplicate_not_unrelated(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FingerprintIndex(tmp_path / "coral.db")
    base = rng.standard_normal((128, 256)).astype(np.float32)
    index.add("base", _w(base))
    index.add("other", _w(rng.standard_normal((128, 256)).astype(np.float32)))
    index.add("bias", _w(rng.standard_normal(256).astype(np.float32)))

    tuned = base + 0.01 * rng.standard_normal(base.shape).astype(np.float32)
    assert index.find_reference(_w(tuned)) == "base"
    assert index.find_reference(_w(rng.standard_normal((128, 256)).astype(np.float32))) is None
    # same values, other shape or dtype: never a reference
    assert index.find_reference(_w(tuned.reshape(256, 128))) is None
    assert index.find_reference(_w(tuned.astype(np.float16))) is None
    assert index.find_reference(_w(tuned), exclude="base") is None
    assert len(index) == 3


def test_picks_the_most_similar(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FingerprintIndex(tmp_path / "coral.db", similarity_threshold=0.98)
    base = rng.standard_normal(50_000).astype(np.float32)
    noise = rng.standard_normal(50_000).astype(np.float32)
    index.add("far", _w(base + 0.12 * noise))
    index.add("near", _w(base + 0.01 * noise))
    index.add("middle", _w(base + 0.06 * rng.standard_normal(50_000).astype(np.float32)))
    assert index.find_reference(_w(base)) == "near"
    similar = index.find_similar(_w(base))
    assert similar[0][0] == "near" and similar[0][1] >= similar[-1][1]


def test_add_is_idempotent_and_remove(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FingerprintIndex(tmp_path / "coral.db")
    w = _w(rng.standard_normal((64, 64)).astype(np.float32))
    index.add("t1", w)
    index.add("t1", w)
    index.add("t2", _w(w.data * 1.0001))
    index.add("empty", _w(np.zeros((0, 3), np.float32)))
    assert len(index) == 2 and "t1" in index and "empty" not in index
    assert index.remove(["t1", "missing"]) == 1
    assert len(index) == 1 and "t1" not in index
    assert index.find_reference(w) == "t2"


def test_survives_reopen(tmp_path: Path, rng: np.random.Generator) -> None:
    db = tmp_path / "coral.db"
    base = rng.standard_normal((300, 300)).astype(np.float32)
    with FingerprintIndex(db) as index:
        index.add("a" * 64, _w(base))
    with FingerprintIndex(db) as reopened:
        assert len(reopened) == 1
        assert reopened.find_reference(_w(base + 0.001 * base)) == "a" * 64
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in conn.execute("PRAGMA table_info(fingerprints)")]
        assert cols[:4] == ["tensor_id", "shape", "dtype", "fingerprint"]
        assert isinstance(conn.execute("SELECT fingerprint FROM fingerprints").fetchone()[0], bytes)


_CHILD = """
import sys
import numpy as np
from coral.core.weight_tensor import WeightTensor
from coral.storage.fingerprint_index import FingerprintIndex
db, seed, tensor_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
arr = np.random.default_rng(seed).standard_normal((200, 500)).astype(np.float32)
index = FingerprintIndex(db)
if tensor_id == "find":
    print(index.find_reference(WeightTensor(arr * 1.001)))
else:
    index.add(tensor_id, WeightTensor(arr))
    print("added")
"""


def _child(db: Path, seed: int, tensor_id: str) -> str:
    return (
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(db), str(seed), tensor_id],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        .stdout.strip()
        .splitlines()[-1]
    )


def test_shared_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "coral.db"
    index = FingerprintIndex(db)  # open in this process first, like a running repository
    assert _child(db, 1, "from-child") == "added"
    arr = np.random.default_rng(1).standard_normal((200, 500)).astype(np.float32)
    assert index.find_reference(_w(arr + 1e-4)) == "from-child"
    index.add(
        "from-parent", _w(np.random.default_rng(2).standard_normal((200, 500)).astype(np.float32))
    )
    assert _child(db, 2, "find") == "from-parent"
    assert _child(db, 3, "find") == "None"


def test_lookup_uses_band_indexes(tmp_path: Path) -> None:
    index = FingerprintIndex(tmp_path / "coral.db")
    plan = " | ".join(index.query_plan())
    assert "USING INDEX fingerprints_b0" in plan and "USING INDEX fingerprints_b9" in plan
    assert "SCAN fingerprints" not in plan.replace("USING INDEX", "")


def test_other_scheme_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "coral.db"
    FingerprintIndex(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fingerprint_meta SET value = 'simhash-v0' WHERE key = 'scheme'")
    with pytest.raises(FormatVersionError, match="simhash-v0"):
        FingerprintIndex(db)


def test_candidate_rows_are_few(tmp_path: Path, rng: np.random.Generator) -> None:
    """With many same-shape tensors, a lookup reads only rows sharing a band with the query."""
    index = FingerprintIndex(tmp_path / "coral.db")
    data = rng.standard_normal((2000, 64)).astype(np.float32)
    for i, row in enumerate(data):
        index.add(f"t{i}", _w(row))
    fp = index.fingerprint(_w(data[7]))
    bands = index._bands(fp)
    with sqlite3.connect(tmp_path / "coral.db") as conn:
        rows = conn.execute(
            " UNION ".join(f"SELECT rowid FROM fingerprints WHERE b{i} = ?" for i in range(10)),
            bands,
        ).fetchall()
    assert len(rows) < 200
    assert index.find_reference(_w(data[7] * 2.0), exclude=None) == "t7"

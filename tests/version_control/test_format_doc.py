"""docs/FORMAT.md, section "Version control", is normative: hold the code to it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.core.hashing import hash_blob
from coral.version_control.objects import Commit, Tag, Tree
from coral.version_control.repository import Repository

DOC = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Version control")
    nxt = text.find("\n## ", start + 5)
    return text[start : nxt if nxt != -1 else len(text)]


@pytest.mark.parametrize("kind,cls", [("tree", Tree), ("commit", Commit), ("tag", Tag)])
def test_documented_encodings(kind: str, cls: Any) -> None:
    m = re.search(rf"```json {kind}\n(.*?)\n```\nid `([0-9a-f]{{64}})`", section(), re.S)
    assert m, f"no {kind} example in FORMAT.md"
    data, oid = m.group(1).encode("utf-8"), m.group(2)
    assert hash_blob(kind, data) == oid
    obj = cls.decode(data, oid)
    assert obj.encode() == data  # decoding then encoding reproduces the documented bytes


def documented_tables() -> dict[str, list[str]]:
    """table -> columns, from every `| table | columns | meaning |` table of the section."""
    tables: dict[str, list[str]] = {}
    in_schema = False
    for line in section().splitlines():
        if line.startswith("| table | columns |"):
            in_schema = True
        elif not line.startswith("|"):
            in_schema = False
        elif in_schema and (m := re.match(r"^\| `(\w+)` \| ([\w, ]+) \|", line)):
            tables[m.group(1)] = [c.strip() for c in m.group(2).split(",")]
    return tables


def _use_every_component(path: Path) -> None:
    """A repository whose database holds the tables of every component that creates any."""
    from coral.experiments import ExperimentTracker
    from coral.registry.history import PublishHistory
    from coral.training.checkpoint_index import CheckpointIndex
    from coral.version_control.ci_results import CIResults
    from coral.version_control.comments import CommentStore
    from coral.version_control.reviews import ReviewStore
    from coral.version_control.stash import StashStore

    with Repository.init(path) as repo:
        repo.add_all_weights({"w": np.arange(8, dtype=np.float32)})  # fingerprint index
        repo.commit("one")
        repo.prune_commits(["HEAD"])  # pruned_commits
        CheckpointIndex(repo)
        PublishHistory(repo.database).query(limit=1)
        ExperimentTracker(repo).close()
        CommentStore(repo.database).add(repo.resolve_ref("HEAD"), "ok", author="ana")
        ReviewStore(repo.database).request(repo.resolve_ref("HEAD"), "HEAD", author="ana")
        StashStore(repo.database)
        CIResults(repo.database).record(repo.resolve_ref("HEAD"), "eval", {"acc": 1.0}, actor="ana")


def test_documented_tables_match_schema(tmp_path: Path) -> None:
    _use_every_component(tmp_path)
    db = sqlite3.connect(tmp_path / ".coral" / "coral.db")
    documented = documented_tables()
    actual = {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    assert set(documented) == actual
    for table, columns in documented.items():
        assert [r[1] for r in db.execute(f"PRAGMA table_info({table})")] == columns, table
    versions = dict(db.execute("SELECT component, version FROM schema_versions").fetchall())
    stated = {k: int(v) for k, v in re.findall(r"`(\w+)` = (\d+)", section())}
    assert versions == {k: stated.get(k) for k in versions}
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0] == "1"
    scheme = db.execute("SELECT value FROM fingerprint_meta WHERE key='scheme'").fetchone()[0]
    assert f"`scheme` = `{scheme}`" in section()
    db.close()

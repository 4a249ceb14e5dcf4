"""docs/FORMAT.md, section "Version control", is normative: hold the code to it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

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


def test_documented_tables_match_schema(tmp_path: Path) -> None:
    Repository.init(tmp_path).close()
    db = sqlite3.connect(tmp_path / ".coral" / "coral.db")
    rows = re.findall(r"^\| `(\w+)` \| ([\w, ]+) \|", section(), re.M)
    assert len(rows) == 7
    for table, columns in rows:
        actual = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        assert actual == [c.strip() for c in columns.split(",")], table
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0] == "1"
    db.close()

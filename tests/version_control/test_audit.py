"""The audit log: append-only entries, filtered newest first, credentials never stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral.version_control.audit import AuditLog
from coral.version_control.repository import Repository


def test_entries_are_filtered_newest_first_and_redacted(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "r") as repo:
        log = AuditLog(repo.database)
        assert log.entries() == []  # no table yet: nothing audited
        log.record("push", actor="ana", target="s3://key:secret@bucket/x")
        log.record("review.approve", actor="bo", target="main", detail={"url": "http://u:pw@h/"})
        log.record("remote.write", actor="token:reader", outcome="denied", target="main")
        newest = log.entries()
        assert [e.action for e in newest] == ["remote.write", "review.approve", "push"]
        assert "secret" not in newest[2].target and "pw" not in str(newest[1].detail)
        assert [e.action for e in log.entries(action="review")] == ["review.approve"]
        assert [e.actor for e in log.entries(outcome="denied")] == ["token:reader"]
        assert len(log.entries(limit=1)) == 1
        with pytest.raises(ValueError, match="outcome"):
            log.record("push", actor="ana", outcome="maybe")
    with Repository(tmp_path / "r") as again:  # persisted
        assert len(AuditLog(again.database).entries()) == 3

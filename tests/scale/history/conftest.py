"""A long history, built once per session, and a counter of the object reads a command makes.

`CORAL_SCALE_HISTORY_COMMITS` sets its length (default 10 000: about 3 s to build).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.scale import build_history
from coral.storage.pack_store import PackStore

COMMITS = int(os.environ.get("CORAL_SCALE_HISTORY_COMMITS", "10000"))


@pytest.fixture(scope="session")
def long_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of COMMITS commits in a line on `main`, plus a branch `side` at the
    first commit and a tag `v1` at the tip (see `benchmarks.scale.build_history`)."""
    path = tmp_path_factory.mktemp("history") / "repo"
    with build_history(path, COMMITS) as repo:
        repo.create_branch("side", repo.resolve_ref(f"HEAD~{COMMITS - 1}"))
        repo.tag_version("v1", "the tip")
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts every object a `PackStore` reads while the test runs, by kind (commit, tree,
    tensor, ...): the real read runs, the count is kept beside it."""
    counter: Counter[str] = Counter()
    original = PackStore.read_record

    def counting(self: PackStore, kind: str, object_id: str, *, check: bool = True) -> bytes:
        counter[kind] += 1
        return original(self, kind, object_id, check=check)

    monkeypatch.setattr(PackStore, "read_record", counting)
    yield counter

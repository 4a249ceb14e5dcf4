"""Fixtures for the remote tests: repositories in tmp_path (closed afterwards), a file remote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coral.version_control.repository import Repository

MakeRepo = Callable[..., Repository]


@pytest.fixture
def make_repo(tmp_path: Path) -> Iterator[MakeRepo]:
    """`make_repo("a")` creates tmp_path/a (or opens it with init=False); all closed at the end."""
    opened: list[Repository] = []

    def make(name: str, init: bool = True) -> Repository:
        path = tmp_path / name
        repo = Repository.init(path) if init else Repository(path)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    return tmp_path / "remote"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3 server (SeaweedFS, auth on) for the S3 variants; skipped where not installed."""
    from tests.servers.seaweedfs import seaweedfs_server

    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server

"""Fixtures of the storage tests: real object-store servers on 127.0.0.1, started once per test
session (on first use) and stopped at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.register_assert_rewrite("tests.storage.backend_contract")  # readable contract failures

from tests.servers.azurite import Azurite, azurite_server  # noqa: E402
from tests.servers.fake_gcs import FakeGCS, fake_gcs_server  # noqa: E402
from tests.servers.seaweedfs import SeaweedFS, seaweedfs_server  # noqa: E402


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS's S3 API (auth on, conditional puts enforced)."""
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """fake-gcs-server's JSON API (no auth, ifGenerationMatch enforced)."""
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob API with the development account devstoreaccount1."""
    with azurite_server(tmp_path_factory.mktemp("azurite")) as server:
        yield server

"""The dashboard served by the real app on a free loopback port (uvicorn in a thread) over a
real repository (`sample_repo.build`), and a small HTTP client (urllib: nothing mocked)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the dashboard needs the `web` extra")

from coral.version_control.repository import Repository
from tests.web.sample_repo import Built, build

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("dashboard"))


@dataclass
class Served:
    url: str
    repo: Repository
    built: Built

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.url + path, **headers)

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)


def http_get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a real request; errors are answers too."""
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _serve(built: Built, token: str | None) -> Iterator[Served]:
    from coral.web.app import create_app
    from coral.web.server import background_server

    repo = Repository(built.path, shared_staging=True)
    try:
        with background_server(create_app(repo, token=token)) as url:
            yield Served(url, repo, built)
    finally:
        repo.close()


@pytest.fixture(scope="session")
def served(built: Built) -> Iterator[Served]:
    """The dashboard of `built` on a free 127.0.0.1 port, no token."""
    yield from _serve(built, None)


TOKEN = "s3cret-dashboard-token"


@pytest.fixture(scope="session")
def served_token(built: Built) -> Iterator[Served]:
    """The same dashboard requiring TOKEN."""
    yield from _serve(built, TOKEN)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

"""The HTTP protocol itself: `HttpBackend` holds to the byte backend contract against the real
router (uvicorn on loopback, in a thread) over a plain folder; and the router's answers to
requests a Coral client would never send (bad ranges, bad keys, garbage packs)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from coral.errors import InvalidNameError
from coral.remotes.http_backend import AccessDeniedError, AuthenticationError, HttpBackend
from coral.storage.backend import Backend, LocalBackend, PutMode
from coral.web import remote_api
from coral.web.acl import AccessList, WatchedAccessList
from coral.web.server import background_server
from tests.storage.backend_contract import BackendContract


class _Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        acl = AccessList(root / "acl.toml")
        self.writer = acl.create("writer", write=["*"])
        self.reader = acl.create("reader")
        self.app = FastAPI()
        self.service = remote_api.RemoteService(
            LocalBackend(root / "store"), WatchedAccessList(acl.path)
        )
        self.app.state.remote = self.service
        self.app.include_router(remote_api.router)

    def fresh(self) -> None:
        self.service.backend = LocalBackend(self.root / uuid.uuid4().hex)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Site, str]]:
    built = _Site(tmp_path_factory.mktemp("http-protocol"))
    with background_server(built.app) as url:
        yield built, url + "/remote/"


class TestHttpBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, site: tuple[_Site, str]) -> Iterator[Backend]:
        built, url = site
        built.fresh()
        client = HttpBackend(url, token=built.writer)
        yield client
        client.close()


def test_reader_gets_403_and_nothing_changes(site: tuple[_Site, str]) -> None:
    built, url = site
    built.fresh()
    HttpBackend(url, token=built.writer).put("k", b"v")
    reader = HttpBackend(url, token=built.reader)
    assert reader.get("k") == b"v"
    with pytest.raises(AccessDeniedError, match="not allowed to push"):
        reader.put("k", b"other")
    with pytest.raises(AccessDeniedError):
        reader.delete("k")
    assert reader.get("k") == b"v"


def test_unknown_token_is_401_and_never_echoed(site: tuple[_Site, str]) -> None:
    _, url = site
    with pytest.raises(AuthenticationError) as caught:
        HttpBackend(url, token="coral_secret-never-shown").get("k")
    assert "secret-never-shown" not in str(caught.value)
    with pytest.raises(AuthenticationError, match="no token"):
        HttpBackend(url).stat("k")  # HEAD: the reason comes in headers


def test_token_in_the_url_is_refused() -> None:
    with pytest.raises(Exception, match="CORAL_REMOTE_TOKEN"):
        HttpBackend("http://me:coral_x@127.0.0.1:9/remote/")


def _raw(url: str, method: str = "GET", **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_ranges_and_bad_requests(site: tuple[_Site, str]) -> None:
    built, url = site
    built.fresh()
    HttpBackend(url, token=built.writer).put("obj", b"0123456789")
    auth = {"Authorization": f"Bearer {built.reader}"}
    assert _raw(url + "obj", Range="bytes=2-4", **auth) == (206, b"234")
    assert _raw(url + "obj", Range="bytes=-3", **auth) == (206, b"789")
    assert _raw(url + "obj", Range="bytes=7-", **auth) == (206, b"789")
    assert _raw(url + "obj", Range="bytes=10-", **auth)[0] == 416
    status, body = _raw(url + "obj", Range="pages=1", **auth)
    assert status == 400 and b"Range" in body
    assert _raw(url + "a%20b", **auth)[0] == 400  # not a key
    assert _raw(url, method="DELETE", **auth)[0] == 403  # a reader never writes
    with pytest.raises(InvalidNameError):
        HttpBackend(url, token=built.writer).put("../x", b"")


def test_put_modes_over_http(site: tuple[_Site, str]) -> None:
    built, url = site
    built.fresh()
    client = HttpBackend(url, token=built.writer)
    first = client.put("refs/heads/main", b"{}", PutMode.CREATE)
    client.put("refs/heads/main", b"{1}", PutMode.IF_MATCH, if_match=first.etag)
    assert client.get("refs/heads/main") == b"{1}"

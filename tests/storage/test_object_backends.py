"""The object-store backends on real servers: S3 on SeaweedFS, GCS on fake-gcs-server, Azure
Blob on Azurite. Each passes the whole byte backend contract (a fresh prefix of a bucket made
for this module, per test); then the failures a user meets: wrong credentials, a missing
bucket, an unreachable endpoint, and `backend_from_url` for every scheme. No secret ever
appears in `describe()` or in an error message."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from coral.errors import CoralError
from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    LocalBackend,
    PreconditionFailedError,
    PutMode,
    TransientBackendError,
)
from coral.storage.backend_wrappers import RetryingBackend
from coral.storage.cloud import FsspecBackend, backend_from_url
from coral.storage.cloud.azure import AzureBackend
from coral.storage.cloud.gcs import GCSBackend
from coral.storage.cloud.s3 import S3Backend
from tests.servers.azurite import ACCOUNT, Azurite
from tests.servers.fake_gcs import FakeGCS
from tests.servers.process import free_port
from tests.servers.seaweedfs import SECRET_KEY, SeaweedFS

from .backend_contract import BackendContract

pytestmark = pytest.mark.server

WRONG_SECRET = "wrong-secret-7d1e0b"
WRONG_AZURE_KEY = "d3Jvbmcta2V5LW5vdC10aGUtZGV2LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="


def fresh() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.create_bucket()


@pytest.fixture(scope="module")
def gcs_bucket(fake_gcs: FakeGCS) -> str:
    return fake_gcs.create_bucket()


@pytest.fixture(scope="module")
def az_container(azurite: Azurite) -> str:
    return azurite.create_container()


def s3(server: SeaweedFS, bucket: str, prefix: str = "", **options: object) -> S3Backend:
    settings: dict[str, object] = {
        "endpoint_url": server.endpoint, "key": server.access_key, "secret": server.secret_key,
    }
    settings.update(options)
    return S3Backend(bucket, prefix, **settings)  # type: ignore[arg-type]


def gcs(server: FakeGCS, bucket: str, prefix: str = "") -> GCSBackend:
    return GCSBackend(bucket, prefix, endpoint=server.endpoint, project=server.project)


def az(server: Azurite, container: str, prefix: str = "", **options: object) -> AzureBackend:
    if not options:
        options = {"connection_string": server.connection_string}
    return AzureBackend(container, prefix, **options)  # type: ignore[arg-type]


# -- the contract ------------------------------------------------------------------------------
class TestFsspecMemoryBackendContract(BackendContract):
    """The generic FsspecBackend (conditions emulated under its lock) on fsspec's memory fs."""

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        fs = fsspec.filesystem("memory", skip_instance_cache=True)
        root = f"/coral-tests/{fresh()}"
        yield FsspecBackend(fs, root)
        fs.rm(root, recursive=True) if fs.exists(root) else None

class TestS3BackendContract(BackendContract):
    @pytest.fixture
    def backend(self, seaweedfs: SeaweedFS, s3_bucket: str) -> Backend:
        return s3(seaweedfs, s3_bucket, fresh())


class TestGCSBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, fake_gcs: FakeGCS, gcs_bucket: str) -> Backend:
        return gcs(fake_gcs, gcs_bucket, fresh())


class TestAzureBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, azurite: Azurite, az_container: str) -> Backend:
        return az(azurite, az_container, fresh())


# -- each cloud, as one parametrized backend maker -------------------------------------------
Maker = Callable[..., Backend]


@pytest.fixture(params=["s3", "gcs", "azure"])
def cloud(request: pytest.FixtureRequest) -> tuple[str, Maker, Callable[[], str]]:
    """(name, make(bucket, prefix, **options) -> backend, new_bucket() -> name)."""
    if request.param == "s3":
        sw = request.getfixturevalue("seaweedfs")
        return "s3", lambda b, p="", **o: s3(sw, b, p, **o), sw.create_bucket
    if request.param == "gcs":
        fg = request.getfixturevalue("fake_gcs")
        return "gcs", lambda b, p="", **o: gcs(fg, b, p), fg.create_bucket
    azu = request.getfixturevalue("azurite")
    return "azure", lambda b, p="", **o: az(azu, b, p, **o), azu.create_container


def assert_clean(error: BaseException, *secrets: str) -> None:
    """One line of message (plus the hint line) and no secret anywhere in the text."""
    text = str(error)
    assert isinstance(error, BackendError)
    assert "\n" not in error.message, text
    for secret in secrets:
        assert secret not in text and secret not in repr(error)


def test_conditional_writes_are_enforced_by_the_server(cloud: tuple[str, Maker, Callable]) -> None:
    # Two backends, two clients: nothing is shared in the process, so only the server can
    # refuse the second CREATE and the stale IF_MATCH.
    _, make, new_bucket = cloud
    bucket, prefix = new_bucket(), fresh()
    a, b = make(bucket, prefix), make(bucket, prefix)
    first = a.put("refs/main", b"from a", PutMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        b.put("refs/main", b"from b", PutMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        b.put("refs/main", b"from b", PutMode.IF_MATCH, if_match=None)
    second = b.put("refs/main", b"b swapped", PutMode.IF_MATCH, if_match=first.etag)
    with pytest.raises(PreconditionFailedError):
        a.put("refs/main", b"a is stale", PutMode.IF_MATCH, if_match=first.etag)
    assert a.get("refs/main") == b"b swapped"
    assert a.stat("refs/main").etag == second.etag
    assert a.capabilities.atomic_create and a.capabilities.conditional_put
    assert not a.capabilities.local_path


def test_missing_bucket_says_how_to_create_it(cloud: tuple[str, Maker, Callable]) -> None:
    name, make, _ = cloud
    bucket = f"missing-{uuid.uuid4().hex[:10]}"
    backend = make(bucket, "pfx")
    calls: list[Callable[[], object]] = [
        lambda: backend.put("k", b"x"),
        lambda: backend.put("k", b"x", PutMode.CREATE),
        lambda: backend.get("k"),
        lambda: backend.stat("k"),
        lambda: list(backend.list()),
    ]
    for call in calls:
        with pytest.raises(BackendError) as info:
            call()
        err = info.value
        assert type(err) is BackendError, f"{name}: {err!r}"
        assert f"'{bucket}' does not exist" in err.message
        assert err.hint and "create" in err.hint and bucket in err.hint
        assert_clean(err, SECRET_KEY)


def test_unreachable_endpoint_fails_after_retries(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    retry = {"attempts": 3, "base_delay": 0.01}
    backends = [
        backend_from_url(f"minio://key:{WRONG_SECRET}@127.0.0.1:{port}/bucket/p", **retry),
        backend_from_url("gs://bucket/p", endpoint=endpoint, **retry),
        backend_from_url(
            "az://container/p",
            account_url=f"{endpoint}/{ACCOUNT}",
            account_key=WRONG_AZURE_KEY,
            **retry,
        ),
    ]
    for backend in backends:
        assert isinstance(backend, RetryingBackend)
        for call in (lambda b=backend: b.get("k"), lambda b=backend: b.put("k", b"x")):
            with pytest.raises(BackendError) as info:
                call()
            err = info.value
            assert not isinstance(err, TransientBackendError | KeyNotFoundError)
            assert "after 3 attempts" in err.message
            assert f"127.0.0.1:{port}" in err.message
            assert isinstance(err.__cause__, TransientBackendError)
            assert WRONG_SECRET not in str(err) and WRONG_AZURE_KEY not in str(err)


def test_wrong_s3_credentials(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    s3(seaweedfs, s3_bucket, "auth").put("k", b"x")
    backend = backend_from_url(
        f"minio://{seaweedfs.endpoint.removeprefix('http://')}/{s3_bucket}/auth",
        key=seaweedfs.access_key,
        secret=WRONG_SECRET,
        attempts=3,
        base_delay=0.01,
    )
    assert WRONG_SECRET not in backend.describe()
    for call in (
        lambda: backend.put("k", b"y"),
        lambda: backend.get("k"),
        lambda: backend.stat("k"),
        lambda: list(backend.list()),
    ):
        with pytest.raises(BackendError) as info:
            call()
        err = info.value
        assert type(err) is BackendError, repr(err)  # not retried, not "missing"
        assert "access denied" in err.message and "giving up" not in err.message
        assert err.hint and "AWS_SECRET_ACCESS_KEY" in err.hint
        assert_clean(err, WRONG_SECRET, SECRET_KEY)


def test_wrong_azure_credentials(azurite: Azurite, az_container: str) -> None:
    backend = AzureBackend(
        az_container, "auth", account_url=azurite.endpoint, account_key=WRONG_AZURE_KEY
    )
    assert WRONG_AZURE_KEY not in backend.describe()
    for call in (lambda: backend.put("k", b"y"), lambda: backend.get("k")):
        with pytest.raises(BackendError) as info:
            call()
        err = info.value
        assert type(err) is BackendError, repr(err)
        assert "access denied" in err.message
        assert_clean(err, WRONG_AZURE_KEY, azurite.account_key)


def test_azure_account_key_works_like_the_connection_string(
    azurite: Azurite, az_container: str
) -> None:
    prefix = fresh()
    by_key = az(azurite, az_container, prefix, account_url=azurite.endpoint,
                account_key=azurite.account_key)
    by_key.put("k", b"by key")
    assert az(azurite, az_container, prefix).get("k") == b"by key"
    assert azurite.account_key not in by_key.describe()


# -- backend_from_url ----------------------------------------------------------------------
def test_backend_from_url_file(tmp_path: Path) -> None:
    backend = backend_from_url(f"file://{tmp_path / 'store'}")
    assert isinstance(backend, LocalBackend)
    backend.put("a/b", b"local")
    assert (tmp_path / "store" / "a" / "b").read_bytes() == b"local"


def test_backend_from_url_s3_reads_the_aws_environment(
    seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_REGION", seaweedfs.region)
    prefix = fresh()
    backend = backend_from_url(f"s3://{s3_bucket}/{prefix}/repo")
    assert isinstance(backend, RetryingBackend) and isinstance(backend.unwrap(), S3Backend)
    backend.put("objects/x", b"via env")
    assert [i.key for i in backend.list()] == ["objects/x"]
    assert s3(seaweedfs, s3_bucket, f"{prefix}/repo").get("objects/x") == b"via env"
    assert backend.describe() == f"s3://{s3_bucket}/{prefix}/repo at {seaweedfs.endpoint}"
    # explicit options override the environment
    with pytest.raises(BackendError, match="access denied"):
        backend_from_url(f"s3://{s3_bucket}/{prefix}", secret=WRONG_SECRET).get("objects/x")


def test_backend_from_url_minio(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    host = seaweedfs.endpoint.removeprefix("http://")
    prefix = fresh()
    url = f"minio://{seaweedfs.access_key}:{seaweedfs.secret_key}@{host}/{s3_bucket}/{prefix}"
    backend = backend_from_url(url)
    backend.put("k", b"minio")
    assert backend.get("k") == b"minio"
    assert backend.describe() == f"s3://{s3_bucket}/{prefix} at {seaweedfs.endpoint}"
    assert SECRET_KEY not in backend.describe()


def test_backend_from_url_gs_reads_storage_emulator_host(
    fake_gcs: FakeGCS, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.endpoint)
    prefix = fresh()
    backend = backend_from_url(f"gs://{gcs_bucket}/{prefix}")
    assert isinstance(backend.unwrap(), GCSBackend)
    backend.put("k", b"gcs")
    assert gcs(fake_gcs, gcs_bucket, prefix).get("k") == b"gcs"
    assert backend.describe() == f"gs://{gcs_bucket}/{prefix} at {fake_gcs.endpoint}"


def test_backend_from_url_az_reads_the_connection_string(
    azurite: Azurite, az_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    prefix = fresh()
    backend = backend_from_url(f"az://{az_container}/{prefix}")
    assert isinstance(backend.unwrap(), AzureBackend)
    backend.put("k", b"azure")
    assert az(azurite, az_container, prefix).get("k") == b"azure"
    assert backend.describe() == f"az://{az_container}/{prefix} at {azurite.endpoint}"
    assert azurite.account_key not in backend.describe()


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "s3:///no-bucket", "minio://host:9000", "s3://b/../x", "gs://b/a b"]
)
def test_backend_from_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(CoralError):  # BackendError, or InvalidNameError for the prefix
        backend_from_url(url)

"""Object-store byte backends (S3 and S3-compatible, GCS, Azure Blob) and `backend_from_url`.

    backend_from_url("file:///srv/coral")              LocalBackend
    backend_from_url("s3://bucket/prefix")             AWS S3 (or AWS_ENDPOINT_URL)
    backend_from_url("minio://host:9000/bucket/pfx")   any S3-compatible server over http
    backend_from_url("gs://bucket/prefix")             GCS (or STORAGE_EMULATOR_HOST)
    backend_from_url("az://container/prefix")          Azure Blob Storage

Object stores come wrapped in `RetryingBackend`: `attempts`, `base_delay` and `max_delay`
options tune it; every other option goes to the backend (S3Backend, GCSBackend, AzureBackend)
and overrides what the environment says. Credentials are read from each cloud's standard
variables and credential chain; none ever appears in `describe()` or in an error message.
The clouds' libraries (the `remotes` extra) are imported only when a backend is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from coral.storage.backend import Backend, BackendError, LocalBackend
from coral.storage.backend_wrappers import RetryingBackend
from coral.storage.cloud.common import Failure
from coral.storage.cloud.fsspec_backend import FsspecBackend

if TYPE_CHECKING:
    from coral.storage.cloud.azure import AzureBackend
    from coral.storage.cloud.gcs import GCSBackend
    from coral.storage.cloud.s3 import S3Backend

__all__ = [
    "AzureBackend",
    "Failure",
    "FsspecBackend",
    "GCSBackend",
    "S3Backend",
    "backend_from_url",
]

SCHEMES = ("file", "s3", "minio", "gs", "az")
_RETRY_OPTIONS = ("attempts", "base_delay", "max_delay")


def __getattr__(name: str) -> Any:  # lazy: each cloud's SDK loads only when it is used
    if name == "S3Backend":
        from coral.storage.cloud.s3 import S3Backend

        return S3Backend
    if name == "GCSBackend":
        from coral.storage.cloud.gcs import GCSBackend

        return GCSBackend
    if name == "AzureBackend":
        from coral.storage.cloud.azure import AzureBackend

        return AzureBackend
    raise AttributeError(name)


def backend_from_url(url: str, **options: Any) -> Backend:
    """The backend a storage URL names (see the module docstring for the schemes)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BackendError(f"not a local file URL: {parts.netloc!r} is not this machine")
        return LocalBackend(Path(unquote(parts.path)), **options)
    retry = {k: options.pop(k) for k in _RETRY_OPTIONS if k in options}
    inner: Backend
    if scheme == "s3":
        from coral.storage.cloud.s3 import S3Backend

        inner = S3Backend(_host(parts, url), _prefix(parts.path), **options)
    elif scheme == "minio":
        from coral.storage.cloud.s3 import S3Backend

        if not parts.hostname:
            raise BackendError(f"no host in {_safe(url)}", hint="minio://HOST:PORT/BUCKET/PREFIX")
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if not bucket:
            raise BackendError(f"no bucket in {_safe(url)}", hint="minio://HOST:PORT/BUCKET/PREFIX")
        scheme_of_endpoint = "https" if options.pop("secure", False) else "http"
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        options.setdefault("endpoint_url", f"{scheme_of_endpoint}://{host}")
        options.setdefault("path_style", True)
        if parts.username:  # minio://KEY:SECRET@host:port/bucket (explicit options win)
            options.setdefault("key", unquote(parts.username))
            options.setdefault("secret", unquote(parts.password or ""))
        inner = S3Backend(bucket, _prefix(prefix), **options)
    elif scheme == "gs":
        from coral.storage.cloud.gcs import GCSBackend

        inner = GCSBackend(_host(parts, url), _prefix(parts.path), **options)
    elif scheme == "az":
        from coral.storage.cloud.azure import AzureBackend

        inner = AzureBackend(_host(parts, url), _prefix(parts.path), **options)
    else:
        raise BackendError(
            f"unsupported storage URL {_safe(url)}",
            hint="use file:///PATH, s3://BUCKET/PREFIX, minio://HOST:PORT/BUCKET/PREFIX, "
            "gs://BUCKET/PREFIX or az://CONTAINER/PREFIX",
        )
    return RetryingBackend(inner, **retry)


def _host(parts: Any, url: str) -> str:
    if not parts.hostname or parts.username or parts.port:
        raise BackendError(f"no bucket name in {_safe(url)}", hint="e.g. s3://BUCKET/PREFIX")
    return str(parts.netloc)


def _prefix(path: str) -> str:
    prefix = unquote(path).strip("/")
    if prefix:
        from coral.storage.backend import check_key

        check_key(prefix)  # InvalidNameError for `..`, `//`, spaces, ...
    return prefix


def _safe(url: str) -> str:
    """`url` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()

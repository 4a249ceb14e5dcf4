"""The byte backend a remote's URL names: folders here, `coral serve --remote` over HTTP,
object stores through fsspec."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from coral.remotes.config import RemoteConfig, RemoteConfigError, read_token_file, redact_url
from coral.storage.backend import Backend, LocalBackend


def open_backend(config: RemoteConfig) -> Backend:
    """A backend for the remote (credentials from the config, else the cloud's own chain);
    with extra `urls`, packs are spread over all of them by hash (ShardedBackend)."""
    if config.urls:
        from dataclasses import replace

        from coral.storage.backend_wrappers import ShardedBackend

        shards = [config.url, *config.urls]
        return ShardedBackend([_open_one(replace(config, url=u, urls=[])) for u in shards])
    return _open_one(config)


def _open_one(config: RemoteConfig) -> Backend:
    parts = urlsplit(config.url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if not path:
            raise RemoteConfigError(f"file remote URL needs a path: {redact_url(config.url)!r}")
        return LocalBackend(Path(path))
    if parts.scheme in ("http", "https"):  # `coral serve --remote`
        from coral.remotes.http_backend import HttpBackend
        from coral.storage.backend_wrappers import RetryingBackend

        token = config.token
        if token is None and config.token_file is not None:
            token = read_token_file(config.token_file)
        return RetryingBackend(HttpBackend(config.url, token=token, ca_file=config.ca_file))
    from coral.storage.cloud import backend_from_url

    options: dict[str, object] = {}
    if parts.scheme in ("s3", "minio"):
        options = {
            "endpoint_url": config.endpoint_url,
            "region": config.region,
            "key": config.access_key,
            "secret": config.secret_key,
        }
    return backend_from_url(config.url, **{k: v for k, v in options.items() if v is not None})

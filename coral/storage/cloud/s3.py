"""S3 and S3-compatible servers (SeaweedFS, MinIO) through s3fs.

Credentials come from botocore's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN, AWS_PROFILE, config files, instance metadata) unless `key` / `secret` are
given; the endpoint from `endpoint_url`, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS.
Puts are single `PutObject` requests: CREATE sends `If-None-Match: *`, IF_MATCH `If-Match: "etag"`,
and the service answers 412 when the condition fails (AWS S3 since 2024, MinIO, SeaweedFS).
The etag is the object's S3 ETag without its quotes. Retries are left to `RetryingBackend`.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from coral.storage.backend import BackendError, Capabilities, ObjectInfo, PutMode
from coral.storage.cloud.common import Failure, etag_is_sendable, plain_etag, public_url
from coral.storage.cloud.fsspec_backend import FsspecBackend

MAX_PUT = 5 << 30  # the largest object one PutObject stores

_AUTH_CODES = {
    "AccessDenied",
    "AccountProblem",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidSecurity",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
    "401",
    "403",
}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "ConditionalRequestConflict",  # a concurrent conditional write: retry, then it is decided
    "OperationAborted",
}


class S3Backend(FsspecBackend):
    """Objects under `s3://bucket/prefix` (AWS or any S3-compatible endpoint)."""

    container_word = "bucket"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        profile: str | None = None,
        anon: bool = False,
        path_style: bool | None = None,
        conditional_writes: bool = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        from s3fs import S3FileSystem

        endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or ("us-east-1" if endpoint_url else None)
        )
        if path_style is None:
            path_style = endpoint_url is not None  # S3-compatible servers: path-style URLs
        config: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"total_max_attempts": 1, "mode": "standard"},  # RetryingBackend retries
        }
        if path_style:
            config["s3"] = {"addressing_style": "path"}
        fs = S3FileSystem(
            anon=anon,
            key=key,
            secret=secret,
            token=token,
            endpoint_url=endpoint_url,
            client_kwargs={"region_name": region} if region else {},
            config_kwargs=config,
            session=_session(profile),
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        fs.retries = 1  # s3fs's own retry loop: once (RetryingBackend retries)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = public_url(endpoint_url) if endpoint_url else None
        where = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        super().__init__(
            fs,
            f"{bucket}/{self.prefix}" if self.prefix else bucket,
            description=where,
            secrets=(secret or "", token or ""),
        )
        self.capabilities = Capabilities(
            atomic_create=conditional_writes, conditional_put=conditional_writes
        )

    def endpoint(self) -> str:
        return self.endpoint_url or "AWS S3"

    def create_hint(self) -> str:
        flag = f" --endpoint-url {self.endpoint_url}" if self.endpoint_url else ""
        return f"create it with `aws s3 mb s3://{self.bucket}{flag}`, or check the name"

    auth_hint = (
        "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, "
        "or the key/secret options) and that they may use this bucket"
    )

    def _put(
        self, path: str, key: str, data: bytes, mode: PutMode, if_match: str | None
    ) -> ObjectInfo:
        _, _, object_key = path.partition("/")
        condition: dict[str, str] = {}
        if mode is PutMode.CREATE:
            condition["IfNoneMatch"] = "*"
        elif mode is PutMode.IF_MATCH:
            assert if_match is not None
            if not etag_is_sendable(if_match):
                self._precondition(key, mode)  # no object has such an etag
            condition["IfMatch"] = f'"{if_match}"'
        if len(data) > MAX_PUT:
            if condition:
                raise BackendError(
                    f"{key}: a conditional put of more than 5 GiB is not supported on S3",
                    hint="store large objects with OVERWRITE (content-addressed keys)",
                )
            self.fs.pipe_file(path, data)  # multipart upload
            return self.stat(key)
        out = self.fs.call_s3(
            "put_object", Bucket=self.bucket, Key=object_key, Body=data, **condition
        )
        return ObjectInfo(key, len(data), plain_etag(out["ETag"]), time.time())

    def _object_info(self, key: str, info: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key,
            int(info.get("size") or 0),
            plain_etag(info.get("ETag", "")),
            super()._object_info(key, info).mtime,
        )

    def _container_exists(self) -> bool:
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except Exception as exc:
            if self._classify(exc) in (Failure.MISSING, Failure.NO_CONTAINER):
                return False
            raise
        return True

    def _classify(self, exc: BaseException) -> Failure:
        from botocore.exceptions import (
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        error = exc if isinstance(exc, ClientError) else exc.__cause__
        if isinstance(error, ClientError):
            return _classify_response(error.response)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return Failure.AUTH
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return Failure.TRANSIENT
        return super()._classify(exc)


def _classify_response(response: dict[str, Any]) -> Failure:
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "NoSuchBucket":
        return Failure.NO_CONTAINER
    if code in ("NoSuchKey", "404") or status == 404:
        return Failure.MISSING
    if code in ("PreconditionFailed", "412") or status == 412:
        return Failure.PRECONDITION
    if code in ("InvalidRange", "416") or status == 416:
        return Failure.BAD_RANGE
    if code in _AUTH_CODES or status in (401, 403):
        return Failure.AUTH
    if code in _TRANSIENT_CODES or status in (408, 409, 429) or status >= 500:
        return Failure.TRANSIENT
    return Failure.OTHER


def _session(profile: str | None) -> Any:
    """A botocore session of its own (credentials, profile) over the shared service models.

    Loading the S3 models takes 0.1-0.2 s per session; the loader caches them read-only.
    """
    from aiobotocore.session import AioSession

    session = AioSession(profile=profile) if profile else AioSession()
    session.register_component("data_loader", _loader(os.environ.get("AWS_DATA_PATH")))
    return session


@functools.cache
def _loader(data_path: str | None) -> Any:
    from botocore.loaders import create_loader

    return create_loader(data_path)

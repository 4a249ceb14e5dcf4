"""Google Cloud Storage (and fake-gcs-server) through gcsfs.

The endpoint is `endpoint`, else STORAGE_EMULATOR_HOST (an emulator: anonymous access), else
Google. Credentials: `token` (anything gcsfs takes: a service-account JSON path, "anon",
"google_default", ...), else Google's default chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud,
metadata server). Every write is a multipart upload that stores the object in one request;
CREATE sends `ifGenerationMatch=0` and IF_MATCH `ifGenerationMatch=<etag>`: the etag is the
object's generation, new for every write (no ABA). Retries are left to `RetryingBackend`.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any
from urllib.parse import quote

from gcsfs.core import GCSFileSystem

from coral.storage.backend import BackendError, Capabilities, ObjectInfo, PutMode
from coral.storage.cloud.common import Failure, as_timestamp, public_url, reason
from coral.storage.cloud.fsspec_backend import FsspecBackend

_TOKEN_WORDS = {"anon", "google_default", "cache", "cloud", "browser"}  # gcsfs's token modes
_UNRETRIED_REQUEST = GCSFileSystem._request.__wrapped__  # gcsfs retries 6 times, 31 s


class _GCSFileSystem(GCSFileSystem):
    """gcsfs without its internal retry loop (and without the gRPC zonal-bucket probe)."""

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        return await _UNRETRIED_REQUEST(self, *args, **kwargs)


class GCSBackend(FsspecBackend):
    """Objects under `gs://bucket/prefix`."""

    capabilities = Capabilities(atomic_create=True, conditional_put=True)
    container_word = "bucket"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        project: str | None = None,
        token: Any = None,
        timeout: float = 60.0,
    ) -> None:
        endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or None
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if token is None and endpoint:
            token = "anon"  # an emulator takes no credentials
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or ""
        secrets = [str(v) for v in token.values()] if isinstance(token, dict) else []
        if isinstance(token, str) and token not in _TOKEN_WORDS and not os.path.exists(token):
            secrets.append(token)  # an OAuth access token itself
        try:
            fs = _GCSFileSystem(
                project=project,
                token=token,
                endpoint_url=endpoint,
                requests_timeout=timeout,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except Exception as exc:  # credentials are loaded here (a token file, the chain)
            raise BackendError(
                f"cannot load Google credentials for gs://{bucket}: {reason(exc, secrets)}",
                hint=self.auth_hint,
            ) from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.project = project
        self.endpoint_url = public_url(endpoint) if endpoint else None
        where = f"gs://{bucket}/{self.prefix}".rstrip("/")
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        super().__init__(
            fs,
            f"{bucket}/{self.prefix}" if self.prefix else bucket,
            description=where,
            secrets=secrets,
        )

    def endpoint(self) -> str:
        return self.endpoint_url or "Google Cloud Storage"

    def create_hint(self) -> str:
        if self.endpoint_url:
            return (
                f"create it with `curl -X POST '{self.endpoint_url}/storage/v1/b?project="
                f'{self.project or "PROJECT"}\' -d \'{{"name": "{self.bucket}"}}\'`'
            )
        return f"create it with `gcloud storage buckets create gs://{self.bucket}`"

    auth_hint = (
        "check the credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default "
        "login`, or the token option) and that they may use this bucket"
    )

    def _put(
        self, path: str, key: str, data: bytes, mode: PutMode, if_match: str | None
    ) -> ObjectInfo:
        _, _, name = path.partition("/")
        params: dict[str, str] = {}
        if mode is PutMode.CREATE:
            params["ifGenerationMatch"] = "0"  # generation 0: the object must not exist
        elif mode is PutMode.IF_MATCH:
            assert if_match is not None
            if not if_match.isdigit() or if_match == "0":
                self._precondition(key, mode)  # not a generation: no object has it
            params["ifGenerationMatch"] = if_match
        boundary = f"coral-{uuid.uuid4().hex}"  # never inside the data
        head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps({'name': name})}\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body = head + data + f"\r\n--{boundary}--\r\n".encode()
        out = self.fs.call(
            "POST",
            f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o",
            uploadType="multipart",
            headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
            data=body,
            json_out=True,
            **params,
        )
        return ObjectInfo(
            key,
            int(out.get("size", len(data))),
            str(out["generation"]),
            as_timestamp(out.get("updated")),
        )

    def _object_info(self, key: str, info: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key,
            int(info.get("size") or 0),
            str(info["generation"]),
            as_timestamp(info.get("mtime") or info.get("updated")),
        )

    def _container_exists(self) -> bool:
        try:
            self.fs.call("GET", f"b/{quote(self.bucket, safe='')}", json_out=True)
        except FileNotFoundError:
            return False
        return True

    def _classify(self, exc: BaseException) -> Failure:
        import aiohttp
        import requests
        from gcsfs.retry import HttpError
        from google.auth import exceptions as auth_errors

        if isinstance(exc, HttpError):
            code = int(exc.code or 0)
            if code == 404:
                return Failure.MISSING
            if code == 412:
                return Failure.PRECONDITION
            if code == 416:
                return Failure.BAD_RANGE
            if code in (401, 403):
                return Failure.AUTH
            if code in (408, 429) or code >= 500:
                return Failure.TRANSIENT
            return Failure.OTHER
        if isinstance(exc, auth_errors.TransportError):
            return Failure.TRANSIENT
        if isinstance(exc, auth_errors.GoogleAuthError):
            return Failure.AUTH
        if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | requests.RequestException):
            return Failure.TRANSIENT  # connection errors, 502 (gcsfs raises ProxyError)
        if type(exc) is OSError and str(exc).startswith("Forbidden"):
            return Failure.AUTH  # gcsfs raises a 403 as OSError("Forbidden: ...")
        return super()._classify(exc)

"""`HttpBackend`: the byte backend contract over HTTP, the client of `coral serve --remote`.

    GET    BASE/KEY          the object (`Range: bytes=A-B` for a range; 206, or 416 past the end)
    HEAD   BASE/KEY          its size, etag and mtime (headers), or 404
    PUT    BASE/KEY          store the body; `If-None-Match: *` = CREATE, `If-Match: "ETAG"` =
                             compare-and-swap; 412 when the condition fails
    DELETE BASE/KEY          {"deleted": bool}
    GET    BASE/?prefix=P    {"objects": [{"key", "size", "etag", "mtime"}, ...]} in key order

Every request carries `Authorization: Bearer TOKEN` when a token is known (the remote config's
`token`, else the `CORAL_REMOTE_TOKEN` environment variable); the token never appears in
`describe()`, messages or logs. Errors come back as JSON `{"error", "hint", "status"}`: 404 is a
KeyNotFoundError, 412 a PreconditionFailedError, 401 and 403 are `AuthenticationError` and
`AccessDeniedError`, 409 a rejected push, 5xx and connection failures are transient (the
`RetryingBackend` around this one retries them).
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from coral.errors import CoralError, RemoteError
from coral.storage.backend import (
    Backend,
    BackendError,
    Capabilities,
    KeyNotFoundError,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
    TransientBackendError,
    check_key,
)
from coral.storage.cloud.common import etag_is_sendable, plain_etag, public_url, reason

if TYPE_CHECKING:
    import httpx

TOKEN_ENV = "CORAL_REMOTE_TOKEN"
CA_ENV = "CORAL_REMOTE_CA"  # a PEM file of certificates to trust for https:// remotes
ETAG_HEADER = "etag"
MTIME_HEADER = "x-coral-mtime"
SIZE_HEADER = "x-coral-size"
ERROR_HEADER = "x-coral-error"
HINT_HEADER = "x-coral-hint"


class AuthenticationError(RemoteError):
    """401: no token, or one the server does not know."""

    default_hint = (
        f"set {TOKEN_ENV} to a token from `coral serve token create NAME --acl FILE` on the server"
    )


class AccessDeniedError(RemoteError):
    """403: the token may not do this (push to that branch, or push at all)."""

    default_hint = (
        "ask the server's owner for a token that may write it "
        "(`coral serve token create NAME --write PATTERN --acl FILE`)"
    )


class PushRejectedError(RemoteError):
    """409: the server refused a ref update (objects missing or damaged, HEAD's branch, ...)."""


class HttpBackend(Backend):
    """Objects of a `coral serve --remote` server (or any server speaking the same protocol)."""

    capabilities = Capabilities(atomic_create=True, conditional_put=True, range_get=True)

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 300.0,
        client: httpx.Client | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"not an HTTP remote URL: {public_url(url)!r}")
        if parts.username or parts.password:
            raise BackendError(
                f"{public_url(url)}: put the token in {TOKEN_ENV}, not in the URL",
                hint=f"export {TOKEN_ENV}=TOKEN and use the URL without user info",
            )
        self.url = public_url(url) + "/"
        self._token = token or os.environ.get(TOKEN_ENV) or None
        self._ca_file = ca_file or os.environ.get(CA_ENV) or None
        self._timeout = timeout
        self._client = client
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.url

    # -- transport ----------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError as exc:  # pragma: no cover - httpx is installed with Coral
                    raise CoralError(
                        f"HTTP remotes need httpx ({exc})",
                        hint="pip install 'coral-vcs[remotes]' (or httpx)",
                    ) from None
                headers = {"user-agent": "coral"}
                if self._token:
                    headers["authorization"] = f"Bearer {self._token}"
                self._client = httpx.Client(
                    headers=headers,
                    verify=_verify(self._ca_file),
                    timeout=httpx.Timeout(self._timeout, connect=10.0),
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                    follow_redirects=False,
                    trust_env=False,  # no proxy from the environment between us and the server
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _request(
        self,
        method: str,
        key: str | None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        import httpx

        target = self.url + (quote(key, safe="/._-") if key is not None else "")
        try:
            response = self._http().request(
                method, target, headers=headers, params=params, content=content
            )
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # not worth a retry
                raise BackendError(
                    f"{self.url}: the server's TLS certificate is not trusted "
                    f"({reason(exc, self._secrets())})",
                    hint=f"a self-signed server: pass its certificate with --ca-file CERT.pem on "
                    f"`coral clone` / `coral remote add`, or set {CA_ENV}",
                ) from None
            raise TransientBackendError(
                f"cannot reach {self.url}: {reason(exc, self._secrets())}"
            ) from None
        except httpx.TransportError as exc:
            raise TransientBackendError(
                f"cannot reach {self.url}: {reason(exc, self._secrets())}"
            ) from None
        if response.status_code >= 500:
            raise TransientBackendError(
                f"{self.url}: server error {response.status_code}: {self._message(response)}"
            )
        return response

    def _secrets(self) -> list[str]:
        return [self._token] if self._token else []

    def _message(self, response: httpx.Response) -> str:
        message, _ = _error_of(response)
        return message

    def _fail(self, response: httpx.Response, key: str | None) -> CoralError:
        """The error a non-2xx answer means."""
        status = response.status_code
        message, hint = _error_of(response)
        where = f"{key} on {self.url}" if key else self.url
        if status == 404:
            return KeyNotFoundError(f"{where}: {message or 'not found'}")
        if status == 412:
            return PreconditionFailedError(f"{where}: {message or 'changed meanwhile'}")
        if status == 401:
            text = message or "the remote needs a token"
            return AuthenticationError(f"{self.url}: {text}", hint=hint)
        if status == 403:
            return AccessDeniedError(message or f"not allowed: {where}", hint=hint)
        if status == 409:
            return PushRejectedError(message or f"rejected: {where}", hint=hint)
        return BackendError(f"{where}: {status} {message}".rstrip(), hint=hint)

    # -- the contract -------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        headers = {"content-type": "application/octet-stream"}
        if mode is PutMode.CREATE or (mode is PutMode.IF_MATCH and if_match is None):
            headers["if-none-match"] = "*"
        elif mode is PutMode.IF_MATCH:
            if not etag_is_sendable(str(if_match)):
                raise PreconditionFailedError(f"{key}: no object has etag {if_match!r}")
            headers["if-match"] = f'"{if_match}"'
        response = self._request("PUT", key, headers=headers, content=bytes(data))
        if response.status_code not in (200, 201):
            raise self._fail(response, key)
        return _info(response.json(), key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(key)  # a missing key is still an error
            return b""
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["range"] = f"bytes={offset}-{end}"
        response = self._request("GET", key, headers=headers)
        if response.status_code == 416:
            return b""  # the range starts at or past the end
        if response.status_code not in (200, 206):
            raise self._fail(response, key)
        body = response.content
        if response.status_code == 200 and headers:  # a server that ignored the range
            return body[offset:] if length is None else body[offset : offset + length]
        return body

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        response = self._request("HEAD", key)
        if response.status_code != 200:
            raise self._fail(response, key)
        h = response.headers
        try:
            return ObjectInfo(
                key,
                int(h.get(SIZE_HEADER) or h.get("content-length") or 0),
                plain_etag(h.get(ETAG_HEADER, "").removeprefix("W/")),
                float(h.get(MTIME_HEADER) or 0.0),
            )
        except ValueError:
            raise BackendError(f"{key} on {self.url}: malformed answer to HEAD") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        response = self._request("GET", None, params={"prefix": prefix})
        if response.status_code != 200:
            raise self._fail(response, None)
        try:
            objects = response.json()["objects"]
            infos = [_info(o, str(o["key"])) for o in objects]
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"{self.url}: malformed listing") from None
        return iter(sorted(infos, key=lambda i: i.key))

    def delete(self, key: str) -> bool:
        check_key(key)
        response = self._request("DELETE", key)
        if response.status_code != 200:
            raise self._fail(response, key)
        return bool(response.json().get("deleted"))


def _error_of(response: httpx.Response) -> tuple[str, str | None]:
    """(message, hint) of an error answer: its JSON body, else its headers (HEAD has no body)."""
    try:
        doc: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and "error" in doc:
        hint = doc.get("hint")
        return str(doc["error"]), str(hint) if hint else None
    header = response.headers.get(ERROR_HEADER)
    if header:
        return header, response.headers.get(HINT_HEADER)
    return (response.reason_phrase or "").lower(), None


def _info(doc: Any, key: str) -> ObjectInfo:
    try:
        return ObjectInfo(key, int(doc["size"]), str(doc["etag"]), float(doc["mtime"]))
    except (KeyError, TypeError, ValueError):
        raise BackendError(f"{key}: malformed answer: {json.dumps(doc)[:200]}") from None


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    """What httpx checks the server's certificate against: `ca_file` (a PEM bundle, for a
    self-signed `coral serve --tls-cert`), else the system's certificate authorities."""
    if ca_file is None:
        return True
    where = Path(ca_file).expanduser()
    try:
        return ssl.create_default_context(cafile=str(where))
    except (OSError, ssl.SSLError) as exc:
        raise BackendError(
            f"cannot use {where} as the remote's certificate: {exc}",
            hint="give the PEM certificate the server was started with (--tls-cert)",
        ) from None

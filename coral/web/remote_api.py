"""The HTTP remote of `coral serve --remote`: the repository as a remote under `/remote/`.

The protocol is the byte backend contract over HTTP (`coral/remotes/http_backend.py` is the
client and documents it), served from a `ServedBackend` (`coral/remotes/served.py`: the
repository's own refs and packs; pushes received, verified, then applied).

Who may do what:
- with an ACL file (`--acl`): every request carries `Authorization: Bearer TOKEN`; a missing or
  unknown token is answered 401. A token reads the refs its patterns match (and the packs);
  uploading packs needs some write pattern, moving a ref one that matches it (`coral/web/acl.py`).
- without one the remote is read-only, on the dashboard's terms (loopback, or its `--token`).

Every denied request is answered 403 (401 when unauthenticated) and recorded in the
repository's audit log, as is every allowed write; entries name the token, never its secret.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coral.errors import CoralError, InvalidNameError
from coral.remotes.served import BadRequestError, NotServedError, RefusedError, ServedBackend
from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
)
from coral.version_control.audit import AuditLog
from coral.version_control.repository import Repository
from coral.web import access
from coral.web.acl import Grant, WatchedAccessList, ref_subject

PREFIX = "/remote"
MAX_BODY = 4 << 30  # bytes of one upload (packs are ~32 MiB)
ANONYMOUS = "anonymous"
log = logging.getLogger("coral.web.remote")
router = APIRouter(include_in_schema=False)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class RemoteService:
    """What `/remote/` serves and who may use it."""

    backend: Backend
    acl: WatchedAccessList | None = None  # None: read-only, on the dashboard's terms
    audit: AuditLog | None = None
    dashboard_token: str | None = None

    @classmethod
    def for_repository(
        cls, repo: Repository, acl: WatchedAccessList | None, dashboard_token: str | None
    ) -> RemoteService:
        return cls(ServedBackend(repo), acl, AuditLog(repo.database), dashboard_token)

    def record(
        self, action: str, grant: Grant | None, target: str, outcome: str, **detail: Any
    ) -> None:
        if self.audit is None:
            return
        try:
            name = grant.name if grant else ANONYMOUS
            self.audit.record(action, actor=name, target=target, outcome=outcome, detail=detail)
        except Exception as exc:  # an audit log that cannot be written must not hide the answer
            log.error("cannot write the audit log: %s", exc)


def handles(path: str) -> bool:
    """Whether a request path is the remote's (its own authentication, not the dashboard's)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class _Denied(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


# -- the route ----------------------------------------------------------------------------------
@router.api_route(PREFIX + "/{key:path}", methods=["GET", "HEAD", "PUT", "DELETE"])
async def remote(request: Request, key: str) -> Response:
    service: RemoteService = request.app.state.remote
    method = request.method
    try:
        grant = await run_in_threadpool(_authenticate, service, request)
    except _Denied as exc:
        return _error(method, exc.status, exc.message, exc.hint)
    action, target = _what(method, key)
    try:
        _authorize(grant, method, key)
        if method == "PUT":
            body = await _body(request)
            return await run_in_threadpool(_put, service, grant, key, body, request.headers)
        if not key:
            if method != "GET":
                raise _Denied(405, "list with GET; objects live under /remote/KEY")
            return await run_in_threadpool(_list, service, grant, request)
        if method == "DELETE":
            return await run_in_threadpool(_delete, service, grant, key)
        return await run_in_threadpool(_read, service, key, request)
    except _Denied as exc:
        if exc.status == 403:
            service.record(action, grant, target, "denied", method=method, reason=exc.message)
        return _error(method, exc.status, exc.message, exc.hint)
    except NotServedError as exc:
        service.record(action, grant, target, "denied", method=method, reason=exc.message)
        return _error(method, 403, exc.message, exc.hint)
    except RefusedError as exc:
        service.record(action, grant, target, "failed", method=method, reason=exc.message)
        return _error(method, 409, exc.message, exc.hint)
    except KeyNotFoundError as exc:
        return _error(method, 404, f"{key} is not on this remote", exc.hint)
    except PreconditionFailedError as exc:
        if action == "remote.push":
            service.record(action, grant, target, "failed", method=method, reason=exc.message)
        return _error(method, 412, exc.message, exc.hint)
    except (InvalidNameError, BadRequestError) as exc:
        return _error(method, 400, exc.message, exc.hint)
    except BackendError as exc:
        log.error("remote %s %s: %s", method, key, exc.message)
        return _error(method, 500, exc.message, exc.hint)
    except CoralError as exc:
        return _error(method, 400, exc.message, exc.hint)
    except Exception as exc:
        log.error("error serving %s %s", method, request.url.path, exc_info=exc)
        return _error(method, 500, f"internal error ({type(exc).__name__})", "see the server's log")


async def _body(request: Request) -> bytes:
    """The upload, refused (413) past MAX_BODY bytes whether or not it said its length."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY:
            raise _Denied(413, f"an upload larger than {MAX_BODY} bytes", "push smaller packs")
        parts.append(part)
    return b"".join(parts)


# -- who ----------------------------------------------------------------------------------------
def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    return auth[7:].strip() or None


def _authenticate(service: RemoteService, request: Request) -> Grant:
    given = _bearer(request)
    if service.acl is not None:
        grant = service.acl.current().authenticate(given)
        if grant is None:
            why = "an unknown token" if given else "no token"
            service.record("remote.auth", None, request.url.path, "denied", reason=why)
            raise _Denied(
                401,
                f"this remote needs a token ({why} was given)",
                "set CORAL_REMOTE_TOKEN to a token from `coral serve token create NAME --acl FILE`",
            )
        return grant
    if service.dashboard_token is not None:
        if not access.token_matches(given, service.dashboard_token):
            raise _Denied(401, "this remote needs the server's token", "set CORAL_REMOTE_TOKEN")
        return Grant(ANONYMOUS, read=("*",))
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not access.is_loopback(name):
        raise _Denied(400, f"unexpected Host header {host!r}", "this server serves loopback only")
    return Grant(ANONYMOUS, read=("*",))


def _what(method: str, key: str) -> tuple[str, str]:
    """(audit action, target) of a request."""
    if method in ("PUT", "DELETE"):
        if key.startswith("refs/"):
            return "remote.push", ref_subject(key[len("refs/") :])
        return "remote.write", key
    return "remote.read", key or "/"


def _authorize(grant: Grant, method: str, key: str) -> None:
    ref = key[len("refs/") :] if key.startswith("refs/") else None
    if method in ("PUT", "DELETE"):
        if not grant.writes_anything:
            raise _Denied(
                403,
                f"not allowed to push: token {grant.name!r} may only read this remote",
                "ask the server's owner for a token that may write "
                "(coral serve token create NAME --write PATTERN --acl FILE)",
            )
        if ref is not None and not grant.may_write(ref):
            raise _Denied(
                403,
                f"not allowed to push to {ref_subject(ref)}: token {grant.name!r} may push "
                f"to {grant.describe_write()} only",
                "push a branch the token may write, or ask for a token with "
                f"--write {ref_subject(ref)}",
            )
        return
    if not grant.reads_anything or (ref is not None and not grant.may_read(ref)):
        raise _Denied(
            403,
            f"not allowed to read {ref_subject(ref) if ref else 'this remote'}: token "
            f"{grant.name!r}",
            "ask the server's owner for a token that may read it",
        )


# -- what -------------------------------------------------------------------------------------
def _list(service: RemoteService, grant: Grant, request: Request) -> Response:
    prefix = request.query_params.get("prefix", "")
    objects = [
        _info(i)
        for i in service.backend.list(prefix)
        if not i.key.startswith("refs/") or grant.may_read(i.key[len("refs/") :])
    ]
    return JSONResponse({"objects": objects})


def _read(service: RemoteService, key: str, request: Request) -> Response:
    info = service.backend.stat(key)
    headers = _headers(info)
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "content-length": str(info.size)})
    wanted = request.headers.get("range")
    if wanted is None:
        return Response(service.backend.get(key), 200, headers, "application/octet-stream")
    span = _parse_range(wanted, info.size)
    if span is None:
        return Response(b"", 416, {**headers, "content-range": f"bytes */{info.size}"})
    offset, length = span
    data = service.backend.get(key, offset, length)
    end = offset + len(data) - 1
    headers["content-range"] = f"bytes {offset}-{end}/{info.size}"
    return Response(data, 206, headers, "application/octet-stream")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(offset, length) of a `bytes=A-B` range, None when it starts at or past the end."""
    m = _RANGE.match(header.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise _Denied(400, f"unsupported Range header {header[:60]!r}", "send bytes=START-END")
    if not m.group(1):  # the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), min(n, size)) if n and size else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1) - start + 1


def _put(service: RemoteService, grant: Grant, key: str, body: bytes, headers: Any) -> Response:
    if headers.get("if-none-match", "").strip() == "*":
        mode, if_match = PutMode.CREATE, None
    elif headers.get("if-match"):
        mode, if_match = PutMode.IF_MATCH, headers["if-match"].strip().removeprefix("W/").strip('"')
    else:
        mode, if_match = PutMode.OVERWRITE, None
    info = _acting(service, grant, lambda: service.backend.put(key, body, mode, if_match))
    action, target = _what("PUT", key)
    if action == "remote.push":
        commit = _commit_of(body)
        service.record(action, grant, target, "ok", commit=commit, mode=mode.value)
    else:
        service.record(action, grant, target, "ok", bytes=len(body))
    return JSONResponse(_info(info), status_code=201 if mode is PutMode.CREATE else 200)


def _delete(service: RemoteService, grant: Grant, key: str) -> Response:
    deleted = _acting(service, grant, lambda: service.backend.delete(key))
    action, target = _what("DELETE", key)
    if deleted:
        service.record(action, grant, target, "ok", deleted=True)
    return JSONResponse({"deleted": deleted})


def _acting(service: RemoteService, grant: Grant, fn: Callable[[], Any]) -> Any:
    backend = service.backend
    if isinstance(backend, ServedBackend):
        with backend.acting_as(grant.name):
            return fn()
    return fn()


def _commit_of(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["commit"])
    except (ValueError, KeyError, TypeError):
        return None


def _info(info: ObjectInfo) -> dict[str, Any]:
    return {"key": info.key, "size": info.size, "etag": info.etag, "mtime": info.mtime}


def _headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "etag": f'"{info.etag}"',
        "x-coral-size": str(info.size),
        "x-coral-mtime": repr(info.mtime),
        "accept-ranges": "bytes",
        "cache-control": "no-store",
    }


def _error(method: str, status: int, message: str, hint: str | None = None) -> Response:
    """A JSON error (and the same in headers, for HEAD: it has no body)."""
    headers = {"x-coral-error": _header_safe(message), "cache-control": "no-store"}
    if hint:
        headers["x-coral-hint"] = _header_safe(hint)
    if method == "HEAD":
        return Response(status_code=status, headers=headers)
    body = {"error": message, "hint": hint, "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:500]

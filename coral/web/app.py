"""The dashboard application: `create_app(repo)` returns a FastAPI app serving HTML pages
(`coral.web.pages`, `coral.web.analytics`), a JSON API under `/api/` (`coral.web.api`), its
OpenAPI document at `/openapi.json` with an offline reference page at `/docs` (FastAPI's own
loads Swagger UI from a CDN, so it is switched off), and the vendored assets under `/static/`.

Every request passes one gate (`_gate`): only GET (the dashboard is read-only); with a
token, the token (query, bearer header or cookie); without one, a Host header naming loopback
(a page elsewhere cannot reach the dashboard through DNS rebinding). Errors become a 400, 401,
404 or 500 page (JSON under `/api/`), never a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from coral.errors import CoralError, ObjectNotFoundError, RefNotFoundError
from coral.version_control.errors import WeightNotFoundError
from coral.version_control.repository import Repository
from coral.web import access
from coral.web.render import StrictJSON, page
from coral.web.state import DashboardState

STATIC = Path(__file__).parent / "static"
ASSETS = {  # everything /static/ serves: a fixed list, never a path from the URL
    "coral.css": "text/css; charset=utf-8",
    "coral.js": "text/javascript; charset=utf-8",
}
log = logging.getLogger("coral.web")
access_log = logging.getLogger("coral.web.access")  # one line per request (token masked)
_NOT_FOUND = (RefNotFoundError, WeightNotFoundError, ObjectNotFoundError, LookupError)


def create_app(
    repo: Repository | str | os.PathLike[str],
    *,
    token: str | None = None,
    remote: bool = False,
    acl: str | os.PathLike[str] | None = None,
) -> FastAPI:
    """The dashboard of `repo` (an open repository, or a path); `token`: required on every
    request when given. `remote` (or an `acl` file) also serves the repository as an HTTP
    remote under /remote/ (`coral.web.remote_api`)."""
    repository = repo if isinstance(repo, Repository) else Repository(repo, shared_staging=True)
    app = FastAPI(
        title="Coral dashboard",
        version="1",
        summary="Read-only JSON API of a Coral repository: the data the dashboard's pages show.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: see /docs instead
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=StrictJSON,
    )
    app.state.dashboard = DashboardState(repository, token=token)
    app.middleware("http")(_gate)
    app.add_exception_handler(CoralError, _coral_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)

    from coral.web import analytics, api, pages

    app.include_router(pages.router)
    app.include_router(analytics.router)
    app.include_router(api.router)
    app.include_router(api.docs_router)
    if remote or acl is not None:
        from coral.web import remote_api
        from coral.web.acl import WatchedAccessList

        watched = WatchedAccessList(Path(acl)) if acl is not None else None
        app.state.remote = remote_api.RemoteService.for_repository(repository, watched, token)
        app.include_router(remote_api.router)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no asset named {name!r}")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    return app


# -- the gate -----------------------------------------------------------------------------------


def _presented_token(request: Request) -> tuple[str | None, bool]:
    """(token, came in the query string)."""
    query = request.query_params.get("token")
    if query is not None:
        return query, True
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    return request.cookies.get(access.COOKIE), False


async def _gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await _checked(request, call_next)
    if getattr(request.app.state, "log_requests", False):
        query = [(k, "***" if k == "token" else v) for k, v in request.query_params.multi_items()]
        where = request.url.path + ("?" + urlencode(query, safe="*") if query else "")
        access_log.info("%s %s %d", request.method, where, response.status_code)
    return response


async def _checked(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if getattr(request.app.state, "remote", None) is not None:
        from coral.web.remote_api import handles

        if handles(request.url.path):  # the remote checks its own tokens (an ACL file)
            return await call_next(request)
    if request.method != "GET":
        return _error(request, 405, "the dashboard is read-only", "only GET requests are served")
    state: DashboardState = request.app.state.dashboard
    if state.token is None:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not access.is_loopback(name):
            return _error(
                request,
                400,
                f"unexpected Host header {host!r}",
                "this dashboard serves loopback only: open it at http://127.0.0.1:PORT/",
            )
        return await call_next(request)
    given, in_query = _presented_token(request)
    if not access.token_matches(given, state.token):
        return _error(
            request,
            401,
            "this dashboard needs a token",
            "open the link `coral share` prints, or add ?token=TOKEN to the address",
        )
    response = await call_next(request)
    if in_query:  # links inside the pages then work without the token in each of them
        response.set_cookie(access.COOKIE, state.token, httponly=True, samesite="strict")
    return response


# -- errors -------------------------------------------------------------------------------------


def _error(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
        return StrictJSON({"error": message, "hint": hint, "status": status}, status_code=status)
    titles = {400: "Bad request", 401: "Token needed", 404: "Not found", 405: "Read-only"}
    return page(
        request,
        "error.html",
        status,
        title=titles.get(status, "Error"),
        code=status,
        message=message,
        hint=hint,
    )


async def _coral_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoralError)
    status = 404 if isinstance(exc, _NOT_FOUND) else 400
    return _error(request, status, exc.message, exc.hint)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path"))
        problems.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
    return _error(request, 400, "bad request: " + "; ".join(problems), "check the address")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail) if exc.status_code != 404 else f"no page at {request.url.path}"
    if exc.status_code == 404 and exc.detail not in (None, "Not Found"):
        message = str(exc.detail)
    return _error(request, exc.status_code, message)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("error serving %s", request.url.path, exc_info=exc)  # the traceback: server side
    return _error(
        request,
        500,
        f"internal error ({type(exc).__name__})",
        "this is a bug in Coral; the server's log has the traceback",
    )

"""The JSON API under `/api/`: the data every page shows, as the porcelain's `to_dict()` forms
(the shapes `coral ... --json` prints), a page at a time where lists are long. `/docs` is an
offline reference of it, rendered from the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse

from coral.porcelain.dashboard import (
    ALL_REFS,
    activity_feed,
    page_of,
    publish_history,
    remotes,
    tensor_page,
)
from coral.porcelain.history import decorations, linked_experiments, tensor_detail
from coral.porcelain.metric_series import commit_metrics, experiment_curves, experiments
from coral.web.render import StrictJSON, page
from coral.web.state import DashboardState

router = APIRouter(prefix="/api", tags=["api"])
PageNo = Annotated[int, Query(alias="page", ge=0, le=10**7, description="0-based page")]
PerPage = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Ref = Annotated[str, Query(min_length=1, max_length=300, description="branch, tag, hash, HEAD~n")]
Names = Annotated[list[str] | None, Query(max_length=200)]
Json = dict[str, Any]


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


@router.get("/overview", summary="HEAD, branches, tags, staged count, recent activity")
def overview(request: Request) -> StrictJSON:
    state = _state(request)
    repo = state.repo
    with state.lock:
        head = repo.head()
        return StrictJSON(
            {
                "path": str(repo.path),
                "head": {"branch": head.branch, "commit": head.commit, "detached": head.detached},
                "commits": len(state.history(None)),
                "branches": [b.to_dict() for b in repo.list_branches()],
                "tags": [t.to_dict() for t in repo.list_tags()],
                "staged": len(repo.staged_changes()),
                "activity": [a.to_dict() for a in activity_feed(repo, 20)],
            }
        )


@router.get("/log", summary="The history of a ref (or all), a page at a time, with its graph")
def log(
    request: Request,
    ref: Annotated[str | None, Query(max_length=300)] = None,
    all: bool = False,
    page_no: PageNo = 0,
    per: PerPage = 50,
) -> StrictJSON:
    state = _state(request)
    with state.lock:
        index = state.history(ALL_REFS if all else ref or None)
        return StrictJSON(index.page(state.repo, page_no, per).to_dict())


@router.get("/commits/{ref:path}", summary="One commit: message, metrics, refs, experiments")
def commit(request: Request, ref: str) -> StrictJSON:
    state = _state(request)
    repo = state.repo
    with state.lock:
        c = repo.get_commit(ref)
        exps = linked_experiments(repo, [c]).get(c.commit_hash, [])
        return StrictJSON(
            {
                **c.to_dict(),
                "refs": decorations(repo).get(c.commit_hash, []),
                "experiments": [e.to_dict(include_metrics=False) for e in exps],
            }
        )


@router.get("/tensors", summary="A commit's tensors a page at a time, with storage facts")
def tensors(
    request: Request,
    ref: Ref,
    page_no: PageNo = 0,
    per: PerPage = 100,
    q: Annotated[str | None, Query(max_length=300, description="glob or substring")] = None,
    training: bool = False,
) -> StrictJSON:
    state = _state(request)
    with state.lock:
        result = tensor_page(
            state.repo, ref, page_no, per, pattern=q, include_training_state=training
        )
        return StrictJSON(result.to_dict())


@router.get("/tensor", summary="One tensor: value statistics, histogram, storage")
def tensor(
    request: Request, ref: Ref, name: Annotated[str, Query(min_length=1, max_length=2000)]
) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON(tensor_detail(state.repo, ref, name).to_dict())


@router.get("/diff", summary="Two commits compared tensor by tensor")
def diff(
    request: Request,
    from_ref: Annotated[str, Query(alias="from", min_length=1, max_length=300)],
    to_ref: Annotated[str, Query(alias="to", min_length=1, max_length=300)],
    training: bool = False,
) -> StrictJSON:
    state = _state(request)
    with state.lock:
        d, comparison = state.diff(from_ref, to_ref, training)
    return StrictJSON(
        {
            **d.to_dict(),
            "summary": comparison["summary"],
            "category_counts": comparison["category_counts"],
        }
    )


@router.get("/metrics", summary="Metrics recorded with commits, oldest commit first")
def metrics(
    request: Request,
    ref: Annotated[str | None, Query(max_length=300)] = None,
    metric: Names = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 500,
) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON(
            commit_metrics(state.repo, ref or None, limit=limit, names=metric).to_dict()
        )


@router.get("/experiments", summary="Tracked experiments, newest first")
def experiment_list(request: Request) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON([e.to_dict() for e in experiments(state.repo)])


@router.get("/experiments/curves", summary="Metric curves (step, value) of experiments")
def curves(request: Request, experiment: Names = None, metric: Names = None) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON(
            [c.to_dict() for c in experiment_curves(state.repo, experiment or [], metric)]
        )


@router.get("/storage", summary="Storage analytics; per-commit rows a page at a time")
def storage(request: Request, page_no: PageNo = 0, per: PerPage = 100) -> StrictJSON:
    state = _state(request)
    with state.lock:
        report = state.storage().to_dict()
    rows = list(reversed(report.pop("commits")))  # newest first
    pager = page_of(page_no, per, len(rows))
    return StrictJSON({**report, **pager.to_dict(), "commits": rows[pager.start : pager.stop]})


@router.get("/remotes", summary="Configured remotes (no secrets) and remote-tracking refs")
def remote_list(request: Request) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON([r.to_dict() for r in remotes(state.repo)])


@router.get("/publishes", summary="Publish history, newest first")
def publishes(request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON([p.to_dict() for p in publish_history(state.repo, limit)])


@router.get("/activity", summary="Activity feed: reflog, remote-tracking refs, publishes")
def activity(request: Request, page_no: PageNo = 0, per: PerPage = 50) -> StrictJSON:
    state = _state(request)
    with state.lock:
        return StrictJSON([a.to_dict() for a in activity_feed(state.repo, per, page_no * per)])


# -- the offline API reference ------------------------------------------------------------------

docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Every endpoint of the OpenAPI document with its parameters (no Swagger UI: it loads
    from a CDN)."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = [
                (
                    p.get("name"),
                    p.get("in"),
                    p.get("required", False),
                    _type(p.get("schema", {})),
                    p.get("description") or p.get("schema", {}).get("description", ""),
                )
                for p in op.get("parameters", [])
            ]
            endpoints.append((method.upper(), path, op.get("summary", ""), params))
    return page(request, "apidocs.html", nav="api", title="API", endpoints=endpoints)


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    return str(schema.get("type", "any"))

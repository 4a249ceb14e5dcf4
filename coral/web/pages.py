"""The dashboard's history pages: overview, history with its graph, a commit, a tensor, a diff,
the activity feed and the remotes. Each reads through the porcelain under the state's lock and
renders a template; long lists come a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse

from coral.core.training_names import is_training_state
from coral.porcelain.collab import collaboration
from coral.porcelain.dashboard import (
    ALL_REFS,
    activity_feed,
    page_of,
    publish_history,
    remotes,
    tensor_page,
)
from coral.porcelain.history import (
    commit_subject,
    decorations,
    linked_experiments,
    tensor_detail,
)
from coral.porcelain.provenance import record_lines
from coral.utils.comparison import CATEGORY_ORDER
from coral.utils.report_format import change, similarity_text
from coral.version_control.diff import natural_key
from coral.version_control.provenance import read_provenance
from coral.web import links
from coral.web.render import page, refname
from coral.web.state import DashboardState
from coral.web.svg import histogram
from coral.web.svg_graph import GraphCell, graph_svgs
from coral.web.svg_heatmap import heatmap_svg

router = APIRouter(include_in_schema=False)
PageNo = Annotated[int, Query(alias="page", ge=0, le=10**7, description="0-based page")]
PerPage = Annotated[int, Query(ge=1, le=1000)]
Ref = Annotated[str, Query(min_length=1, max_length=300)]


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def share_link(request: Request, path: str) -> str:
    """The absolute link to `path` on this server, with the token when it has one."""
    base = str(request.base_url).rstrip("/")
    return links.share_url(base, path, _state(request).token)


# -- overview -----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    state = _state(request)
    repo = state.repo
    with state.lock:
        head = repo.head()
        history = state.history(None)
        latest = history.commits[0] if history.commits else None
        branches = [(b, commit_subject(repo, b.commit_hash)) for b in repo.list_branches()]
        tags = [(t, commit_subject(repo, t.commit_hash)) for t in repo.list_tags()]
        feed = activity_feed(repo, 15)
        staged = len(repo.staged_changes())
        remote_count = len(remotes(repo))
    return page(
        request,
        "overview.html",
        nav="overview",
        title="Overview",
        head=head,
        latest=latest,
        commits=len(history),
        branches=branches,
        tags=tags,
        feed=feed,
        staged=staged,
        remote_count=remote_count,
        path=str(repo.path),
    )


# -- history ------------------------------------------------------------------------------------


@router.get("/log", response_class=HTMLResponse)
def log(
    request: Request,
    ref: Annotated[str | None, Query(max_length=300)] = None,
    all: bool = False,
    page_no: PageNo = 0,
    per: PerPage = 50,
) -> HTMLResponse:
    state = _state(request)
    which = ALL_REFS if all else (ref or None)
    with state.lock:
        index = state.history(which)
        result = index.page(state.repo, page_no, per)
        branches = [b.name for b in state.repo.list_branches()]
    cells = [
        GraphCell(
            r.graph,
            r.entry is not None,
            bool(r.entry and r.entry.commit.parent_hashes),
        )
        for r in result.rows
    ]
    svgs = graph_svgs(cells, continued=result.page.number > 0)
    return page(
        request,
        "log.html",
        nav="log",
        title="History",
        rows=list(zip(result.rows, svgs, strict=True)),
        pager=result.page,
        ref=ref or "",
        all=all,
        per=per,
        branches=branches,
    )


# -- a commit -----------------------------------------------------------------------------------


@router.get("/commit/{ref:path}", response_class=HTMLResponse)
def commit(
    request: Request,
    ref: str,
    page_no: PageNo = 0,
    per: PerPage = 100,
    q: Annotated[str | None, Query(max_length=300)] = None,
    training: bool = False,
) -> HTMLResponse:
    state = _state(request)
    repo = state.repo
    with state.lock:
        tensors = tensor_page(repo, ref, page_no, per, pattern=q, include_training_state=training)
        c = tensors.commit
        refs = decorations(repo).get(c.commit_hash, [])
        experiments = linked_experiments(repo, [c]).get(c.commit_hash, [])
        parents = [(p, commit_subject(repo, p)) for p in c.parent_hashes]
        collab = collaboration(repo, c.commit_hash)
    provenance = record_lines(read_provenance(c.metadata), width=100, empty=False)
    return page(
        request,
        "commit.html",
        nav="log",
        title=f"Commit {c.short_hash}",
        ref=ref,
        c=c,
        refs=refs,
        parents=parents,
        experiments=experiments,
        comments=collab.comments,
        review=collab.review,
        provenance=provenance,
        tensors=tensors,
        pager=tensors.page,
        q=q or "",
        per=per,
        training=training,
        share=share_link(request, links.commit_path(c.commit_hash)),
    )


@router.get("/tensor", response_class=HTMLResponse)
def tensor(
    request: Request,
    ref: Ref,
    name: Annotated[str, Query(min_length=1, max_length=2000)],
) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        detail = tensor_detail(state.repo, ref, name)
    counts, edges = detail.histogram
    return page(
        request,
        "tensor.html",
        nav="log",
        title=name,
        ref=ref,
        d=detail,
        chart=histogram(list(counts), list(edges)),
        share=share_link(request, links.tensor_path(detail.commit.commit_hash, name)),
    )


# -- a diff -------------------------------------------------------------------------------------

SHOW = ("changed", "all", *CATEGORY_ORDER)


@router.get("/diff", response_class=HTMLResponse)
def diff(
    request: Request,
    from_ref: Annotated[str, Query(alias="from", min_length=1, max_length=300)] = "HEAD~1",
    to_ref: Annotated[str, Query(alias="to", min_length=1, max_length=300)] = "HEAD",
    training: bool = False,
    show: Annotated[str, Query(pattern="^(" + "|".join(SHOW) + ")$")] = "changed",
    page_no: PageNo = 0,
    per: PerPage = 100,
) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        d, comparison = state.diff(from_ref, to_ref, training)
    layers = comparison["layers"]
    if show == "changed":
        chosen = [ly for ly in layers if ly["category"] != "identical"]
    elif show == "all":
        chosen = list(layers)
    else:
        chosen = [ly for ly in layers if ly["category"] == show]
    # what changed most first: removed, added, shape changed, then major ... minor, identical
    chosen.sort(
        key=lambda ly: (
            -CATEGORY_ORDER.index(ly["category"]),
            -(change(ly) or 0.0),
            natural_key(ly["name"]),
        )
    )
    pager = page_of(page_no, per, len(chosen))
    to_hash = d.to_commit.commit_hash
    link = f"/tensor?ref={to_hash}&name={{name}}"
    return page(
        request,
        "diff.html",
        nav="log",
        title=f"Diff {refname(from_ref)} → {refname(to_ref)}",
        d=d,
        cmp=comparison,
        from_ref=from_ref,
        to_ref=to_ref,
        training=training,
        show=show,
        shows=SHOW,
        rows=chosen[pager.start : pager.stop],
        pager=pager,
        per=per,
        heatmap=heatmap_svg(comparison, show_identical=show == "all", link=link),
        similarity=similarity_text,
        is_training_state=is_training_state,
        share=share_link(request, links.diff_path(d.from_commit.commit_hash, to_hash)),
    )


# -- activity and remotes -----------------------------------------------------------------------


@router.get("/activity", response_class=HTMLResponse)
def activity(request: Request, page_no: PageNo = 0, per: PerPage = 50) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        items = activity_feed(state.repo, per + 1, page_no * per)
    return page(
        request,
        "activity.html",
        nav="activity",
        title="Activity",
        feed=items[:per],
        page_no=page_no,
        per=per,
        more=len(items) > per,
    )


@router.get("/remotes", response_class=HTMLResponse)
def remotes_page(request: Request) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        rows = remotes(state.repo)
        published = publish_history(state.repo, 200)
    return page(
        request,
        "remotes.html",
        nav="remotes",
        title="Remotes and publishing",
        remotes=rows,
        published=published,
    )

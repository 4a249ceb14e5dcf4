"""The dashboard's analytics pages: metrics over commits and experiments as line plots (pick
which metrics and experiments), and storage (savings per commit, the largest tensors, chain
depths, encodings, suggestions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse

from coral.core.units import human_bytes
from coral.porcelain.dashboard import page_of
from coral.porcelain.metric_series import (
    CommitMetrics,
    Curve,
    commit_metrics,
    experiment_curves,
    experiments,
)
from coral.web.render import first_line, page
from coral.web.state import DashboardState
from coral.web.svg import Line, bar_chart, colour, line_chart, stacked_bars

router = APIRouter(include_in_schema=False)
Names = Annotated[list[str] | None, Query(max_length=200)]
MAX_DEFAULT_CHARTS = 6  # metrics drawn when none is picked
DEFAULT_EXPERIMENTS = 5


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def commit_charts(data: CommitMetrics, names: list[str]) -> list[tuple[str, str]]:
    """One line plot per metric over the commits (oldest left), x ticks named by commit."""
    commits = data.commits

    def tick(x: float) -> str:
        i = round(x)
        return commits[i].short_hash if 0 <= i < len(commits) and i == x else ""

    charts = []
    for k, name in enumerate(names):
        values = data.series.get(name, [])
        line = Line(name, [(float(i), v) for i, v in enumerate(values)], colour(k))

        def tip(ln: Line, x: float, y: float) -> str:
            c = commits[int(x)]
            return f"{c.short_hash} {first_line(c.message)}: {ln.label} = {y:.6g}"

        charts.append(
            (
                name,
                line_chart(
                    [line],
                    x_label="commit (oldest → newest)",
                    y_label=name,
                    x_tick_text=tick,
                    point_title=tip,
                    cls="line-chart metric-chart",
                ),
            )
        )
    return charts


def experiment_charts(curves: list[Curve], ids: list[str]) -> list[tuple[str, str]]:
    """One line plot per metric, one line per experiment (a colour per experiment)."""
    by_metric: dict[str, list[Curve]] = {}
    for curve in curves:
        by_metric.setdefault(curve.metric, []).append(curve)
    charts = []
    for metric, group in sorted(by_metric.items()):
        lines = [
            Line(
                f"{c.experiment} ({c.experiment_id[:8]})",
                c.points,
                colour(ids.index(c.experiment_id) if c.experiment_id in ids else 0),
            )
            for c in group
        ]
        charts.append(
            (
                metric,
                line_chart(
                    lines, x_label="step", y_label=metric, cls="line-chart experiment-chart"
                ),
            )
        )
    return charts


@router.get("/metrics", response_class=HTMLResponse)
def metrics(
    request: Request,
    ref: Annotated[str | None, Query(max_length=300)] = None,
    metric: Names = None,
    experiment: Names = None,
    emetric: Names = None,
    limit: Annotated[int, Query(ge=2, le=100_000)] = 500,
) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        data = commit_metrics(state.repo, ref or None, limit=limit)
        known = experiments(state.repo)
        ids = [e.experiment_id for e in known]
        picked = [e for e in (experiment or []) if e in ids]
        if experiment is None:
            picked = [e.experiment_id for e in known if e.metrics][:DEFAULT_EXPERIMENTS]
        curves = experiment_curves(state.repo, picked, emetric or None)
    chosen = [m for m in (metric or []) if m in data.series]
    if metric is None:
        chosen = data.names[:MAX_DEFAULT_CHARTS]
    experiment_metrics = sorted({m for e in known for m in e.metrics})
    return page(
        request,
        "metrics.html",
        nav="metrics",
        title="Metrics",
        ref=ref or "",
        limit=limit,
        data=data,
        chosen=chosen,
        charts=commit_charts(data, chosen),
        experiments=known,
        picked=picked,
        experiment_metrics=experiment_metrics,
        emetric=emetric or [],
        echarts=experiment_charts(curves, picked),
    )


@router.get("/storage", response_class=HTMLResponse)
def storage(
    request: Request,
    page_no: Annotated[int, Query(alias="page", ge=0, le=10**7)] = 0,
    per: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> HTMLResponse:
    state = _state(request)
    with state.lock:
        report = state.storage()
    newest_first = list(reversed(report.commits))
    pager = page_of(page_no, per, len(newest_first))
    rows = newest_first[pager.start : pager.stop]
    bars = [
        (
            r.commit[:10],
            [r.stored_bytes, max(0, r.delta_saved), r.dedup_saved],
            first_line(r.message),
        )
        for r in reversed(rows)  # oldest left
    ]
    savings = stacked_bars(
        bars,
        [
            ("stored", "#37474f"),
            ("saved by delta + compression", "#42a5f5"),
            ("saved by deduplication", "#a5d6a7"),
        ],
        value_text=human_bytes,
    )
    depths = bar_chart(
        [(str(k), float(v)) for k, v in report.chain_depths.items()],
        value_text=lambda v: f"{v:,.0f}",
        label="tensors per delta-chain depth",
        cls="bar-chart depth-chart",
    )
    encodings = bar_chart(
        [(k, float(v)) for k, v in report.encodings.items()],
        bar_colour="#8e24aa",
        value_text=lambda v: f"{v:,.0f}",
        label="tensors per encoding",
        cls="bar-chart encoding-chart",
    )
    return page(
        request,
        "storage.html",
        nav="storage",
        title="Storage",
        report=report,
        rows=rows,
        pager=pager,
        per=per,
        savings=savings,
        depths=depths,
        encodings=encodings,
    )

"""`coral experiment ...`: start, log into, end, list, show, compare and rank experiments.

`start` makes the new experiment the repository's active one, so later `log` and `end`
commands (separate processes) write to it without naming it. IDs may be unique prefixes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from coral.cli._common import emit_json, fmt_float, natural_width, open_repo, out, parse_metrics
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError

if TYPE_CHECKING:
    from coral.experiments import Experiment, ExperimentTracker

PANEL = "Experiments"
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
_STATUS_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
}

experiment_app = typer.Typer(
    name="experiment",
    help="Track experiments (metrics, params) linked to the commits they produce.",
    no_args_is_help=True,
)


def _tracker(ctx: typer.Context) -> ExperimentTracker:
    from coral.experiments import ExperimentTracker

    return ExperimentTracker(open_repo(ctx))


def _check_status(value: str, allowed: Sequence[str] = STATUSES) -> str:
    text = value.strip().lower()
    if text not in allowed:
        raise CoralError(f"unknown status {value!r}", hint="use one of: " + ", ".join(allowed))
    return text


def _short(text: str | None, n: int = 10) -> str:
    return text[:n] if text else "-"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _status_text(tracker: ExperimentTracker, exp: Experiment) -> str:
    status = exp.status.value
    label = f"[{_STATUS_STYLE[status]}]{status}[/]"
    if tracker.is_orphaned(exp):
        label += " [red](process gone)[/]"
    return label


def _value(v: Any) -> str:
    if isinstance(v, float):
        return fmt_float(v)
    return escape(str(v))


# -- writing ----------------------------------------------------------------------------------
ExperimentOpt = Annotated[
    str | None,
    typer.Option(
        "--experiment",
        "-e",
        help="Experiment id or prefix (default: the active one).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@experiment_app.command()
def start(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Experiment name (several runs may share one).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Parameter KEY=VALUE (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What this experiment tries.")
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option("--branch", "-b", help="Branch it runs on (default: the current one)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Start an experiment and make it the repository's active one."""
    tracker = _tracker(ctx)
    try:
        exp = tracker.start(
            name,
            description=description,
            params=parse_metrics(param),
            tags=tag or [],
            branch=branch,
        )
        tracker.detach()
    finally:
        tracker.close()
    if json_output:
        emit_json(exp.to_dict(include_metrics=False))
        return
    out().print(
        f"Started experiment [bold]{exp.experiment_id}[/bold] ({escape(exp.name)})"
        f" on branch {escape(exp.branch or '-')}"
    )


@experiment_app.command()
def log(
    ctx: typer.Context,
    metric: Annotated[str, typer.Argument(help="Metric name.")],
    value: Annotated[float, typer.Argument(help="Metric value.")],
    step: Annotated[
        int | None, typer.Option("--step", "-s", help="Step (default: one past the last one).")
    ] = None,
    experiment: ExperimentOpt = None,
) -> None:
    """Log one metric value into the active (or given) experiment."""
    tracker = _tracker(ctx)
    try:
        exp = tracker.attach(experiment)
        tracker.log(metric, value, step=step)
    finally:
        tracker.close()
    out().print(f"{escape(metric)}={fmt_float(value)} logged to {exp.experiment_id}")


@experiment_app.command()
def end(
    ctx: typer.Context,
    status: Annotated[
        str, typer.Option("--status", help="completed | failed | cancelled")
    ] = "completed",
    commit: Annotated[
        str | None, typer.Option("--commit", "-c", help="Commit (any ref) the experiment produced.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Why it failed or was cancelled.")
    ] = None,
    experiment: ExperimentOpt = None,
) -> None:
    """End the active (or given) experiment."""
    chosen = _check_status(status, ("completed", "failed", "cancelled"))
    tracker = _tracker(ctx)
    try:
        tracker.attach(experiment)
        exp = tracker.end(chosen, commit_hash=commit, error_message=message)
    finally:
        tracker.close()
    linked = f", {len(exp.commits)} commit(s) linked" if exp.commits else ""
    out().print(f"Ended experiment [bold]{exp.experiment_id}[/bold] as {_styled(chosen)}{linked}")


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE[status]}]{status}[/]"


@experiment_app.command()
def resume(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="Experiment id or prefix to continue.")],
) -> None:
    """Start a new experiment continuing a failed or interrupted one (same params and tags)."""
    tracker = _tracker(ctx)
    try:
        exp = tracker.resume(experiment)
        tracker.detach()
    finally:
        tracker.close()
    out().print(
        f"Started experiment [bold]{exp.experiment_id}[/bold] resuming {exp.parent_experiment}"
    )


# -- reading ----------------------------------------------------------------------------------
@experiment_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="Only experiments with this tag (repeatable)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this name (globs like 'bert-*' work).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most this many (newest first).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List experiments, newest first."""
    tracker = _tracker(ctx)
    try:
        exps = tracker.list(
            status=_check_status(status) if status else None,
            tags=tag or None,
            name=name,
            limit=limit,
            include_metrics=False,
        )
        if json_output:
            emit_json([e.to_dict(include_metrics=False) for e in exps])
            return
        if not exps:
            out().print("No experiments yet. Start one with `coral experiment start NAME`.")
            return
        active = tracker.active_experiment_id()
        table = FitTable(
            [
                Column("id", keep=True),
                Column("name", key=True),
                Column("status", drop=60),
                Column("started", drop=20),
                Column("last metrics", drop=10),
                Column("commit", drop=30),
            ],
            title="Experiments",
        )
        for e in exps:
            metrics = ", ".join(
                f"{escape(k)}={fmt_float(v['last'])}" for k, v in list(e.summary.items())[:3]
            )
            if len(e.summary) > 3:
                metrics += f" (+{len(e.summary) - 3})"
            marker = "*" if e.experiment_id == active else ""
            table.add_row(
                f"{e.experiment_id}{marker}",
                escape(e.name),
                _status_text(tracker, e),
                e.started_at.strftime("%m-%d %H:%M") if e.started_at else "-",
                metrics or "-",
                _short(e.commit_hash),
            )
        table.render(out())
        if active:
            out().print("[dim]* active experiment (`coral experiment log` writes to it)[/dim]")
    finally:
        tracker.close()


@experiment_app.command()
def show(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="Experiment id or prefix.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON (with every metric point).")
    ] = False,
) -> None:
    """Show one experiment: params, metric summary, linked commits."""
    tracker = _tracker(ctx)
    try:
        exp = tracker.get(experiment, include_metrics=json_output)
        if json_output:
            data = exp.to_dict()
            data["commit_links"] = tracker.commit_links(exp.experiment_id)
            emit_json(data)
            return
        console = out()
        console.print(f"[bold]Experiment {exp.experiment_id}[/bold]  {escape(exp.name)}")
        rows = [
            ("status", _status_text(tracker, exp)),
            ("description", escape(exp.description or "-")),
            ("branch", escape(exp.branch or "-")),
            ("created", _when(exp.created_at)),
            ("started", _when(exp.started_at)),
            ("ended", _when(exp.ended_at)),
            ("duration", _duration(exp.duration)),
            ("commit", _short(exp.commit_hash)),
            ("parent", exp.parent_experiment or "-"),
            ("tags", escape(", ".join(exp.tags) or "-")),
            ("notes", escape(exp.notes or "-")),
        ]
        if exp.error_message:
            rows.append(("error", f"[red]{escape(exp.error_message)}[/red]"))
        for key, val in rows:
            console.print(f"  [dim]{key:<12}[/dim] {val}")
        if exp.params:
            params = FitTable([Column("param", key=True), Column("value", keep=True)])
            for k, v in exp.params.items():
                params.add_row(escape(k), _value(v))
            console.print()
            params.render(console)
        if exp.summary:
            metrics = FitTable(
                [
                    Column("metric", key=True),
                    Column("points", justify="right", drop=10),
                    Column("last", justify="right", keep=True),
                    Column("last step", justify="right", drop=20),
                    Column("min", justify="right", drop=40),
                    Column("max", justify="right", drop=30),
                ]
            )
            for k, m in exp.summary.items():
                metrics.add_row(
                    escape(k),
                    str(m["count"]),
                    fmt_float(m["last"]),
                    str(m["last_step"]),
                    f"{fmt_float(m['min'])} @{m['min_step']}",
                    f"{fmt_float(m['max'])} @{m['max_step']}",
                )
            console.print()
            metrics.render(console)
        links = tracker.commit_links(exp.experiment_id)
        if links:
            commits = FitTable([Column("commit", keep=True), Column("linked by", key=True)])
            for link in links:
                commits.add_row(_short(link["commit_hash"]), escape(link["source"]))
            console.print()
            commits.render(console)
    finally:
        tracker.close()


@experiment_app.command()
def compare(
    ctx: typer.Context,
    experiments: Annotated[
        list[str], typer.Argument(help="Two or more experiment ids or prefixes.")
    ],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Only these metrics (repeatable).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw the metric curves into this image (png/svg/pdf).",
            dir_okay=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Compare experiments side by side: metrics (last and best) and parameters."""
    tracker = _tracker(ctx)
    try:
        result = tracker.compare(experiments, metrics=metric or None)
        ids = [e["experiment_id"] for e in result["experiments"]]
        if plot is not None:
            _plot_curves(tracker, result, ids, plot)
        if json_output:
            emit_json(result)
            return
        _print_comparison(result, ids)
        if result["differing_params"]:
            out().print("[dim]parameters that differ are marked *[/dim]")
        if plot is not None:
            out().print(f"Plot written to {escape(str(plot))}")
    finally:
        tracker.close()


def _metric_range(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    return f"{fmt_float(s['last'])} ({fmt_float(s['min'])}..{fmt_float(s['max'])})"


def _print_comparison(result: dict[str, Any], ids: list[str]) -> None:
    """Experiments side by side when they fit the terminal, else one record per experiment."""
    console = out()
    exps = result["experiments"]
    differing = set(result["differing_params"])
    table = Table(title="Experiment comparison", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    for e in exps:
        table.add_column(
            f"{e['experiment_id']}\n{escape(e['name'])}", justify="right", no_wrap=True
        )
    table.add_row("status", *[e["status"] for e in exps])
    table.add_row("branch", *[escape(e["branch"] or "-") for e in exps])
    table.add_row("commit", *[_short(e["commit_hash"]) for e in exps])
    table.add_section()
    for name, per in result["metrics"].items():
        table.add_row(escape(name), *[_metric_range(per.get(i)) for i in ids])
    table.add_section()
    for name, per in result["params"].items():
        mark = "*" if name in differing else ""
        table.add_row(
            escape(name) + mark,
            *[_value(per.get(i)) if per.get(i) is not None else "-" for i in ids],
            style="yellow" if mark else None,
        )
    if natural_width(table) <= console.width:
        console.print(table)
        return
    console.print("Experiment comparison")
    names = [*result["metrics"], *(n + "*" if n in differing else n for n in result["params"])]
    pad = max((len(n) for n in names), default=0)
    for e in exps:
        eid = e["experiment_id"]
        console.print(f"[bold]{eid}[/bold] {escape(e['name'])}", soft_wrap=True)
        console.print(
            f"    {'status':<{pad}}  {e['status']}, branch {escape(e['branch'] or '-')}, "
            f"commit {_short(e['commit_hash'])}",
            soft_wrap=True,
        )
        for name, per in result["metrics"].items():
            label = escape(f"{name:<{pad}}")
            console.print(f"    {label}  {_metric_range(per.get(eid))}", soft_wrap=True)
        for name, per in result["params"].items():
            label = escape(f"{name + ('*' if name in differing else ''):<{pad}}")
            value = _value(per.get(eid)) if per.get(eid) is not None else "-"
            console.print(f"    {label}  {value}", soft_wrap=True)


def _plot_curves(
    tracker: ExperimentTracker, result: dict[str, Any], ids: list[str], path: Path
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CoralError("--plot needs matplotlib", hint="pip install 'coral-vcs[viz]'") from exc
    names = list(result["metrics"])
    if not names:
        raise CoralError("these experiments logged no metrics to plot")
    labels = {
        e["experiment_id"]: f"{e['experiment_id']} {e['name']}" for e in result["experiments"]
    }
    palette = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    colors = {eid: palette[i % len(palette)] for i, eid in enumerate(ids)}
    cols = min(2, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for eid in ids:
            points = tracker.metric_history(eid, name)
            if not points:
                continue
            points.sort(key=lambda p: (p[0] is None, p[0] or 0))
            xs = [p[0] if p[0] is not None else i for i, p in enumerate(points)]
            ax.plot(
                xs,
                [p[1] for p in points],
                label=labels[eid],
                color=colors[eid],
                marker="." if len(points) < 50 else None,
            )
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@experiment_app.command()
def best(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric to rank by.")],
    mode: Annotated[str, typer.Option("--mode", help="min (lower is better) or max.")] = "min",
    status: Annotated[
        str | None, typer.Option("--status", help="Only experiments with this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many to show.")] = 5,
    json_output: JsonOpt = False,
) -> None:
    """Rank experiments by their best value of a metric."""
    if mode not in ("min", "max"):
        raise CoralError(f"unknown mode {mode!r}", hint="use --mode min or --mode max")
    tracker = _tracker(ctx)
    try:
        results = tracker.find_best(
            metric, mode=mode, status=_check_status(status) if status else None, limit=limit
        )
    finally:
        tracker.close()
    if json_output:
        emit_json(results)
        return
    if not results:
        out().print(f"No experiment logged {escape(metric)!s}.")
        return
    table = FitTable(
        [
            Column("#", justify="right", keep=True),
            Column("id", keep=True),
            Column("name", key=True),
            Column(escape(metric), justify="right", keep=True),
            Column("step", justify="right", drop=40),
            Column("status", drop=30),
            Column("commit", drop=35),
            Column("params", drop=10),
        ],
        title=f"Best {escape(metric)} ({mode})",
    )
    for rank, r in enumerate(results, 1):
        params = ", ".join(
            f"{escape(str(k))}={_value(v)}" for k, v in list(r["params"].items())[:4]
        )
        table.add_row(
            str(rank),
            r["experiment_id"],
            escape(r["name"]),
            fmt_float(r["best_value"]),
            str(r["step"]),
            r["status"],
            _short(r["commit_hash"]),
            params,
        )
    table.render(out())


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment", rich_help_panel=PANEL)

"""`coral ci ...`: checks and reports for continuous integration.

`validate` and `validate-files` print one line per violation, then a summary line, and exit 1
when anything is violated (0 when clean) — also with --json, so a CI step fails on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coral.cli._common import (
    JsonOption,
    complete_ref,
    emit_json,
    err,
    fmt_float,
    human_bytes,
    open_repo,
    out,
    parse_size,
    progress,
    repo_root,
)
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError

if TYPE_CHECKING:
    from coral.porcelain.ci.report import CIReport, ReportTable
    from coral.porcelain.ci.validate import ValidationResult

ORDER = 85  # position of this group in `coral --help`
PANEL = "Teams and CI"
DRIFT_SHOWN = 10  # drift rows printed before "... N more"
EXIT_VIOLATIONS = 1

ci_app = typer.Typer(
    name="ci",
    help="Checks and reports for continuous integration: validate, benchmark, report, init.",
    no_args_is_help=True,
)

SCHEMA = Annotated[
    Path | None,
    typer.Option(
        "--schema",
        help="Constraints file (.toml, .yaml or .json; default: config \\[ci] schema, else the "
        "default checks: no NaN/inf, no empty tensor).",
        show_default=False,
    ),
]
JSON = JsonOption


# -- validate -----------------------------------------------------------------------------------
@ci_app.command()
def validate(
    ref: Annotated[
        str, typer.Argument(help="The commit to check.", autocompletion=complete_ref)
    ] = "HEAD",
    schema: SCHEMA = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Measure drift (relative L2 change) against this ref (default: the schema's "
            "base).",
            autocompletion=complete_ref,
            show_default=False,
        ),
    ] = None,
    json_output: JSON = False,
) -> None:
    """Check a commit against a schema: tensor names, shapes, dtypes, NaN/inf, sizes, drift."""
    from coral.porcelain.ci.validate import resolve_schema, validate_commit

    repo = open_repo()
    constraints = resolve_schema(repo.path, schema, repo.config)
    count = len(repo.get_tree(ref).entries)
    with progress(f"validating {count} tensors", count) as bar:
        result = validate_commit(repo, ref, schema=constraints, base=base, progress=bar)
    _print_validation(result, json_output)


@ci_app.command("validate-files")
def validate_files(
    files: Annotated[
        list[Path],
        typer.Argument(help="Weight files: .safetensors, .pt/.pth/.bin/.ckpt, .npz."),
    ],
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema", help="Constraints file (.toml, .yaml or .json).", show_default=False
        ),
    ] = None,
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes", help="Largest file size allowed, e.g. 100MB.", show_default=False
        ),
    ] = None,
    size_only: Annotated[
        bool,
        typer.Option("--size-only", help="Only check file sizes (needs --max-bytes)."),
    ] = False,
    json_output: JSON = False,
) -> None:
    """Validate weight files without a repository (what the pre-commit hooks run)."""
    from coral.porcelain.ci.schema import load_schema
    from coral.porcelain.ci.validate import validate_files as check_files

    if size_only and max_bytes is None:
        raise CoralError(
            "--size-only checks file sizes against --max-bytes, which is missing",
            hint="pass a limit, e.g. --max-bytes 100MB",
        )
    limit = parse_size(max_bytes) if max_bytes is not None else None
    constraints = load_schema(schema) if schema is not None else None
    for f in files:
        if not f.is_file():
            raise CoralError(f"no such file: {f}", hint="give paths of weight files")
    with progress(f"validating {len(files)} files", None) as bar:
        result = check_files(
            files, schema=constraints, max_bytes=limit, size_only=size_only, progress=bar
        )
    _print_validation(result, json_output)


def _print_validation(result: ValidationResult, json_output: bool) -> None:
    if json_output:
        emit_json(result.to_dict())
    else:
        console = out()
        if result.drift:
            _print_drift(console, result)
        for v in result.violations:
            _line(console, v.line)
        for path in result.skipped:
            _line(console, f"{path}: skipped (Coral does not read this format)")
        _line(console, result.summary())
    if not result.ok:
        raise typer.Exit(EXIT_VIOLATIONS)


def _line(console: Console, text: str) -> None:
    """A line printed as it is: no markup, no `:name:` emoji (`m.pt:b` is a tensor)."""
    console.print(text, markup=False, emoji=False)


def _print_drift(console: Console, result: ValidationResult) -> None:
    changed = [d for d in result.drift if d.category != "identical"]
    identical = len(result.drift) - len(changed)
    limits = any(d.limit is not None for d in result.drift)
    columns = [
        Column("tensor", key=True),
        Column("change", drop=2),
        Column("relative", justify="right", keep=True),
    ]
    if limits:
        columns.append(Column("limit", justify="right", drop=1))
    title = f"Drift against {escape(result.base or '')} (relative L2 change)"
    table = FitTable(columns, title=title)
    for d in changed[:DRIFT_SHOWN]:
        relative = fmt_float(d.relative, ".3g")
        if d.nonfinite_changed and not d.relative:
            relative = "NaN/inf"
        cells = [escape(d.name), d.category.replace("_", " "), relative]
        if limits:
            cells.append(fmt_float(d.limit, "g") if d.limit is not None else "")
        table.add_row(*cells)
    if table.rows:
        table.render(console)
    more = len(changed) - DRIFT_SHOWN
    tail = [f"{identical} identical"] if identical else []
    if more > 0:
        tail.append(f"{more} more changed (--json lists all)")
    if tail:
        console.print(", ".join(tail))


# -- benchmark ----------------------------------------------------------------------------------
@ci_app.command()
def benchmark(
    ref: Annotated[
        str, typer.Argument(help="The commit to measure.", autocompletion=complete_ref)
    ] = "HEAD",
    eval_script: Annotated[
        str | None,
        typer.Option(
            "--eval",
            help="Evaluation script (.py, or a command line) run on an export of the commit; "
            "its last JSON line of stdout is recorded as metrics (default: config \\[ci] eval).",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Record the results on the commit."),
    ] = True,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop the evaluation script after this many seconds."),
    ] = None,
    json_output: JSON = False,
) -> None:
    """Measure a commit: bytes stored vs raw, full-load time, peak memory; run an evaluation."""
    from coral.porcelain.ci.benchmark import benchmark_commit

    repo = open_repo()
    count = len(repo.get_tree(ref).entries)
    with progress(f"reading {count} tensors", count) as bar:
        result = benchmark_commit(
            repo, ref, eval_script=eval_script, record=record, timeout=timeout, progress=bar
        )
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    console.print(
        escape(
            f"Benchmark of {ref} ({result.commit_hash[:10]}): {result.tensors} tensors, "
            f"{result.parameters:,} parameters"
        )
    )
    rows = [
        ("raw size", human_bytes(result.raw_bytes), ""),
        (
            "stored",
            human_bytes(result.stored_bytes),
            f"{result.ratio:.2f}x smaller" if result.ratio else "",
        ),
        (
            "full load",
            _seconds(result.load_seconds),
            f"{human_bytes(result.throughput)}/s, checksummed" if result.throughput else "",
        ),
        (
            "peak memory",
            human_bytes(result.peak_memory),
            f"largest tensor {human_bytes(result.largest_tensor)}",
        ),
    ]
    if result.eval is not None:
        for name, value in result.eval.metrics.items():
            shown = fmt_float(value) if isinstance(value, float) else str(value)
            rows.append((str(name), shown, "evaluation"))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(style="dim")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    if result.eval is not None:
        console.print(
            escape(f"evaluation: {' '.join(result.eval.command)} ({_seconds(result.eval.seconds)})")
        )
    if result.recorded:
        console.print(
            f"recorded on {result.commit_hash[:10]} (`coral ci report` shows the metrics)"
        )


def _seconds(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


# -- report -------------------------------------------------------------------------------------
@ci_app.command()
def report(
    a: Annotated[
        str, typer.Argument(help="The base, e.g. origin/main.", autocompletion=complete_ref)
    ],
    b: Annotated[str, typer.Argument(help="The change, e.g. HEAD.", autocompletion=complete_ref)],
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Markdown for a pull-request comment.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file.", show_default=False),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Changed tensors listed.", min=0)] = 10,
    schema: SCHEMA = None,
    json_output: JSON = False,
) -> None:
    """Compare two commits for a pull request: sizes, changed tensors, metrics, validation."""
    from coral.porcelain.ci.report import ci_report
    from coral.porcelain.ci.validate import resolve_schema

    repo = open_repo()
    constraints = resolve_schema(repo.path, schema, repo.config)
    count = len(repo.get_tree(b).entries)
    with progress(f"validating {count} tensors of {b}", count) as bar:
        result = ci_report(repo, a, b, schema=constraints, top=top, progress=bar)
    if json_output:
        emit_json(result.to_dict())
        return
    if output is None:
        if markdown:
            typer.echo(result.markdown(), nl=False)
        else:
            _print_report(out(), result)
        return
    if markdown:
        text = result.markdown()
    else:
        sink = _file_console()
        with sink.capture() as captured:
            _print_report(sink, result)
        text = captured.get()
    output.write_text(text, encoding="utf-8")
    err().print(escape(f"wrote {output}"))


def _file_console() -> Console:
    width = int(os.environ.get("COLUMNS", "80") or 80)
    return Console(width=width, color_system=None, highlight=False, soft_wrap=True)


def _print_report(console: Console, report: CIReport) -> None:
    console.print(escape(report.title()))
    for i, table in enumerate(report.tables()):
        console.print()
        _fit(table).render(console)
        if i == 0:
            console.print(escape(report.counts_line()))
    console.print()
    head, *violations = report.validation_lines()
    console.print(escape(head))
    for line in violations:
        console.print(escape(f"  {line}"))


def _fit(table: ReportTable) -> FitTable:
    columns = [
        Column(h, justify="right" if i >= table.numeric_from else "left", key=i == 0, drop=100 - i)
        for i, h in enumerate(table.headers)
    ]
    fit = FitTable(columns, title=escape(table.title) if table.title else None)
    for row in table.rows:
        fit.add_row(*(escape(c) for c in row))
    return fit


# -- init ---------------------------------------------------------------------------------------
@ci_app.command("init")
def init_ci(
    github: Annotated[
        bool, typer.Option("--github", help="Write a GitHub Actions workflow.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing workflow.")] = False,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            help="Schema file the workflow validates with (a path in the work tree).",
            show_default=False,
        ),
    ] = None,
    base_branch: Annotated[
        str, typer.Option("--base-branch", help="The branch pull requests are compared with.")
    ] = "main",
    install: Annotated[
        str, typer.Option("--install", help="What the workflow installs with pip.")
    ] = "coral-vcs",
    json_output: JSON = False,
) -> None:
    """Write a CI workflow that runs `coral ci validate`, and `coral ci report` on pull
    requests (posted as a comment)."""
    from coral.porcelain.ci.workflow import write_github_workflow

    if not github:
        raise CoralError(
            "say which CI system to write a workflow for",
            hint="pass --github (GitHub Actions is the one Coral writes)",
        )
    result = write_github_workflow(
        repo_root(), force=force, schema=schema, base_branch=base_branch, install=install
    )
    if json_output:
        emit_json(result.to_dict())
        return
    verb = "overwrote" if result.overwritten else "wrote"
    out().print(escape(f"{verb} {result.path}"))
    out().print(
        "set the repository variable CORAL_REMOTE to your Coral remote's URL (unless .coral is "
        "in the work tree)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(ci_app, name="ci", rich_help_panel=PANEL)

"""`coral publish`: export a commit to a folder, the Hugging Face Hub or an MLflow registry, and
list what was published (`coral publish history`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from coral.cli._common import (
    complete_ref,
    emit_json,
    err,
    human_bytes,
    open_repo,
    out,
    parse_metrics,
    parse_size,
)
from coral.cli.tables import Column, FitTable
from coral.core.hashing import is_hash
from coral.errors import CoralError

if TYPE_CHECKING:
    from coral.registry import ModelPublisher, PublishResult

PANEL = "Publishing"

publish_app = typer.Typer(
    name="publish",
    help="Publish a commit: to a local folder, the Hugging Face Hub or an MLflow Model Registry.",
    no_args_is_help=True,
)


class ExportFormat(StrEnum):
    safetensors = "safetensors"
    pt = "pt"
    npz = "npz"


class RegistryChoice(StrEnum):
    huggingface = "huggingface"
    mlflow = "mlflow"
    local = "local"


Ref = Annotated[
    str,
    typer.Option(
        "--ref", "-r", help="Commit, branch or tag to publish.", autocompletion=complete_ref
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
MaxShardSize = Annotated[
    str | None,
    typer.Option(
        "--max-shard-size", help="Split safetensors output into shards of at most this size (5GiB)."
    ),
]
Description = Annotated[
    str | None, typer.Option("--description", "-d", help="Description to publish.")
]
Metrics = Annotated[
    list[str] | None, typer.Option("--metric", "-m", help="NAME=VALUE metric (repeatable).")
]
IncludeTrainingState = Annotated[
    bool,
    typer.Option(
        "--include-training-state",
        help="Also publish a training checkpoint's optimizer, scheduler and RNG tensors.",
    ),
]


@contextmanager
def _publisher(max_shard_size: str | None) -> Iterator[ModelPublisher]:
    """A ModelPublisher on the current repository whose steps show as a spinner on stderr."""
    from coral.registry import ModelPublisher
    from coral.registry.snapshot import DEFAULT_MAX_SHARD_BYTES

    repo = open_repo()
    shard = parse_size(max_shard_size) if max_shard_size else DEFAULT_MAX_SHARD_BYTES
    console = err()
    if not console.is_terminal:
        yield ModelPublisher(repo, max_shard_bytes=shard)
        return
    with console.status("publishing") as status:

        def update(message: str) -> None:
            status.update(escape(message))

        yield ModelPublisher(repo, max_shard_bytes=shard, on_progress=update)


def _report(result: PublishResult, json_output: bool) -> None:
    """Print a result; a failure exits with status 1."""
    if json_output:
        emit_json(result.to_dict())
    elif result.success:
        meta = result.metadata
        console = out()
        console.print(
            f"[green]published[/green] {escape(str(meta.get('commit_hash', ''))[:10])} "
            f"({meta.get('weight_count', 0)} tensors, {human_bytes(meta.get('total_bytes', 0))}) "
            f"to {result.registry.value}: [bold]{escape(result.model_name)}[/bold]"
        )
        if result.version:
            version = result.version[:10] if is_hash(result.version) else result.version
            console.print(f"  version: {escape(version)}")
        if result.url:
            console.print(f"  url:     {escape(result.url)}")
        if meta.get("run_id"):
            console.print(f"  run id:  {escape(str(meta['run_id']))}")
        if meta.get("files"):
            console.print(f"  files:   {escape(', '.join(meta['files']))}")
    if not result.success:
        if not json_output:
            lines = (result.error or "unknown error").splitlines()
            err().print(
                f"[bold red]error:[/bold red] publishing to {result.registry.value} "
                f"failed: {escape(lines[0])}"
            )
            for line in lines[1:]:
                err().print(escape(line))
        raise typer.Exit(1)


def _tags_mapping(pairs: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CoralError(
                f"bad tag {pair!r}",
                hint="write MLflow tags as KEY=VALUE, e.g. --tag stage=production",
            )
        tags[key.strip()] = value.strip()
    return tags


@publish_app.command("local")
def publish_local(
    path: Annotated[
        Path, typer.Argument(help="Folder to export into (created if missing).", file_okay=False)
    ],
    ref: Ref = "HEAD",
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="safetensors, pt (torch state dict) or npz.",
        ),
    ] = ExportFormat.safetensors,
    no_metadata: Annotated[
        bool, typer.Option("--no-metadata", help="Do not write coral_metadata.json.")
    ] = False,
    max_shard_size: MaxShardSize = None,
    include_training_state: IncludeTrainingState = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier export in the folder.")
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Export a commit into a new or empty folder: model.safetensors, model.pt or model.npz,
    plus coral_metadata.json (--force replaces an earlier export there)."""
    with _publisher(max_shard_size) as publisher:
        result = publisher.publish_local(
            path,
            commit_ref=ref,
            format=format.value,
            include_metadata=not no_metadata,
            include_training_state=include_training_state,
            force=force,
        )
    _report(result, json_output)


@publish_app.command("huggingface")
def publish_huggingface(
    repo_id: Annotated[
        str, typer.Argument(help="Hub repository, e.g. my-org/my-model (created if missing).")
    ],
    ref: Ref = "HEAD",
    private: Annotated[
        bool, typer.Option("--private", help="Create the repository as private.")
    ] = False,
    description: Description = None,
    base_model: Annotated[
        str | None, typer.Option("--base-model", help="The model this one was fine-tuned from.")
    ] = None,
    metric: Metrics = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Model card tag (repeatable).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)."),
    ] = None,
    max_shard_size: MaxShardSize = None,
    include_training_state: IncludeTrainingState = False,
    json_output: JsonOutput = False,
) -> None:
    """Upload a commit to the Hugging Face Hub with a generated model card (honours HF_ENDPOINT)."""
    with _publisher(max_shard_size) as publisher:
        result = publisher.publish_huggingface(
            repo_id,
            commit_ref=ref,
            private=private,
            description=description,
            base_model=base_model,
            metrics=parse_metrics(metric) or None,
            tags=tag or None,
            token=token,
            include_training_state=include_training_state,
        )
    _report(result, json_output)


@publish_app.command("mlflow")
def publish_mlflow(
    name: Annotated[str, typer.Argument(help="Registered model name (created if missing).")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow tracking server, e.g. http://127.0.0.1:5000.",
        ),
    ] = None,
    ref: Ref = "HEAD",
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Experiment for the run (default: Default)."),
    ] = None,
    description: Description = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="KEY=VALUE tag on the run and the version (repeatable)."),
    ] = None,
    metric: Metrics = None,
    max_shard_size: MaxShardSize = None,
    include_training_state: IncludeTrainingState = False,
    json_output: JsonOutput = False,
) -> None:
    """Log a commit as an MLflow run and register it as a new model version."""
    with _publisher(max_shard_size) as publisher:
        result = publisher.publish_mlflow(
            name,
            commit_ref=ref,
            tracking_uri=tracking_uri,
            experiment_name=experiment,
            description=description,
            tags=_tags_mapping(tag) or None,
            metrics=parse_metrics(metric) or None,
            include_training_state=include_training_state,
        )
    _report(result, json_output)


@publish_app.command("history")
def publish_history(
    registry: Annotated[
        RegistryChoice | None, typer.Option("--registry", help="Only this registry.")
    ] = None,
    success_only: Annotated[
        bool, typer.Option("--success-only", help="Only successful publishes.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many entries.")
    ] = 20,
    json_output: JsonOutput = False,
) -> None:
    """List past publishes, newest first."""
    from coral.registry import ModelPublisher, RegistryType

    publisher = ModelPublisher(open_repo())
    results = publisher.get_history(
        registry=RegistryType(registry.value) if registry else None,
        success_only=success_only,
        limit=limit,
    )
    if json_output:
        emit_json([r.to_dict() for r in results])
        return
    if not results:
        out().print("nothing published yet")
        return
    table = FitTable(
        [
            Column("when", drop=20),
            Column("registry", drop=40),
            Column("model", key=True),
            Column("version", keep=True),
            Column("commit", drop=30),
            Column("status", keep=True),
        ]
    )
    errors: list[str] = []
    for r in results:
        version = r.version or "-"
        if r.registry is not RegistryType.MLFLOW:  # commit hashes: the short form
            version = version[:10]
        status = "[green]ok[/green]"
        if not r.success:
            errors.append((r.error or "unknown error").splitlines()[0])
            status = f"[red]failed[/red] \\[{len(errors)}]"
        table.add_row(
            r.published_at.astimezone().strftime("%m-%d %H:%M"),
            r.registry.value,
            escape(r.model_name),
            escape(version),
            escape(str(r.metadata.get("commit_hash") or r.metadata.get("commit_ref") or "-")[:10]),
            status,
        )
    console = out()
    table.render(console)
    for i, error in enumerate(errors, 1):  # whole, below the table: never cut in a cell
        console.print(f"\\[{i}] {escape(error)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(publish_app, name="publish", rich_help_panel=PANEL)

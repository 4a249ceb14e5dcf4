"""Framework files in and out, and a run's checkpoints: `coral import-onnx`,
`coral import-tensorflow`, `coral import-keras`, `coral export-onnx`, `coral checkpoints`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coral.cli._common import emit_json, open_repo, out
from coral.errors import CoralError, NothingToCommitError

ORDER = 26  # position of this group in `coral --help`
PANEL = "Training"


def _commit_import(
    path: Path,
    fmt: str,
    load: Callable[[Path], Mapping[str, Any]],
    message: str | None,
    author: str | None,
    json_output: bool,
    info: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
) -> None:
    repo = open_repo()
    weights = load(path)
    if not weights:
        raise CoralError(
            f"no tensors found in {path}", hint="check that the file holds the model's weights"
        )
    repo.add_all_weights(weights)
    if files:
        repo.add_files(files)
    msg = message or f"Import {path}"
    try:
        commit = repo.commit(
            msg,
            author=author,
            metadata={"import": {"source": str(path), "format": fmt, **(info or {})}},
            allow_empty=False,
        )
    except NothingToCommitError as exc:
        raise NothingToCommitError(
            f"{path} holds the same tensors as HEAD: nothing to commit",
            hint="the checkpoint is already committed",
        ) from exc
    if json_output:
        emit_json({"commit_hash": commit, "tensors": len(weights), "format": fmt, **(info or {})})
        return
    out().print(
        escape(f"imported {len(weights)} tensors ({fmt}) from {path.name} as {commit[:10]}")
    )
    producer = (info or {}).get("onnx") or {}
    if producer.get("producer"):
        made = f"{producer['producer']} {producer.get('producer_version') or ''}".strip()
        out().print(escape(f"  made by {made}, opsets {producer.get('opsets') or {}}"))


_MESSAGE = typer.Option("--message", "-m", help="Commit message (default: 'Import PATH').")
_AUTHOR = typer.Option("--author", help="Commit author.")
_JSON = typer.Option("--json", help="Print JSON.")


def import_onnx(
    path: Annotated[Path, typer.Argument(help="An .onnx model file.")],
    message: Annotated[str | None, _MESSAGE] = None,
    author: Annotated[str | None, _AUTHOR] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Commit the initializers (weights) of an ONNX model, who made it, and its graph (the
    template `coral export onnx` fills)."""
    from coral.integrations.onnx_io import GRAPH_FILE, read_onnx_model

    weights, info, graph = read_onnx_model(path)
    _commit_import(
        path,
        "onnx",
        lambda _: weights,
        message,
        author,
        json_output,
        info={"onnx": info},
        files={GRAPH_FILE: graph},
    )


def import_tensorflow(
    path: Annotated[
        Path,
        typer.Argument(help="A SavedModel folder, or a TF checkpoint (prefix, .index or folder)."),
    ],
    message: Annotated[str | None, _MESSAGE] = None,
    author: Annotated[str | None, _AUTHOR] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Commit the variables of a TensorFlow SavedModel or checkpoint."""
    from coral.integrations import tensorflow_io

    if tensorflow_io.is_saved_model(path):
        _commit_import(
            path, "savedmodel", tensorflow_io.load_saved_model, message, author, json_output
        )
    elif tensorflow_io.is_tf_checkpoint(path):
        _commit_import(
            path, "tf-checkpoint", tensorflow_io.load_tf_checkpoint, message, author, json_output
        )
    else:
        raise CoralError(
            f"{path} is neither a SavedModel folder nor a TensorFlow checkpoint",
            hint="pass the folder holding saved_model.pb, or a checkpoint prefix / .index file",
        )


def import_keras(
    path: Annotated[Path, typer.Argument(help="A .keras model file.")],
    message: Annotated[str | None, _MESSAGE] = None,
    author: Annotated[str | None, _AUTHOR] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Commit the weights of a Keras 3 `.keras` file (named by layer path)."""
    from coral.integrations.keras import load_keras_file

    _commit_import(path, "keras", load_keras_file, message, author, json_output)


def export_onnx(
    ref: Annotated[str, typer.Argument(help="The commit to export (branch, tag, hash).")],
    output: Annotated[Path, typer.Argument(help="The .onnx file to write.")],
    template: Annotated[
        Path | None,
        typer.Option(
            "--template",
            "-t",
            help="An ONNX graph of the same model (e.g. from torch.onnx.export); default: the "
            "graph `coral import onnx` committed.",
            dir_okay=False,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail unless every weight and initializer match up.")
    ] = False,
    history: Annotated[
        int,
        typer.Option("--history", min=0, help="Commits listed in the model's coral.history."),
    ] = 10,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Write a commit's weights into the initializers of an ONNX graph, with its history."""
    from coral.integrations.onnx_io import export_onnx as export

    report = export(open_repo(), ref, template, output, strict=strict, history=history)
    if json_output:
        emit_json(
            {
                "commit_hash": report.commit,
                "path": str(report.path),
                "replaced": report.replaced,
                "kept": report.kept,
                "unused": report.unused,
                "history": history,
            }
        )
        return
    out().print(
        escape(f"wrote {output}: {len(report.replaced)} initializers from {report.commit[:10]}")
    )
    if report.kept:
        out().print(
            escape(f"kept from the template (not in the commit): {', '.join(report.kept[:8])}")
        )
    if report.unused:
        out().print(escape(f"not in the graph: {', '.join(report.unused[:8])}"))


def checkpoints(
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", help="Branch (default: HEAD's).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Include checkpoints retention pruned.")
    ] = False,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """List the training checkpoints of a branch (oldest first)."""
    from coral.training.checkpoint_index import CheckpointIndex
    from coral.training.commit import branch_for

    repo = open_repo()
    name = branch_for(repo, branch)
    infos = CheckpointIndex(repo).list(name, include_pruned=all_)
    if json_output:
        emit_json([i.to_dict() for i in infos])
        return
    if not infos:
        out().print(f"no checkpoints on {escape(name)}")
        return
    table = Table(
        "commit", "step", "epoch", "metrics", "saved", "why", title=f"checkpoints on {name}"
    )
    for i in infos:
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in i.metrics.items()
        )
        when = datetime.fromtimestamp(i.created_at).strftime("%Y-%m-%d %H:%M:%S")
        why = (i.reason or "") + (" (pruned)" if i.pruned else "")
        table.add_row(
            i.commit[:10],
            str(i.step),
            "" if i.epoch is None else str(i.epoch),
            escape(metrics),
            when,
            why,
        )
    out().print(table)


def register(app: typer.Typer) -> None:
    app.command("import-onnx", rich_help_panel=PANEL)(import_onnx)
    app.command("import-tensorflow", rich_help_panel=PANEL)(import_tensorflow)
    app.command("import-keras", rich_help_panel=PANEL)(import_keras)
    app.command("export-onnx", rich_help_panel=PANEL)(export_onnx)
    app.command(rich_help_panel=PANEL)(checkpoints)

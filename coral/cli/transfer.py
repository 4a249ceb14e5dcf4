"""Checkpoint files in and out: `coral import`, `coral export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from coral.cli._common import (
    MetricOption,
    complete_ref,
    emit_json,
    human_bytes,
    open_repo,
    out,
    parse_metrics,
    parse_size,
    progress,
)
from coral.cli.staging import (
    ClusterOption,
    ConfigOption,
    DatasetOption,
    choose_cluster,
    print_commit_line,
)

ORDER = 20  # position of this group in `coral --help`
PANEL = "Files"


def import_(
    path: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint file or folder: .safetensors, .pt/.bin, .npz, an HF folder, .onnx, "
            ".keras, a TensorFlow checkpoint (.index or its folder) or SavedModel folder."
        ),
    ],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Commit message (default: 'Import PATH').")
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Commit author.")] = None,
    metric: MetricOption = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Prepend this to every tensor name.")
    ] = "",
    replace: Annotated[
        bool, typer.Option("--replace", help="Remove HEAD tensors that are not in the checkpoint.")
    ] = False,
    config: ConfigOption = None,
    dataset: DatasetOption = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Record the model this fine-tunes: a ref, or a name (default for a Hugging "
            "Face folder: its config.json's _name_or_path).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cluster: ClusterOption = None,
) -> None:
    """Stage a checkpoint (and a model folder's files) and commit it (`coral add` +
    `coral commit`)."""
    from coral.cli.provenance import recorded_provenance
    from coral.porcelain.add import load_paths
    from coral.porcelain.import_ import import_checkpoint

    repo = open_repo()
    (ckpt,) = load_paths([path], prefix)
    recorded = recorded_provenance(repo, config, dataset, base)
    choose_cluster(repo, cluster)
    with progress(f"importing {len(ckpt.weights)} tensors", len(ckpt.weights)) as bar:
        result = import_checkpoint(
            repo,
            path,
            loaded=ckpt,
            message=message,
            author=author,
            metrics=parse_metrics(metric),
            prefix=prefix,
            replace=replace,
            progress=bar,
            provenance=recorded,
        )
    added = result.added
    if json_output:
        emit_json(
            {
                "commit_hash": result.commit_hash,
                "tensors": added.tensors,
                "files": added.files,
                **added.counts,
            }
        )
        return
    out().print(f"imported {added.tensors} tensors ({added.describe()})")
    print_commit_line(repo, result.commit_hash, result.message)


def export(
    ref: Annotated[
        str,
        typer.Argument(
            help="The commit to export (branch, tag, hash).", autocompletion=complete_ref
        ),
    ],
    path: Annotated[Path, typer.Argument(help="Output file, or folder for --format hf.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="safetensors, pt, npz or hf (a model folder); default: from PATH's suffix.",
        ),
    ] = None,
    layers: Annotated[
        str | None, typer.Option("--layers", "-l", help="Only tensors matching this pattern.")
    ] = None,
    max_shard_size: Annotated[
        str | None, typer.Option("--max-shard-size", help="Shard safetensors output, e.g. 5GB.")
    ] = None,
    include_training_state: Annotated[
        bool,
        typer.Option(
            "--include-training-state",
            help="Also export a training checkpoint's optimizer, scheduler and RNG tensors.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write a commit's tensors to a checkpoint file (bit-exact); as a model folder (hf),
    with the commit's model files (config.json, tokenizer files, ...).

    For a training checkpoint, only the model's weights (tied ones under every name)."""
    from coral.porcelain.export import export_commit

    repo = open_repo()
    with progress(f"exporting {ref}", None) as bar:
        result = export_commit(
            repo,
            ref,
            path,
            fmt=fmt,
            layers=layers,
            max_shard_bytes=parse_size(max_shard_size) if max_shard_size else None,
            include_training_state=include_training_state,
            progress=bar,
        )
    if json_output:
        emit_json(
            {
                "commit_hash": result.commit_hash,
                "tensors": result.tensors,
                "bytes": result.bytes,
                "files": [str(f) for f in result.files],
            }
        )
        return
    out().print(
        f"exported {result.tensors} tensors ({human_bytes(result.bytes)}) from "
        f"{result.commit_hash[:10]} to " + ", ".join(escape(str(f)) for f in result.files)
    )


def register(app: typer.Typer) -> None:
    app.command("import", rich_help_panel=PANEL)(import_)
    app.command(rich_help_panel=PANEL)(export)

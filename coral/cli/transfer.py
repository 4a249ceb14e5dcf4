"""Checkpoint files in and out: `coral import`, `coral export`."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import (
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
    describe_counts,
    load_checkpoints,
    print_commit_line,
    refuse_empty_commit,
    stage_weights,
)
from coral.errors import CoralError

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
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Record a metric NAME=VALUE (repeatable).")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Prepend this to every tensor name.")
    ] = "",
    replace: Annotated[
        bool, typer.Option("--replace", help="Remove HEAD tensors that are not in the checkpoint.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Stage a checkpoint and commit it (`coral add` + `coral commit`)."""
    repo = open_repo()
    weights, (ckpt,) = load_checkpoints([path], prefix)
    if not weights:
        raise CoralError(
            f"no tensors found in {path}",
            hint="check that the checkpoint holds tensors (a state_dict)",
        )
    counts = stage_weights(repo, weights, replace)
    metadata: dict[str, Any] = {
        "import": {
            "source": str(path),
            "format": ckpt.format,
            "files": [str(f) for f in ckpt.files],
        }
    }
    if ckpt.metadata:
        metadata["import"]["metadata"] = ckpt.metadata
    metrics = parse_metrics(metric)
    if metrics:
        metadata["metrics"] = metrics
    msg = message or f"Import {path}"
    refuse_empty_commit(
        repo,
        what=f"{path} holds the same tensors as HEAD: ",
        hint="HEAD already holds them (`coral show HEAD` lists them)"
        + ("; --replace also removes HEAD tensors the checkpoint lacks" if not replace else ""),
    )
    commit_hash = repo.commit(msg, author=author, metadata=metadata)
    if json_output:
        emit_json({"commit_hash": commit_hash, "tensors": len(weights), **counts})
        return
    out().print(f"imported {len(weights)} tensors ({describe_counts(counts)})")
    print_commit_line(repo, commit_hash, msg)


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
    """Write a commit's tensors to a checkpoint file (bit-exact).

    For a training checkpoint, only the model's weights (tied ones under every name)."""
    from coral.integrations.formats import FORMATS, save_weights
    from coral.integrations.pytorch import model_weights
    from coral.training.state import TRAINING_KEY

    if fmt is not None and fmt not in FORMATS:
        raise CoralError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    repo = open_repo()
    commit = repo.get_commit(ref)
    stored = repo.get_all_weights(commit.commit_hash, lazy=True)
    lazy = stored
    if not include_training_state:  # a training checkpoint: the model's weights, ties restored
        lazy = model_weights(stored, commit.metadata.get(TRAINING_KEY))
    if layers:
        lazy = {n: w for n, w in lazy.items() if fnmatch.fnmatchcase(n, layers)}
    if not lazy:
        # what matches but was left out is training state
        held_back = any(fnmatch.fnmatchcase(n, layers or "*") for n in stored)
        raise CoralError(
            f"no {'model ' if held_back else ''}tensors to export from {ref}"
            + (f" matching {layers!r}" if layers else ""),
            hint=f"list the tensors with `coral show {ref}`"
            + (", or pass --include-training-state" if held_back else ""),
        )
    with progress(f"reading {len(lazy)} tensors", len(lazy)) as advance:
        arrays = {}
        for name, w in lazy.items():
            arrays[name] = w.data
            advance()
    metadata: dict[str, Any] = {"coral_commit": commit.commit_hash, "coral_ref": ref}
    source_meta = (commit.metadata.get("import") or {}).get("metadata") or {}
    if isinstance(source_meta.get("config"), dict):
        metadata["config"] = source_meta["config"]
    files = save_weights(
        arrays,
        path,
        format=fmt,
        max_shard_bytes=parse_size(max_shard_size) if max_shard_size else None,
        metadata=metadata,
    )
    total = sum(int(a.nbytes) for a in arrays.values())
    if json_output:
        emit_json(
            {
                "commit_hash": commit.commit_hash,
                "tensors": len(arrays),
                "bytes": total,
                "files": [str(f) for f in files],
            }
        )
        return
    out().print(
        f"exported {len(arrays)} tensors ({human_bytes(total)}) from {commit.commit_hash[:10]} to "
        + ", ".join(escape(str(f)) for f in files)
    )


def register(app: typer.Typer) -> None:
    app.command("import", rich_help_panel=PANEL)(import_)
    app.command(rich_help_panel=PANEL)(export)

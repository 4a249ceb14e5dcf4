"""Moving in from other tools: `coral import-pytorch`, `coral import-wandb`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import emit_json, fmt_float, open_repo, out, progress

ORDER = 27  # after the other training commands in `coral --help`
PANEL = "Training"
_WIDTH = 78

_MESSAGE = typer.Option("--message", "-m", help="Commit message (default: 'Import FILE').")
_BRANCH = typer.Option("--branch", "-b", help="Branch to commit onto (default: HEAD's).")
_AUTHOR = typer.Option("--author", help="Commit author.")
_JSON = typer.Option("--json", help="Print JSON.")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pairs(values: Mapping[str, Any], limit: int = _WIDTH) -> str:
    """`a=1, b=0.5, ...` cut to `limit` columns."""
    text = ", ".join(
        f"{k}={fmt_float(v) if isinstance(v, float) else v}" for k, v in values.items()
    )
    return _cut(text, limit)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def import_pytorch(
    path: Annotated[
        Path,
        typer.Argument(
            help="A torch.save state dict, a training checkpoint dict, or a Lightning .ckpt."
        ),
    ],
    message: Annotated[str | None, _MESSAGE] = None,
    branch: Annotated[str | None, _BRANCH] = None,
    author: Annotated[str | None, _AUTHOR] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Commit a PyTorch or Lightning checkpoint, optimizer state included."""
    from coral.porcelain.import_pytorch import import_pytorch as run

    result = run(open_repo(), path, message=message, author=author, branch=branch)
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    console.print(
        escape(f"imported {path.name} ({result.kind}) as {result.commit_hash[:10]}"),
        escape(f"on {result.branch}"),
    )
    facts = [_plural(result.tensors, "tensor")]
    if result.optimizers:
        facts.append(_plural(result.optimizers, "optimizer state"))
    if result.schedulers:
        facts.append(_plural(result.schedulers, "scheduler state"))
    facts.append(f"step {result.step}")
    if result.epoch is not None:
        facts.append(f"epoch {result.epoch}")
    console.print(escape("  " + ", ".join(facts)))
    if result.metrics:
        console.print(escape("  metrics: " + _pairs(result.metrics, _WIDTH - 11)))
    if result.hyper_parameters:
        console.print(escape("  hyper-parameters: " + _pairs(result.hyper_parameters, _WIDTH - 20)))


def import_wandb(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A local W&B run directory (wandb/run-...; wandb/ for its latest run) or a "
            "downloaded artifact folder."
        ),
    ],
    branch: Annotated[str | None, _BRANCH] = None,
    author: Annotated[str | None, _AUTHOR] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Commit each checkpoint of a local W&B run, with its config and metrics."""
    from coral.porcelain.import_wandb import import_wandb as run
    from coral.porcelain.import_wandb import read_wandb_run

    repo = open_repo()
    found = read_wandb_run(run_dir)
    with progress(f"importing {len(found.checkpoints)} checkpoints", len(found.checkpoints)) as bar:
        result = run(repo, run_dir, branch=branch, author=author, progress=bar, run=found)
    if json_output:
        emit_json(result.to_dict())
        return
    console = out()
    console.print(
        escape(
            f"imported {_plural(len(result.commits), 'checkpoint')} of W&B {result.kind} "
            f"{result.run_id} onto {result.branch}"
        )
    )
    for c in result.commits:
        step = "" if c.step is None else f"step {c.step}"
        line = f"  {c.commit_hash[:10]}  {step:<11} {c.file}"
        if c.metrics:
            line += "  " + _pairs(c.metrics)
        console.print(escape(_cut(line, _WIDTH)))
    if result.skipped:
        n = _plural(len(result.skipped), "checkpoint")
        console.print(
            escape(_cut(f"  already on {result.branch}: {n} ({', '.join(result.skipped)})", _WIDTH))
        )
    if result.config_keys:
        keys = _cut(", ".join(result.config_keys), _WIDTH - 20)
        console.print(escape(f"config: {_plural(len(result.config_keys), 'key')} ({keys})"))


def register(app: typer.Typer) -> None:
    app.command("import-pytorch", rich_help_panel=PANEL)(import_pytorch)
    app.command("import-wandb", rich_help_panel=PANEL)(import_wandb)

"""Staging and committing: `coral add`, `status`, `commit`, `reset`, `rm`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from coral.cli._common import (
    MetricOption,
    complete_weight,
    emit_json,
    err,
    first_line,
    human_bytes,
    note,
    open_repo,
    out,
    parse_metrics,
    progress,
)
from coral.errors import CoralError, NothingToCommitError

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

ORDER = 10  # position of this group in `coral --help`
PANEL = "Stage and commit"
_BATCH_BYTES = 256 << 20
_BATCH_TENSORS = 256

ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        help="Encode chunks on this Dask scheduler's workers (tcp://HOST:PORT; `local`: "
        "this machine). Default: CORAL_DASK_SCHEDULER, else [cluster] scheduler.",
    ),
]

AuthorOption = Annotated[
    str | None,
    typer.Option("--author", help="Author (default: CORAL_AUTHOR, config or user name)."),
]

# What a commit records of where it came from (`coral commit`, `save`, `import`).
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Record this training config (hashed; kept when small)."),
]
DatasetOption = Annotated[
    list[Path] | None,
    typer.Option("--dataset", help="Record this dataset file or folder's hash (repeatable)."),
]
BaseOption = Annotated[
    str | None,
    typer.Option("--base", help="Record the model this fine-tunes: a ref, or a name."),
]


def choose_cluster(repo: Repository, address: str | None) -> None:
    """Connect to the cluster the command runs on (a line on stderr says which)."""
    from coral.porcelain.cluster import use_cluster

    chosen = use_cluster(repo, address)
    if chosen.scheduler is not None:
        err().print(f"[dim]encoding on {escape(chosen.description)}[/dim]")


def add(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Checkpoint files or folders: .safetensors (or an index), "
            ".pt/.bin/.pth/.ckpt, .npz, a Hugging Face model folder, .onnx, .keras, "
            "a TensorFlow checkpoint (.index or its folder) or SavedModel folder."
        ),
    ],
    prefix: Annotated[
        str, typer.Option("--prefix", help="Prepend this to every tensor name.")
    ] = "",
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Also stage removal of HEAD tensors not in the checkpoint."),
    ] = False,
    cluster: ClusterOption = None,
) -> None:
    """Stage the tensors of checkpoint files or folders (and a model folder's files:
    config.json, tokenizer files, ...)."""
    from coral.integrations.formats._common import tensor_bytes
    from coral.porcelain.add import add_paths, load_paths

    repo = open_repo()
    loaded = load_paths(paths, prefix)
    choose_cluster(repo, cluster)
    for ckpt in loaded:
        sources = ", ".join(map(str, ckpt.sources))
        note(f"{ckpt.path}: {ckpt.format}, {len(ckpt.weights)} tensors from {sources}")
    total_tensors = sum(len(c.weights) for c in loaded)
    if not total_tensors:
        raise CoralError(
            f"no tensors found in {', '.join(map(str, paths))}",
            hint="check that the checkpoint holds tensors (a state_dict)",
        )
    total = sum(tensor_bytes(c.weights) for c in loaded)
    with progress(f"staging {total_tensors} tensors ({human_bytes(total)})", total_tensors) as bar:
        result = add_paths(repo, paths, replace=replace, progress=bar, loaded=loaded)
    out().print(f"staged {total_tensors} tensors ({human_bytes(total)}): {result.describe()}")


def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the current branch and the staged changes."""
    repo = open_repo()
    st = repo.status()
    if json_output:
        emit_json(st.to_dict())
        return
    console = out()
    if st.detached:
        console.print(f"HEAD detached at {(st.head or '')[:10]}")
    else:
        console.print(f"On branch [bold]{escape(st.branch or '')}[/bold]")
    if st.unborn:
        console.print("No commits yet")
    if st.is_clean:
        console.print(
            "nothing staged"
            + (" (use `coral add FILE` to stage a checkpoint)" if st.unborn else "")
        )
        return
    console.print("Changes to be committed:")
    for label, names, colour in (
        ("new", st.added, "green"),
        ("modified", st.modified, "yellow"),
        ("deleted", st.removed, "red"),
    ):
        for name in names:
            console.print(f"  [{colour}]{label + ':':<10}{escape(name)}[/{colour}]")


def commit(
    message: Annotated[str, typer.Option("--message", "-m", help="Commit message.")],
    author: AuthorOption = None,
    metric: MetricOption = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Commit even if nothing changed.")
    ] = False,
    config: ConfigOption = None,
    dataset: DatasetOption = None,
    base: BaseOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Record the staged tensors as a new commit."""
    from coral.cli.provenance import recorded_provenance

    repo = open_repo()
    choose_cluster(repo, cluster)
    metrics = parse_metrics(metric)
    if not allow_empty:
        refuse_empty_commit(repo)
    metadata = {"metrics": metrics} if metrics else {}
    metadata.update(recorded_provenance(repo, config, dataset, base))
    commit_hash = repo.commit(
        message,
        author=author,
        metadata=metadata or None,
        allow_empty=allow_empty,
    )
    print_commit_line(repo, commit_hash, message)


def refuse_empty_commit(
    repo: Repository,
    what: str = "",
    hint: str = "stage changed weights with `coral add`, or pass --allow-empty",
) -> None:
    """The CLI never records a commit that changes nothing (the API may, on request).
    `what` prefixes the message; `hint` says what the calling command can do instead."""
    if repo.head_commit() is not None and not repo.staged_changes():
        where = repo.current_branch or "detached HEAD"
        raise NothingToCommitError(f"{what}nothing to commit on {where}", hint=hint)


def print_commit_line(repo: Repository, commit_hash: str, message: str) -> None:
    where = repo.current_branch or "detached HEAD"
    count = len(repo.get_tree(commit_hash).entries)
    out().print(escape(f"[{where} {commit_hash[:10]}] {first_line(message)} ({count} tensors)"))


def reset(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Tensor names to unstage (default: all).", autocompletion=complete_weight
        ),
    ] = None,
) -> None:
    """Unstage changes (the stored tensors stay until `coral gc`)."""
    n = open_repo().unstage(names or None)
    out().print(f"unstaged {n} change{'s' if n != 1 else ''}")


def rm(
    names: Annotated[
        list[str], typer.Argument(help="Tensor names to remove.", autocompletion=complete_weight)
    ],
) -> None:
    """Stage the removal of tensors from the next commit."""
    repo = open_repo()
    for name in names:
        repo.remove_weight(name)
    out().print(f"staged removal of {len(names)} tensor{'s' if len(names) != 1 else ''}")


def register(app: typer.Typer) -> None:
    for command in (add, status, commit, reset, rm):
        app.command(rich_help_panel=PANEL)(command)

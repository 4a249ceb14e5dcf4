"""`coral save PATH... -m MSG`: `coral add` and `coral commit` in one step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from coral.cli._common import (
    MetricOption,
    emit_json,
    human_bytes,
    open_repo,
    out,
    parse_metrics,
    progress,
)
from coral.cli.staging import (
    AuthorOption,
    BaseOption,
    ClusterOption,
    ConfigOption,
    DatasetOption,
    choose_cluster,
    print_commit_line,
)

ORDER = 11  # right after `add` and `commit`
PANEL = "Stage and commit"


def save(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Checkpoint files or folders (whatever `coral add` reads)."),
    ],
    message: Annotated[str, typer.Option("--message", "-m", help="Commit message.")],
    author: AuthorOption = None,
    metric: MetricOption = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Prepend this to every tensor name.")
    ] = "",
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Also remove HEAD tensors that are not in the checkpoint."),
    ] = False,
    config: ConfigOption = None,
    dataset: DatasetOption = None,
    base: BaseOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cluster: ClusterOption = None,
) -> None:
    """Stage checkpoint files and commit them in one step (`coral add` + `coral commit`)."""
    from coral.integrations.formats._common import tensor_bytes
    from coral.porcelain.add import load_paths
    from coral.porcelain.save import save_paths

    repo = open_repo()
    metadata: dict[str, Any] = {"metrics": parse_metrics(metric)} if metric else {}
    if config is not None or dataset or base:
        from coral.cli.provenance import recorded_provenance

        metadata.update(recorded_provenance(repo, config, dataset, base))
    loaded = load_paths(paths, prefix)
    choose_cluster(repo, cluster)
    count = sum(len(c.weights) for c in loaded)
    size = human_bytes(sum(tensor_bytes(c.weights) for c in loaded))
    with progress(f"saving {count} tensors ({size})", count) as bar:
        result = save_paths(
            repo,
            paths,
            message,
            author=author,
            metadata=metadata or None,
            prefix=prefix,
            replace=replace,
            progress=bar,
            loaded=loaded,
        )
    if json_output:
        emit_json(result)
        return
    out().print(f"staged {result.added.tensors} tensors ({size}): {result.added.describe()}")
    print_commit_line(repo, result.commit_hash, message)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(save)

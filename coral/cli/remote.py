"""Remotes: `coral remote add|list|remove|show`, `push`, `fetch`, `pull`, `clone`, `sync`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from coral.cli._common import JsonOption, emit_json, err, human_bytes, open_repo, out
from coral.errors import CoralError
from coral.remotes.config import RemoteConfig, redact_url
from coral.remotes.layout import NonFastForwardError
from coral.remotes.remote import PullResult, PushResult, Remote, RemoteManager

ORDER = 45
PANEL = "Remotes"
JSON = JsonOption
remote_app = typer.Typer(help="Manage remotes (S3, MinIO, GCS, Azure Blob, folders).")


TOKEN_FILE = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="http(s) remotes: a file holding the token (its path is kept, never the token).",
        show_default=False,
    ),
]


CA_FILE = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        help="https remotes: a PEM certificate to trust (a server with a self-signed one).",
        show_default=False,
    ),
]


def _stored_path(path: Path | None) -> str | None:
    """A token or CA file as stored: absolute, so the remote works from any directory."""
    return None if path is None else str(path.expanduser().absolute())


def _manager() -> RemoteManager:
    return RemoteManager(open_repo().coral_dir / "remotes.json")


def _remote(name: str | None) -> Remote:
    manager = _manager()
    names = manager.list()
    if name is None:
        if not names:
            raise CoralError("no remote is configured", hint="add one: coral remote add origin URL")
        name = "origin" if "origin" in names else names[0]
    return manager.get(name)


@contextmanager
def _bytes_bar(description: str) -> Iterator[Any]:
    """A live bar of bytes moved (size, rate) on stderr; silent when it is no terminal."""
    console = err()
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"{description} ({phase})", completed=done, total=total)

        yield update


# -- coral remote ...  ----------------------------------------------------------------------------
@remote_app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="Name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="s3://, minio://host:port/, gs://, az:// or file://")],
    region: Annotated[str | None, typer.Option(help="Cloud region.")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint.")
    ] = None,
    token_file: TOKEN_FILE = None,
    ca_file: CA_FILE = None,
    json_output: JSON = False,
) -> None:
    """Add a remote (credentials come from the cloud's environment, never from this file; an
    http(s) remote's token from --token-file, else CORAL_REMOTE_TOKEN)."""
    manager = _manager()
    config = RemoteConfig.from_url(
        name,
        url,
        region=region,
        endpoint_url=endpoint_url,
        token_file=_stored_path(token_file),
        ca_file=_stored_path(ca_file),
    )
    manager.add(config, replace_existing=False)
    if json_output:
        emit_json(config.public_dict())
        return
    out().print(f"added remote {escape(name)} → {escape(redact_url(url))}")


@remote_app.command("list")
def remote_list(json_output: JSON = False) -> None:
    """List the remotes."""
    manager = _manager()
    configs = [manager.config(n) for n in manager.list()]
    if json_output:
        emit_json([c.public_dict() for c in configs])
        return
    for c in configs:
        out().print(f"{escape(c.name)}\t{escape(redact_url(c.url))}")


@remote_app.command("remove")
def remote_remove(name: Annotated[str, typer.Argument(help="The remote.")]) -> None:
    """Remove a remote (and its tracking refs); nothing on the remote is deleted."""
    repo = open_repo()
    if not _manager().remove(name):
        raise CoralError(f"no remote named {name!r}", hint="list them with `coral remote list`")
    repo.remote_refs.forget_remote(name)
    out().print(f"removed remote {escape(name)}")


@remote_app.command("show")
def remote_show(
    name: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    json_output: JSON = False,
) -> None:
    """What a remote holds: refs, packs, weights, bytes."""
    remote = _remote(name)
    info = remote.get_remote_info()
    if json_output:
        emit_json(info)
        return
    out().print(f"[bold]{escape(remote.name)}[/bold] {escape(info['url'])}")
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("backend", str(info["backend"]))
    table.add_row("packs", f"{info['packs']} ({human_bytes(info['bytes'])})")
    table.add_row("weights", str(info["weights"]))
    for ref, commit in sorted(info["refs"].items()):
        table.add_row(ref, commit[:10])
    out().print(table)


@remote_app.command("gc")
def remote_gc(
    name: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="Keep unreachable packs younger than this many seconds (a push may "
            "still be under way).",
        ),
    ] = 3600.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only say what would be deleted.")
    ] = False,
    json_output: JSON = False,
) -> None:
    """Delete the remote's packs that no branch or tag needs (pushes wait while it runs)."""
    remote = _remote(name)
    result = remote.gc(grace_seconds=grace, dry_run=dry_run, repo=open_repo())
    if json_output:
        emit_json(result.to_dict())
        return
    if result.aborted:
        raise CoralError(result.aborted, hint=f"coral remote gc {remote.name}")
    verb = "would delete" if dry_run else "deleted"
    out().print(
        f"{verb} {len(result.deleted)} packs ({human_bytes(result.bytes_freed)}); kept "
        f"{result.packs_kept} with live objects and {result.young} younger than {grace:g} s"
    )


# -- transfers ----------------------------------------------------------------------------------
def push(
    remote: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    branch: Annotated[
        str | None, typer.Argument(help="Branch to push (default: the current one).")
    ] = None,
    all_branches: Annotated[bool, typer.Option("--all", help="Push every branch.")] = False,
    tags: Annotated[bool, typer.Option("--tags", help="Push tags too.")] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite the remote's refs.")
    ] = False,
    json_output: JSON = False,
) -> None:
    """Upload what the remote lacks, then move its refs (never overwriting unless --force)."""
    repo = open_repo()
    target = _remote(remote)
    branches = None if all_branches else [branch or _current_branch(repo)]
    with _bytes_bar(f"push {target.name}") as bar:
        result = target.push(repo, force=force, branches=branches, tags=tags, progress=bar)
    _report_push(target, result, json_output)


def _current_branch(repo: Any) -> str:
    head = repo.refs.head()
    if head.branch is None:
        raise CoralError("HEAD is detached", hint="name the branch: coral push origin BRANCH")
    return str(head.branch)


def _report_push(remote: Remote, result: PushResult, json_output: bool) -> None:
    if json_output:
        emit_json({"remote": remote.name, **_push_dict(result)})
    else:
        for name, (old, new) in sorted(result.refs.items()):
            arrow = f"{old[:10]}..{new[:10]}" if old else f"new {new[:10]}"
            out().print(f"{escape(remote.name)}/{escape(_short(name))}: {arrow}")
        out().print(
            f"pushed {result.pushed_objects} objects ({result.pushed_weights} tensors, "
            f"{result.pushed_commits} commits), {human_bytes(result.bytes_transferred)}; "
            f"{result.skipped_objects} already there"
        )
    if result.errors:
        raise NonFastForwardError(result.errors[0])


def _push_dict(result: PushResult) -> dict[str, Any]:
    return {
        "pushed_weights": result.pushed_weights,
        "pushed_objects": result.pushed_objects,
        "pushed_commits": result.pushed_commits,
        "bytes_transferred": result.bytes_transferred,
        "skipped_objects": result.skipped_objects,
        "refs": {k: {"old": o, "new": n} for k, (o, n) in result.refs.items()},
        "errors": result.errors,
    }


def _pull_dict(result: PullResult) -> dict[str, Any]:
    return {
        "pulled_weights": result.pulled_weights,
        "pulled_objects": result.pulled_objects,
        "pulled_commits": result.pulled_commits,
        "bytes_transferred": result.bytes_transferred,
        "refs": result.refs,
        "updated_branch": result.updated_branch,
        "errors": result.errors,
    }


def _short(name: str) -> str:
    return name[len("heads/") :] if name.startswith("heads/") else name


LAYERS = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        help="Fetch only tensors whose names match this glob (repeatable); "
        "the others are fetched when first read.",
    ),
]
LAZY = Annotated[
    bool,
    typer.Option("--lazy", help="Fetch commits and trees only; tensors when first read."),
]


def fetch(
    remote: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    layers: LAYERS = None,
    lazy: LAZY = False,
    json_output: JSON = False,
) -> None:
    """Download what the remote's refs need and update the tracking refs (origin/main)."""
    repo = open_repo()
    target = _remote(remote)
    with _bytes_bar(f"fetch {target.name}") as bar:
        result = target.fetch(repo, layers=layers, lazy=lazy, progress=bar)
    if json_output:
        emit_json({"remote": target.name, **_pull_dict(result)})
        return
    for name, commit in sorted(result.refs.items()):
        out().print(f"{escape(target.name)}/{escape(_short(name))}: {commit[:10]}")
    out().print(
        f"fetched {result.pulled_objects} objects ({result.pulled_weights} tensors), "
        f"{human_bytes(result.bytes_transferred)}"
    )


def pull(
    remote: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    branch: Annotated[str | None, typer.Argument(help="Branch (default: the current).")] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="Merge strategy when the branches diverged (e.g. average, theirs)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Reset a diverged branch to the remote's.")
    ] = False,
    json_output: JSON = False,
) -> None:
    """Fetch, then fast-forward the branch (or merge with --strategy when it diverged)."""
    repo = open_repo()
    target = _remote(remote)
    with _bytes_bar(f"pull {target.name}") as bar:
        result = target.pull(repo, force=force, branch=branch, progress=bar)
    merged = None
    if result.errors and strategy is not None and "diverged" in result.errors[0]:
        name = branch or _current_branch(repo)
        merged = repo.merge(f"{target.name}/{name}", strategy=strategy)
        result.errors = []
    if json_output:
        emit_json({"remote": target.name, **_pull_dict(result), "merged": bool(merged)})
    if result.errors:
        raise CoralError(result.errors[0], hint="or pull with --strategy average|ours|theirs")
    if not json_output:
        moved = f", {result.updated_branch} fast-forwarded" if result.updated_branch else ""
        if merged is not None:
            moved = f", merged {target.name}/{branch or _current_branch(repo)}"
        out().print(
            f"pulled {result.pulled_objects} objects ({result.pulled_weights} tensors), "
            f"{human_bytes(result.bytes_transferred)}{moved}"
        )


def clone(
    url: Annotated[str, typer.Argument(help="The remote's URL.")],
    directory: Annotated[Path | None, typer.Argument(help="Where (default: from the URL).")] = None,
    name: Annotated[str, typer.Option("--origin", "-o", help="Name of the remote.")] = "origin",
    layers: LAYERS = None,
    lazy: LAZY = False,
    token_file: TOKEN_FILE = None,
    ca_file: CA_FILE = None,
    json_output: JSON = False,
) -> None:
    """Create a repository from a remote: add it as `origin`, fetch, check out its branch.

    With --layers or --lazy the clone is partial: tensors left behind are fetched from the
    remote when first read."""
    from coral.version_control.repository import Repository

    target_dir = directory or Path(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "repo")
    config = RemoteConfig.from_url(
        name, url, token_file=_stored_path(token_file), ca_file=_stored_path(ca_file)
    )
    remote = Remote.from_config(config)
    info = remote.get_remote_info()  # fails early (unreachable, not a Coral remote)
    if not info["initialized"]:
        raise CoralError(f"{redact_url(url)} holds no Coral repository", hint="push to it first")
    repo = Repository.init(target_dir, default_branch=str(info["default_branch"] or "main"))
    try:
        RemoteManager(repo.coral_dir / "remotes.json").add(config)
        with _bytes_bar(f"clone {redact_url(url)}") as bar:
            result = remote.pull(repo, layers=layers, lazy=lazy, progress=bar)
    finally:
        repo.close()
    if json_output:
        emit_json({"path": str(Path(target_dir).absolute()), **_pull_dict(result)})
        return
    partial = " (partial: the rest is fetched when first read)" if layers or lazy else ""
    out().print(
        f"cloned into {escape(str(target_dir))}: {result.pulled_commits} commits, "
        f"{result.pulled_weights} tensors, {human_bytes(result.bytes_transferred)}{partial}"
    )


def sync(
    remote: Annotated[str | None, typer.Argument(help="The remote (default origin).")] = None,
    direction: Annotated[str, typer.Option(help="push, pull or both.")] = "both",
    json_output: JSON = False,
) -> None:
    """Pull, then push (or only one of them)."""
    from coral.remotes.sync import sync_repositories

    repo = open_repo()
    target = _remote(remote)
    with err().status(f"syncing with {target.name}…"):
        stats = sync_repositories(repo, target, direction=direction)
    pushed, pulled = stats["push"], stats["pull"]
    if json_output:
        emit_json(
            {
                "push": _push_dict(pushed) if pushed else None,
                "pull": _pull_dict(pulled) if pulled else None,
            }
        )
    else:
        if pulled is not None:
            out().print(f"pulled {pulled.pulled_objects} objects")
        if pushed is not None:
            out().print(f"pushed {pushed.pushed_objects} objects")
    errors = [*(pulled.errors if pulled else []), *(pushed.errors if pushed else [])]
    if errors:
        raise CoralError(errors[0])


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote", rich_help_panel=PANEL)
    for command in (push, fetch, pull, clone, sync):
        app.command(rich_help_panel=PANEL)(command)

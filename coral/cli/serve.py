"""`coral serve` (the web dashboard) and `coral share REF --link` (its URL for a commit, a
diff or a tensor).

FastAPI and uvicorn are imported only when `coral serve` runs; `coral share` needs neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from coral.cli._common import complete_ref, emit_json, err, open_repo, out
from coral.errors import CoralError
from coral.web import access, links

ORDER = 36  # after `coral browse` in `coral --help`
PANEL = "History"


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; beyond loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = links.DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Require this token on every request (?token=, or a bearer header)."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="Read the token from this file's first line.", dir_okay=False
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No request log.")] = False,
) -> None:
    """Serve a read-only web dashboard of the repository (Ctrl-C stops).

    History with its graph, commits, diffs with the block heatmap, metrics and experiment
    curves, storage, remotes and publishes, and a JSON API under /api/. Binds 127.0.0.1 unless
    told otherwise; any other address needs --token or --token-file."""
    if token is not None and token_file is not None:
        raise CoralError("give --token or --token-file, not both")
    if token_file is not None:
        token = access.read_token_file(token_file)
    access.check_bind(host, token)
    try:
        from coral.web.app import create_app
        from coral.web.server import serve_forever
    except ImportError as exc:  # the `web` extra is not installed
        raise CoralError(
            f"coral serve needs FastAPI and uvicorn ({exc})", hint="pip install 'coral-vcs[web]'"
        ) from None
    repo = open_repo()
    app = create_app(repo, token=token)
    base = links.base_url(host, port)
    record = links.ServerRecord(base, token, os.getpid())
    written = links.write_record(repo.coral_dir, record)
    console = err()
    console.print(f"Coral dashboard of {escape(str(repo.path))}")
    console.print(f"  {escape(links.share_url(base, '/', token))}")
    if written is None:
        console.print("[dim](read-only repository: `coral share` needs --url)[/dim]")
    console.print("[dim]read-only; Ctrl-C stops[/dim]")
    try:
        serve_forever(app, host, port, quiet=quiet)
    finally:
        links.remove_record(repo.coral_dir, os.getpid())


def share(
    target: Annotated[
        str,
        typer.Argument(
            help="A commit (branch, tag, hash, HEAD~2), A..B for a diff, or REF:TENSOR.",
            autocompletion=complete_ref,
        ),
    ],
    link: Annotated[
        bool, typer.Option("--link", help="Print the dashboard link (the one way to share yet).")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="The dashboard's base URL (default: the running `coral serve`)."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="The dashboard's token (default: its own).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the dashboard link of a commit, a diff (A..B) or a tensor (REF:NAME).

    The link names full hashes, so it keeps showing the same thing when branches move, and
    carries the token when the server has one."""
    del link  # a link is what sharing prints for now; the flag names it
    repo = open_repo()
    if ".." in target and ":" not in target:
        a, _, b = target.partition("..")
        old, new = repo.resolve_ref(a or "HEAD"), repo.resolve_ref(b or "HEAD")
        path, what = links.diff_path(old, new), {"from": old, "to": new}
    elif ":" in target:
        ref, _, name = target.partition(":")
        commit = repo.resolve_ref(ref or "HEAD")
        if name not in repo.get_tree(commit).entries:
            raise CoralError(
                f"no tensor named {name!r} in {ref or 'HEAD'}",
                hint=f"list the tensors with `coral show {ref or 'HEAD'}`",
            )
        path, what = links.tensor_path(commit, name), {"commit": commit, "tensor": name}
    else:
        commit = repo.resolve_ref(target)
        path, what = links.commit_path(commit), {"commit": commit}
    record = links.read_record(repo.coral_dir)
    base = (url or (record.url if record else f"http://127.0.0.1:{links.DEFAULT_PORT}")).rstrip("/")
    if token is None and record is not None and record.url == base:
        token = record.token
    full = links.share_url(base, path, token)
    if json_output:
        emit_json({"url": full, **what, "server_running": bool(record and record.running)})
        return
    out().print(full, markup=False, soft_wrap=True)
    if url is None and (record is None or not record.running):
        err().print(
            "[dim]no `coral serve` runs for this repository: the link works once one serves "
            f"it at {escape(base)}[/dim]"
        )


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(serve)
    app.command(rich_help_panel=PANEL)(share)

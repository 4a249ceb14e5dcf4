"""`coral serve` (the web dashboard; with `--remote` the repository as an HTTP remote too),
`coral serve token create|list|revoke` (the remote's ACL file) and `coral share REF --link`
(the dashboard's URL for a commit, a diff or a tensor).

FastAPI and uvicorn are imported only when `coral serve` runs; `coral share` and the token
commands need neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from coral.cli._common import JsonOption, complete_ref, emit_json, err, open_repo, out
from coral.errors import CoralError
from coral.web import access, links

ORDER = 36  # after `coral browse` in `coral --help`
PANEL = "History"
serve_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
token_app = typer.Typer(
    help="Tokens of the HTTP remote (`coral serve --remote --acl FILE`): hashes in FILE.",
    no_args_is_help=True,
)
serve_app.add_typer(token_app, name="token")
ACL = Annotated[
    Path,
    typer.Option("--acl", help="The ACL file (TOML) holding the tokens' hashes.", dir_okay=False),
]
JSON = JsonOption


@serve_app.callback()
def serve(
    ctx: typer.Context,
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
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Also serve the repository as an HTTP remote at /remote/ (clone, fetch, "
            "pull; push with --acl).",
        ),
    ] = False,
    acl: Annotated[
        Path | None,
        typer.Option(
            "--acl",
            help="Tokens and what each may read and push (implies --remote); see "
            "`coral serve token create`.",
            dir_okay=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="Serve https with this PEM certificate (and its chain); needs --tls-key.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            help="The private key (PEM) of --tls-cert.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve a read-only web dashboard of the repository (Ctrl-C stops).

    History with its graph, commits, diffs with the block heatmap, metrics and experiment
    curves, storage, remotes and publishes, and a JSON API under /api/. Binds 127.0.0.1 unless
    told otherwise; any other address needs --token or --token-file. With --remote the
    repository is also a remote at /remote/ that `coral clone / fetch / pull / push` use:
    read-only without --acl; with it, each request needs a token from the ACL file."""
    if ctx.invoked_subcommand is not None:
        return
    if token is not None and token_file is not None:
        raise CoralError("give --token or --token-file, not both")
    if token_file is not None:
        token = access.read_token_file(token_file)
    if (tls_cert is None) != (tls_key is None):
        raise CoralError(
            "https needs both --tls-cert and --tls-key",
            hint="give the PEM certificate and its private key",
        )
    access.check_bind(host, token)
    try:
        from coral.web.app import create_app
        from coral.web.server import Tls, serve_forever
    except ImportError as exc:  # the `web` extra is not installed
        raise CoralError(
            f"coral serve needs FastAPI and uvicorn ({exc})", hint="pip install 'coral-vcs[web]'"
        ) from None
    repo = open_repo()
    app = create_app(repo, token=token, remote=remote, acl=acl)
    tls = Tls(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    base = links.base_url(host, port, "https" if tls else "http")
    record = links.ServerRecord(base, token, os.getpid())
    written = links.write_record(repo.coral_dir, record)
    console = err()
    console.print(f"Coral dashboard of {escape(str(repo.path))}")
    console.print(f"  {escape(links.share_url(base, '/', token))}")
    if written is None:
        console.print("[dim](read-only repository: `coral share` needs --url)[/dim]")
    if remote or acl is not None:
        url = escape(f"{base}/remote/")
        if acl is None:
            console.print(f"HTTP remote (read-only: push needs --acl): {url}")
        else:
            count = len(app.state.remote.acl.current().tokens)
            console.print(f"HTTP remote: {url} ({count} tokens in {escape(str(acl))})")
    console.print("[dim]the dashboard is read-only; Ctrl-C stops[/dim]")
    try:
        serve_forever(app, host, port, quiet=quiet, tls=tls)
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


# -- coral serve token ... ----------------------------------------------------------------------
@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who holds it (recorded in the audit log).")],
    acl: ACL,
    write: Annotated[
        list[str] | None,
        typer.Option(
            "--write", help="Branches it may push: a name or pattern (`feature/*`); repeatable."
        ),
    ] = None,
    read: Annotated[
        list[str] | None,
        typer.Option(
            "--read", help="Branches it may fetch (default `*`: all, and tags); repeatable."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Issue a new secret for an existing name.")
    ] = False,
    json_output: JSON = False,
) -> None:
    """Create a token and print it, once: the ACL file keeps only its SHA-256.

    Clients send it as `CORAL_REMOTE_TOKEN`. Patterns match branch names (`main`,
    `feature/*`) and `tags/NAME`; write implies read. A running `coral serve` sees the new
    token at once."""
    from coral.web.acl import AccessList

    acl_list = AccessList.load(acl, missing_ok=True)
    secret = acl_list.create(name, read=read or (), write=write or (), replace=replace)
    entry = acl_list.tokens[name]
    if json_output:
        emit_json({**entry.public_dict(), "token": secret, "acl": str(acl)})
        return
    out().print(secret, markup=False, soft_wrap=True)
    err().print(
        f"[dim]token {escape(name)}: read {escape(', '.join(entry.read) or '-')}; write "
        f"{escape(', '.join(entry.write) or '-')}. It is shown only now; "
        f"{escape(str(acl))} keeps its hash.[/dim]"
    )


@token_app.command("list")
def token_list(acl: ACL, json_output: JSON = False) -> None:
    """The tokens of an ACL file and what each may do (never the secrets)."""
    from coral.web.acl import AccessList

    entries = sorted(AccessList.load(acl).tokens.values(), key=lambda e: e.name)
    if json_output:
        emit_json([e.public_dict() for e in entries])
        return
    if not entries:
        err().print(f"no tokens in {escape(str(acl))}")
    for e in entries:
        out().print(
            f"{e.name}  read: {', '.join(e.read) or '-'}  write: {', '.join(e.write) or '-'}",
            markup=False,
        )


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")], acl: ACL) -> None:
    """Remove a token: the next request that carries it is refused (401)."""
    from coral.web.acl import AccessList

    AccessList.load(acl).revoke(name)
    out().print(f"revoked token {escape(name)}")


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve", rich_help_panel=PANEL)
    app.command(rich_help_panel=PANEL)(share)

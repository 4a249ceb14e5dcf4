"""`coral watch DIR`: commit each new checkpoint a training run writes into a folder."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import emit_json, open_repo, out

ORDER = 25  # position of this group in `coral --help`
PANEL = "Training"


def watch(
    directory: Annotated[
        Path, typer.Argument(help="The folder the training run writes checkpoints into.")
    ],
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            "-p",
            help="File/folder name pattern to watch (repeatable; "
            "default: \\[watch] patterns, else common checkpoint suffixes).",
        ),
    ] = None,
    every: Annotated[
        int | None, typer.Option("--every", help="Commit every N-th new checkpoint.")
    ] = None,
    message: Annotated[
        str | None,
        typer.Option(
            "--message", "-m", help="Message template: {filename}, {n} (step in the name), {count}."
        ),
    ] = None,
    debounce_ms: Annotated[
        int | None,
        typer.Option("--debounce-ms", help="A file counts as written once unchanged this long."),
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between polls.")
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", help="Branch to commit to.")
    ] = None,
    existing: Annotated[
        bool, typer.Option("--existing", help="Also commit the checkpoints already in the folder.")
    ] = False,
    max_commits: Annotated[
        int | None, typer.Option("--max-commits", help="Stop after this many commits.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Watch a checkpoint folder and commit each new checkpoint (Ctrl-C stops)."""
    from coral.integrations.formats import load_weights
    from coral.training.watch import CheckpointWatcher, WatchEvent, WatchRules

    repo = open_repo()
    rules = WatchRules.from_config(
        repo.config,
        patterns=pattern or None,
        every=every,
        message=message,
        debounce_ms=debounce_ms,
        interval=interval,
        branch=branch,
        include_existing=existing or None,
    )

    def show(event: WatchEvent) -> None:
        if json_output:
            return
        name = escape(event.path.name)
        if event.action == "committed":
            short = event.commit[:10] if event.commit else ""
            out().print(f"committed {name} ({event.tensors} tensors) as {short}")
        elif event.action == "failed":
            out().print(f"[yellow]could not read {name}: {escape(event.error or '')}[/yellow]")
        else:
            out().print(f"{event.action} {name}")

    watcher = CheckpointWatcher(repo, directory, rules, loader=load_weights, on_event=show)
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def ask_stop(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, ask_stop)
    if not json_output:
        out().print(
            f"watching {escape(str(directory))} ({', '.join(rules.patterns)}) on branch "
            f"{escape(watcher.branch)}; Ctrl-C to stop"
        )
    try:
        summary = watcher.run(stop, max_commits=max_commits)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if json_output:
        emit_json(
            {
                "directory": str(directory),
                "seen": summary.seen,
                "committed": summary.committed,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "commits": summary.commits,
            }
        )
    else:
        out().print(summary.line(directory))


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(watch)

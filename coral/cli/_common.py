"""What every `coral` command shares: the global state, consoles, opening the repository,
JSON output, progress bars, small formatters and shell-completion callbacks.

typer 0.29 carries its own copy of click (`typer._click`): contexts and exceptions come from
there, not from the `click` package.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from typer._click import Context
from typer._click.globals import get_current_context

from coral.core.units import human_bytes as human_bytes  # shared with the reports
from coral.core.units import parse_size as parse_size  # shared with the CI schema
from coral.errors import CoralError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from coral.version_control.repository import Repository


@dataclass
class CLIState:
    """Global options (`--repo/-C`, `--verbose`) and the repository, opened on first use."""

    repo_path: Path | None = None
    verbose: bool = False
    _repo: Repository | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None


def state(ctx: Context | None = None) -> CLIState:
    """The CLIState of the running command (a default one outside the `coral` group)."""
    ctx = ctx or get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is None:
        return CLIState()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj


def repo_root(ctx: Context | None = None) -> Path:
    """The path given with --repo/-C, else the current directory."""
    return state(ctx).repo_path or Path.cwd()


def open_repo(ctx: Context | None = None) -> Repository:
    """The repository at --repo (or the current directory, or a parent of it)."""
    from coral.version_control.repository import Repository

    st = state(ctx)
    if st._repo is None:
        st._repo = Repository(repo_root(ctx), shared_staging=True)  # `coral add`, then `commit`
        root = (ctx or get_current_context()).find_root()
        root.call_on_close(st.close)
    return st._repo


# -- output -----------------------------------------------------------------------------------

# Options that several commands declare alike.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MetricOption = Annotated[
    list[str] | None, typer.Option("--metric", help="Record a metric NAME=VALUE (repeatable).")
]
ListTrainingStateOption = Annotated[
    bool,
    typer.Option(
        "--include-training-state",
        help="Also list optimizer, scheduler and RNG tensors (left out by default).",
    ),
]


def out() -> Console:
    """Console for results (stdout). Created per call so test runners' streams are honoured.
    Tables fit its width: the terminal's, else `COLUMNS`, else 80 (DESIGN §8); plain lines are
    never hard-wrapped by Coral (a name is never broken)."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 80
    return console


def natural_width(renderable: Any) -> int:
    """Columns of the widest line `renderable` prints when nothing is wrapped or shrunk."""
    sink = Console(width=1 << 16, file=io.StringIO(), color_system=None, highlight=False)
    with sink.capture() as captured:
        sink.print(renderable)
    return max((cell_len(line) for line in captured.get().splitlines()), default=0)


def err() -> Console:
    """Console for errors, warnings and progress (stderr); never wraps a line."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print `data` as strict JSON on stdout (no colour, no wrapping: machines read it).
    Objects with `to_dict()` are converted; NaN and infinities become "NaN", "Infinity"."""
    plain = json.loads(json.dumps(data, default=_json_default, allow_nan=True))
    typer.echo(json.dumps(_strict(plain), indent=2, allow_nan=False))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


def note(message: str) -> None:
    """A detail shown only with --verbose (on stderr)."""
    if state().verbose:
        err().print(f"[dim]{escape(message)}[/dim]")


def _bars(console: Console) -> Progress:
    from rich.progress import (  # here: commands that draw no bar do not import it
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on stderr; yields `advance(n=1)`. Silent when stderr is no terminal
    or the work is small."""
    with _bars(err()) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


@contextmanager
def phase_progress() -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A library `progress(phase, done, total)` callback drawing one bar per phase on stderr;
    None (nothing to report to) when stderr is not a terminal."""
    console = err()
    if not console.is_terminal:
        yield None
        return
    tasks: dict[str, TaskID] = {}
    with _bars(console) as bars:

        def report(phase: str, done: int, total: int | None) -> None:
            task = tasks.get(phase)
            if task is None:
                task = tasks[phase] = bars.add_task(escape(phase), total=total)
            bars.update(task, completed=done, total=total)

        yield report


# -- parsing and formatting -------------------------------------------------------------------
def parse_metrics(pairs: Iterable[str] | None) -> dict[str, Any]:
    """`["acc=0.9", "split=val"]` -> {"acc": 0.9, "split": "val"} (numbers parsed)."""
    metrics: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CoralError(
                f"bad metric {pair!r}",
                hint="write metrics as NAME=VALUE, e.g. --metric accuracy=0.93",
            )
        metrics[key.strip()] = _parse_value(value.strip())
    return metrics


def _parse_value(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def fmt_float(x: float | None, spec: str = ".4g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    return format(x, spec)


def fmt_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else ""


# -- shell completion -------------------------------------------------------------------------
# Callbacks get the context click builds while completing (global options parsed, no command
# run): -C/--repo is read from the root context's params.
def _completion_repo(ctx: Context | None) -> Repository | None:
    try:
        from coral.version_control.repository import Repository

        root = ctx.find_root() if ctx is not None else None
        path = (root.params.get("repo") if root is not None else None) or Path.cwd()
        return Repository(path)
    except Exception:  # completion must never fail loudly
        return None


def _complete(
    ctx: Context | None, incomplete: str, names: Callable[[Repository], Iterable[str]]
) -> list[str]:
    repo = _completion_repo(ctx)
    if repo is None:
        return []
    try:
        return sorted(v for v in set(names(repo)) if v.startswith(incomplete))
    except Exception:
        return []
    finally:
        repo.close()


def complete_branch(ctx: typer.Context, incomplete: str) -> list[str]:
    """Branch names."""
    return _complete(ctx, incomplete, lambda r: (b.name for b in r.list_branches()))


def complete_tag(ctx: typer.Context, incomplete: str) -> list[str]:
    """Tag names."""
    return _complete(ctx, incomplete, lambda r: (t.name for t in r.list_tags()))


def complete_ref(ctx: typer.Context, incomplete: str) -> list[str]:
    """Branches, tags and HEAD; after `REF:` the weight names of REF."""
    if ":" in incomplete:
        ref, _, partial = incomplete.partition(":")
        return [
            f"{ref}:{n}" for n in _complete(ctx, partial, lambda r: r.list_weights(ref or "HEAD"))
        ]
    return _complete(
        ctx,
        incomplete,
        lambda r: [*(b.name for b in r.list_branches()), *(t.name for t in r.list_tags()), "HEAD"],
    )


def complete_weight(ctx: typer.Context, incomplete: str) -> list[str]:
    """Weight names of HEAD."""
    return _complete(ctx, incomplete, lambda r: r.list_weights("HEAD"))

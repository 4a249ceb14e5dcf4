"""The `coral` command. Every module of `coral.cli` that defines `register(app)` adds its
commands: a new command group is a new module here, nothing else changes.

Errors are reported in one place (`CoralGroup`): a `CoralError` (or a missing file, a permission
problem) prints `error: ...` and `hint: ...` on stderr and exits 1; usage mistakes exit 2;
`--verbose` adds the full traceback.

The global options `--repo/-C PATH` and `--verbose/-v` may come before the command or after it
(`coral -C repo log` = `coral log -C repo`): every command and group also accepts them.

Before click parses anything, `dispatch.plan` expands aliases, finds scripts in
`.coral/commands/` and rewrites two-word spellings (`coral import onnx FILE`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import os
import pkgutil
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer._click import Command, Context, Parameter
from typer._click import exceptions as click_exceptions
from typer.core import TyperCommand, TyperGroup

import coral
import coral.cli
from coral.cli import coercion, dispatch
from coral.cli._common import err, state
from coral.cli.command_table import COMMAND_MODULES
from coral.core.redact import redact_text
from coral.errors import CoralError

coercion.install()  # plain parameters are converted without pydantic (see coral.cli.coercion)

COMPLETE_VAR = "_CORAL_COMPLETE"  # set by the shell completion scripts
EXIT_ERROR = 1
EXIT_USAGE = 2


def _report(message: str, hint: str | None, command: str = "coral") -> None:
    """`error: MESSAGE` and `hint: HINT` on stderr (a pointer to --help when there is no hint)."""
    hint = redact_text(hint or f"see `{command} --help`")  # no password from a URL is printed
    console = err()
    lines = redact_text(str(message)).strip().splitlines() or ["unknown error"]
    console.print(f"[bold red]error:[/bold red] {escape(lines[0])}")
    for extra in lines[1:]:
        console.print(f"  {escape(extra)}")
    if hint:
        console.print(f"[yellow]hint:[/yellow] {escape(hint)}")


def _describe(exc: BaseException) -> tuple[str, str | None]:
    """(message, hint) for an error the user can act on."""
    if isinstance(exc, CoralError):
        return exc.message, exc.hint
    if isinstance(exc, FileNotFoundError):
        name = exc.filename or (exc.args[0] if exc.args else "")
        return f"no such file or directory: {name}", "check the path"
    if isinstance(exc, IsADirectoryError):
        return f"is a directory: {exc.filename}", "give a file path"
    if isinstance(exc, NotADirectoryError):
        return f"not a directory: {exc.filename}", "check the path"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}", "check the file's permissions"
    if isinstance(exc, UnicodeEncodeError) and "surrogates" in str(exc.reason):
        bad = exc.object[exc.start : exc.end].encode("utf-8", "surrogateescape")
        return (
            f"a name or message is not valid UTF-8 text (byte {bad!r})",
            "Coral keeps names and messages as UTF-8: retype that argument, or check the "
            "terminal's encoding (LANG, LC_ALL)",
        )
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), None
    return (
        f"{type(exc).__name__}: {exc}",
        "this is a bug in Coral; rerun with --verbose and report the traceback",
    )


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test runner's buffer)


GLOBAL_OPTIONS = ("repo", "verbose")  # root options every command accepts too
GLOBAL_PANEL = "Global options"
EXTRAS_PANEL = "Aliases and scripts"
_SENTENCE_END = re.compile(r"(?<![.])(?<!e\.g)(?<!i\.e)\.(?=\s|$)")


def _set_repo(ctx: Context, param: Parameter, value: Any) -> Any:
    if value is not None:  # given after the command: overrides one given before
        state(ctx).repo_path = value
    return value


def _set_verbose(ctx: Context, param: Parameter, value: Any) -> Any:
    if value:
        state(ctx).verbose = True
    return value


_SETTERS = {"repo": _set_repo, "verbose": _set_verbose}


def accept_global_options(command: Command, options: Sequence[Parameter]) -> None:
    """Let `command` (and, for a group, every command below it) take the root's global
    `options` too, wherever its own options go; a command's own option of the same name or
    flag wins."""
    if getattr(command, "_coral_global_options", False):
        return
    command._coral_global_options = True  # type: ignore[attr-defined]
    names = {p.name for p in command.params}
    flags = {f for p in command.params for f in (*p.opts, *p.secondary_opts)}
    for option in options:
        if option.name in names or flags.intersection(option.opts):
            continue
        local = copy.copy(option)
        local.expose_value = False  # the command's function does not take it
        local.is_eager = True  # set before the command's own options are processed
        local.callback = _SETTERS[str(option.name)]
        local.rich_help_panel = GLOBAL_PANEL  # type: ignore[attr-defined]
        command.params.append(local)
    for sub in getattr(command, "commands", {}).values():
        accept_global_options(sub, options)


def summarize(command: Command) -> None:
    """Give `command` (and every command below it) a one-line summary for `--help` lists:
    the first sentence of its help, its hard line breaks joined."""
    if command.short_help is None and command.help:
        first = inspect.cleandoc(command.help).split("\n\n")[0]
        flat = " ".join(first.split())
        end = _SENTENCE_END.search(flat)
        command.short_help = flat[: end.end()] if end else flat
    for sub in getattr(command, "commands", {}).values():
        summarize(sub)


class CoralGroup(TyperGroup):
    """The root group: runs subcommands and turns every failure into error/hint lines."""

    _argv: Sequence[str] = ()
    _extras: dict[str, str] | None = None

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            accept_global_options(command, [p for p in self.params if p.name in GLOBAL_OPTIONS])
            summarize(command)
        elif cmd_name in self.extras():
            command = TyperCommand(
                cmd_name,
                callback=_not_expanded,
                help=self.extras()[cmd_name],
                rich_help_panel=EXTRAS_PANEL,
                add_help_option=False,
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            )
        return command

    def list_commands(self, ctx: Context) -> list[str]:
        names = super().list_commands(ctx)
        return names + [n for n in self.extras() if n not in self.commands]

    def extras(self) -> dict[str, str]:
        """Aliases and scripts of the repository the arguments name, with their help lines."""
        if self._extras is None:
            self._extras = dispatch.extras(self._argv, Path.cwd())
        return self._extras

    def shape(self, name: str) -> dispatch.Shape | None:
        command = self.commands.get(name)
        return dispatch.Shape.of(command) if command is not None else None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click_exceptions.ClickException):
            raise
        except BrokenPipeError:  # `coral log | head`: the reader left; exit 1 quietly, as rich does
            _silence_stdout()
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err().print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if state(ctx).verbose:
                err().print(escape("".join(traceback.format_exception(exc))))
            sub = ctx.invoked_subcommand
            _report(
                *_describe(exc), command=f"{ctx.command_path} {sub}" if sub else ctx.command_path
            )
            raise typer.Exit(EXIT_ERROR) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run with errors reported as `error:`/`hint:` lines; exit (or return) the code."""
        self._argv = list(sys.argv[1:] if args is None else args)
        self._extras = None
        try:
            planned = dispatch.plan(self._argv, self.shape)
            if planned.script is not None:
                code = dispatch.run_script(planned)
                if standalone_mode:
                    sys.exit(code)
                return code
        except CoralError as exc:
            _report(exc.message, exc.hint)
            if standalone_mode:
                sys.exit(EXIT_ERROR)
            return EXIT_ERROR
        try:
            rv = super().main(
                args=planned.args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click_exceptions.UsageError as exc:
            _report(exc.format_message(), None, exc.ctx.command_path if exc.ctx else "coral")
            code = EXIT_USAGE
        except click_exceptions.ClickException as exc:
            exc_ctx = getattr(exc, "ctx", None)
            _report(exc.format_message(), None, exc_ctx.command_path if exc_ctx else "coral")
            code = exc.exit_code
        except typer.Abort:
            err().print("aborted")
            code = EXIT_ERROR
        else:
            if not standalone_mode:
                return rv
            code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _not_expanded() -> None:
    raise CoralError(
        "this alias or script names another repository",
        hint="give -C PATH before the command name",
    )


_root_app = typer.Typer(
    name="coral",
    cls=CoralGroup,
    help="Coral: version control for neural-network weights.",
    no_args_is_help=True,
    add_completion=False,  # `coral completions SHELL` instead
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coral {coral.__version__}")
        raise typer.Exit()


@_root_app.callback()
def _global_options(
    ctx: typer.Context,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            "-C",
            help="Repository path (default: the current directory or a parent); before or "
            "after the command.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details, and full tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    st = state(ctx)
    st.repo_path = repo
    st.verbose = verbose


def register_commands(target: typer.Typer, only: str | None = None) -> list[str]:
    """Import every module of `coral.cli` that has `register(app)` and let it add its commands
    (in the order of the modules' `ORDER`, default 100); with `only`, just that module (whose
    commands `COMMAND_MODULES` names), unless `target` has it already.

    A module whose optional dependency is missing is skipped (named on stderr with --verbose
    or CORAL_DEBUG=1). Returns the registered module names.
    """
    done: set[str] = target.__dict__.setdefault("_coral_registered", set())
    if only is not None:
        if only in done:
            return []
        names = [only]
    else:
        names = [
            info.name
            for info in pkgutil.iter_modules(coral.cli.__path__)
            if not info.name.startswith("_") and info.name != "main"
        ]
        target.registered_commands, target.registered_groups = [], []  # again, in ORDER
        done.clear()
    modules = [m for m in map(_cli_module, names) if m is not None]
    registered = []
    # `ORDER` (default 100) places a module's commands in `coral --help`; then by name.
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        register = getattr(module, "register", None)
        name = module.__name__.rsplit(".", 1)[1]
        if callable(register):
            register(target)
            registered.append(name)
        done.add(name)
    target.__dict__["_coral_all"] = only is None
    return registered


def _cli_module(name: str) -> Any:
    """`coral.cli.NAME`, or None when an optional dependency of it is missing."""
    try:
        return importlib.import_module(f"coral.cli.{name}")
    except ImportError as exc:
        if os.environ.get("CORAL_DEBUG") or any(a in ("-v", "--verbose") for a in sys.argv[1:]):
            err().print(f"warning: commands in coral.cli.{name} unavailable: {escape(str(exc))}")
        return None


def _register_for(target: typer.Typer, name: str | None) -> None:
    """Make sure `target` has command `name` registered (None: every command)."""
    if target.__dict__.get("_coral_all"):
        return
    module = COMMAND_MODULES.get(name) if name is not None else None
    if module is not None:
        register_commands(target, only=module)
    else:  # an unknown name (a plug-in module, a typo) or all of them: look everywhere
        register_commands(target)


class LazyCommands(dict[str, Command]):
    """The root group's commands, each converted from its typer registration on first use:
    `coral status` builds one command, not all of them (`--help` lists, and builds, all)."""

    def __init__(self, target: typer.Typer) -> None:
        super().__init__()
        self._target = target
        self._build: dict[str, Callable[[], Command]] = {}
        self._index()

    def _index(self) -> None:
        """The builders of the commands `target` has registered so far, in its order."""
        target = self._target
        self._build = {}
        short, markup = target.pretty_exceptions_short, target.rich_markup_mode
        for info in target.registered_commands:
            assert info.callback is not None
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            self._build[name] = partial(
                typer.main.get_command_from_info,
                info,
                pretty_exceptions_short=short,
                rich_markup_mode=markup,
            )
        for group in target.registered_groups:
            assert group.name, "a command group needs a name"
            self._build[group.name] = partial(
                typer.main.get_group_from_info,
                group,
                pretty_exceptions_short=short,
                rich_markup_mode=markup,
                suggest_commands=target.suggest_commands,
            )

    def built(self) -> list[str]:
        """The names of the commands built so far."""
        return list(dict.keys(self))

    def _load(self, name: str) -> Command | None:
        if not dict.__contains__(self, name):
            if name not in self._build:
                self._everything(name)
            if name in self._build:
                dict.__setitem__(self, name, self._build[name]())
        return dict.get(self, name)

    def _everything(self, name: str | None = None) -> None:
        """Register the module of `name` (None: all of them) and index what it added."""
        _register_for(self._target, name)
        self._index()

    def get(self, name: str, default: Any = None) -> Any:
        found = self._load(name)
        return default if found is None else found

    def __getitem__(self, name: str) -> Command:
        found = self._load(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in self._build and name in COMMAND_MODULES:
            return self._load(name) is not None
        return name in self._build or dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        self._everything()
        return iter(list(dict.fromkeys([*self._build, *dict.keys(self)])))

    def __len__(self) -> int:
        self._everything()
        return len(set(self._build) | set(dict.keys(self)))

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return [self[n] for n in self]

    def items(self) -> Any:
        return [(n, self[n]) for n in self]


def root_command(target: typer.Typer | None = None) -> Command:
    """The click group of `target` (default: Coral's) with its commands registered and built
    on demand (`LazyCommands`)."""
    target = _root_app if target is None else target
    commands, groups = target.registered_commands, target.registered_groups
    target.registered_commands, target.registered_groups = [], []
    try:
        command = typer.main.get_command(target)
    finally:
        target.registered_commands, target.registered_groups = commands, groups
    command.commands = LazyCommands(target)  # type: ignore[attr-defined]
    return command


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `coral` script."""
    if os.environ.get(COMPLETE_VAR):  # completing a command line: every command is a candidate
        _register_for(_root_app, None)  # (and `completions` registers typer's shell classes)
    command = root_command()
    code = int(command.main(args=argv, prog_name="coral", standalone_mode=False) or 0)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return code


def __getattr__(name: str) -> Any:
    """`app`: the Typer application with every command registered (for `CliRunner` and
    other callers that convert it whole); `coral` itself registers only what it runs."""
    if name == "app":
        _register_for(_root_app, None)
        return _root_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())

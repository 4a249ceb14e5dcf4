"""What `coral ARGS...` runs, before click parses anything: a built-in command, an alias
expanded into one, a script in `.coral/commands/`, or a two-word spelling
(`coral export onnx REF OUT` = `coral export-onnx REF OUT`).

Built-in commands always win; then aliases (which may name other aliases, scripts or
two-word spellings); then scripts. The words after `import` / `export` are rewritten only
when the hyphenated command exists (looked up when it runs: other modules add commands) and
enough arguments follow for it, so `coral import onnx` still imports a file named `onnx`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typer._click import Command

from coral.errors import CoralError, NotARepositoryError
from coral.porcelain.aliases import check_script, read_aliases, read_scripts, split_command
from coral.version_control.repo_config import find_root

TWO_WORD_VERBS = ("import", "export")
TWO_WORD_FORMATS = ("onnx", "pytorch", "tensorflow", "keras", "wandb")
GLOBAL_VALUE_OPTIONS = ("-C", "--repo")  # the root's options that take a value
HELP_OPTIONS = ("-h", "--help")
MAX_EXPANSIONS = 20


@dataclass(frozen=True)
class Shape:
    """What dispatching needs to know of a command: its required arguments, and which of
    its options take a value (so an option's value is not counted as an argument)."""

    required: int
    value_options: frozenset[str] = frozenset()

    @classmethod
    def of(cls, command: Command) -> Shape:
        required = 0
        takes_value: set[str] = set(GLOBAL_VALUE_OPTIONS)
        for param in command.params:
            kind = param.param_type_name
            if kind == "argument" and param.required:
                required += max(param.nargs, 1)
            elif kind == "option" and not (
                getattr(param, "is_flag", False) or getattr(param, "count", False)
            ):
                takes_value.update(param.opts)
                takes_value.update(param.secondary_opts)
        return cls(required, frozenset(takes_value))


Lookup = Callable[[str], Shape | None]  # a built-in command's shape; None: no such command


@dataclass
class Plan:
    """Run `args` as a built-in command, or `script` with `script_args` instead."""

    args: list[str]
    script: Path | None = None
    script_args: list[str] = field(default_factory=list)
    repo: Path | None = None  # the repository aliases and scripts came from
    expanded: list[str] = field(default_factory=list)  # aliases expanded, in order


def command_index(args: Sequence[str]) -> int | None:
    """Index of the command word: the first argument that is no global option (or its value)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        if arg in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1  # -v, --verbose, --repo=PATH, -CPATH, --help, --version, or a mistake
        else:
            return i
    return None


def repo_option(args: Sequence[str], index: int | None) -> str | None:
    """The value of the last -C/--repo before the command (else the first after it)."""
    before = list(args[:index] if index is not None else args)
    after = list(args[index + 1 :]) if index is not None else []
    found = _repo_values(before)
    if found:
        return found[-1]
    later = _repo_values(after[: after.index("--")] if "--" in after else after)
    return later[0] if later else None


def _repo_values(args: Sequence[str]) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--repo="):
            values.append(arg.partition("=")[2])
        elif arg.startswith("-C") and len(arg) > 2:
            values.append(arg[2:])
    return values


def repository_of(args: Sequence[str], cwd: Path) -> Path | None:
    """The root of the repository `args` name (-C) or `cwd` is in; None when there is none."""
    value = repo_option(args, command_index(args))
    start = (cwd / Path(value).expanduser()) if value else cwd
    try:
        return find_root(start.absolute())
    except (NotARepositoryError, OSError):
        return None


def positionals(args: Sequence[str], shape: Shape) -> int:
    """How many of `args` are arguments (not options, nor the values of options)."""
    count, i = 0, 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return count + len(args) - i - 1
        if arg.startswith("--") and "=" in arg:
            i += 1
        elif arg in shape.value_options:
            i += 2
        elif arg.startswith("-") and len(arg) > 1:
            i += 1  # a flag, or a short option with its value attached (-mMSG)
        else:
            count += 1
            i += 1
    return count


def two_word(args: list[str], index: int, lookup: Lookup) -> list[str]:
    """`import onnx FILE` -> `import-onnx FILE` (when import-onnx exists and gets its FILE)."""
    if args[index] not in TWO_WORD_VERBS or index + 1 >= len(args):
        return args
    word = args[index + 1]
    if word not in TWO_WORD_FORMATS:
        return args
    target = f"{args[index]}-{word}"
    shape = lookup(target)
    if shape is None:
        return args
    rest = args[index + 2 :]
    asks_help = any(a in HELP_OPTIONS for a in rest)
    if not asks_help and positionals(rest, shape) < max(shape.required, 1):
        return args
    return [*args[:index], target, *rest]


def plan(args: Sequence[str], lookup: Lookup, *, cwd: Path | None = None) -> Plan:
    """What to run for `coral ARGS...` (reads the repository's aliases and scripts only when
    the command is no built-in)."""
    current = list(args)
    expanded: list[str] = []
    root: Path | None = None
    looked_up = False
    for _ in range(MAX_EXPANSIONS):
        index = command_index(current)
        if index is None:
            return Plan(current, repo=root, expanded=expanded)
        name = current[index]
        if lookup(name) is not None:
            return Plan(two_word(current, index, lookup), repo=root, expanded=expanded)
        if not looked_up:
            root, looked_up = repository_of(current, cwd or Path.cwd()), True
        if root is None:
            return Plan(current, expanded=expanded)
        aliases = read_aliases(root)
        if name in aliases:
            if name in expanded:
                chain = " -> ".join([*expanded, name])
                raise CoralError(
                    f"alias loop: {chain}", hint="`coral alias --remove NAME` breaks it"
                )
            expanded.append(name)
            current = [*current[:index], *split_command(aliases[name]), *current[index + 1 :]]
            continue
        script = read_scripts(root).get(name)
        if script is not None:
            return Plan(
                current,
                script=check_script(script),
                script_args=current[index + 1 :],
                repo=root,
                expanded=expanded,
            )
        return Plan(current, repo=root, expanded=expanded)
    raise CoralError(
        f"aliases expand more than {MAX_EXPANSIONS} times: {' -> '.join(expanded)}",
        hint="`coral alias` lists them; shorten the chain",
    )


def extras(args: Sequence[str], cwd: Path) -> dict[str, str]:
    """The aliases and scripts of the repository `args` name (or `cwd` is in), each with a
    line for `coral --help`."""
    root = repository_of(args, cwd)
    found: dict[str, str] = {}
    if root is not None:
        for name, command in read_aliases(root).items():
            found[name] = f"Alias: coral {command}"
        for name, path in read_scripts(root).items():
            found.setdefault(name, f"Script {path.relative_to(root)}")
    return dict(sorted(found.items()))


def run_script(plan: Plan) -> int:
    """Run the script of `plan` with CORAL_REPO and CORAL_BIN set; its exit status."""
    env = dict(os.environ, CORAL_REPO=str(plan.repo or ""), CORAL_BIN=coral_bin())
    try:
        proc = subprocess.run([str(plan.script), *plan.script_args], env=env, check=False)
    except OSError as exc:
        raise CoralError(
            f"cannot run {plan.script}: {exc.strerror or exc}",
            hint="start it with a #! line naming its interpreter, e.g. #!/bin/sh",
        ) from None
    except KeyboardInterrupt:
        return 130
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def coral_bin() -> str:
    """An executable `coral` for scripts to call: this one when it is a script, else the one
    beside this Python, else the one on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "coral" and os.access(argv0, os.X_OK):
        return str(argv0.absolute())
    beside = Path(sys.executable).parent / "coral"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("coral") or "coral"

"""Your own commands: aliases (`[alias] NAME = "COMMAND ARGS"` in `.coral/config.toml`) and
executable scripts in `.coral/commands/NAME`, both run as `coral NAME ARGS`."""

from __future__ import annotations

import difflib
import os
import re
import shlex
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral.errors import CoralError
from coral.porcelain.config import Target, config_path, repository_root
from coral.porcelain.config_keys import ALIAS_SECTION
from coral.version_control import config_file
from coral.version_control.repo_config import CORAL_DIR, read_raw_config

COMMANDS_DIR = "commands"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Alias:
    """An alias (`command`: what it expands to) or a script (`path`: what runs)."""

    name: str
    kind: str  # "alias" or "script"
    command: str | None = None
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "command": self.command,
            "path": str(self.path) if self.path else None,
        }


def read_aliases(root: Path) -> dict[str, str]:
    """The `[alias]` table of the repository at `root` ({} when unreadable: the command that
    opens the repository reports a broken config.toml)."""
    try:
        table = read_raw_config(config_path(root)).get(ALIAS_SECTION)
    except (CoralError, OSError, tomllib.TOMLDecodeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(v, str) and _NAME.fullmatch(k)}


def read_scripts(root: Path) -> dict[str, Path]:
    """Files in `.coral/commands/` by name (executable or not: running one that is not says
    so)."""
    folder = root / CORAL_DIR / COMMANDS_DIR
    try:
        return {
            p.name: p for p in sorted(folder.iterdir()) if p.is_file() and _NAME.fullmatch(p.name)
        }
    except OSError:
        return {}


def check_script(path: Path) -> Path:
    """`path` if it can run; CoralError saying how to make it runnable otherwise."""
    if not os.access(path, os.X_OK):
        raise CoralError(
            f"{path} is not executable",
            hint=f"make it executable: chmod +x {shlex.quote(str(path))}",
        )
    return path


def list_aliases(target: Target) -> list[Alias]:
    """Aliases, then scripts, each sorted by name."""
    root = repository_root(target)
    aliases = [Alias(n, "alias", command=c) for n, c in sorted(read_aliases(root).items())]
    return aliases + [Alias(n, "script", path=p) for n, p in read_scripts(root).items()]


def split_command(command: str) -> list[str]:
    """`command` split as a shell would (quotes kept together)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise CoralError(f"cannot split {command!r}: {exc}", hint="close the quotes") from None
    if not words:
        raise CoralError("an alias needs a command", hint='e.g. coral alias last "log -n 1"')
    return words


def set_alias(
    target: Target, name: str, command: str, *, builtins: Collection[str]
) -> tuple[Alias, str | None]:
    """Store `[alias] name = command`; returns it and the command it replaced. `builtins`
    are the names an alias may not take; the first word of `command` must be one of them or
    another alias or script."""
    if not _NAME.fullmatch(name):
        raise CoralError(
            f"bad alias name {name!r}",
            hint="start with a letter; then letters, digits, _ and - (up to 64)",
        )
    if name in builtins:
        raise CoralError(
            f"{name!r} is a built-in command: an alias cannot replace it",
            hint="pick another name; built-in commands always run as they are",
        )
    root = repository_root(target)
    aliases, scripts = read_aliases(root), read_scripts(root)
    first = split_command(command)[0]
    known = {*builtins, *aliases, *scripts} - {name}
    if first not in known:
        close = difflib.get_close_matches(first, sorted(known), n=1)
        raise CoralError(
            f"{first!r} is not a coral command, alias or script",
            hint=(f"did you mean {close[0]}? " if close else "")
            + "`coral --help` lists the commands",
        )
    chain, word = [name], first
    while word in aliases or word == name:
        chain.append(word)
        if word == name:
            raise CoralError(
                f"alias loop: {' -> '.join(chain)}",
                hint="an alias may name other aliases, but never itself through them",
            )
        word = split_command(aliases[word])[0]
        if word in chain[1:]:
            break  # an existing loop elsewhere; running it says so
    previous = aliases.get(name)
    config_file.set_key(config_path(root), f"{ALIAS_SECTION}.{name}", command)
    return Alias(name, "alias", command=command), previous


def remove_alias(target: Target, name: str) -> Alias:
    """Remove the alias `name` from config.toml."""
    root = repository_root(target)
    aliases = read_aliases(root)
    if name not in aliases:
        close = difflib.get_close_matches(name, sorted(aliases), n=1)
        raise CoralError(
            f"no alias named {name!r}",
            hint=(f"did you mean {close[0]}? " if close else "") + "`coral alias` lists them",
        )
    config_file.unset_key(config_path(root), f"{ALIAS_SECTION}.{name}")
    return Alias(name, "alias", command=aliases[name])

"""`COMMAND_MODULES` names, for every built-in command, the module that registers it, so
`coral NAME` imports that module alone; a command the table lacks still runs (every module is
then imported), and `coral --help` lists every command in ORDER."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import typer

import coral.cli
from coral.cli.command_table import COMMAND_MODULES


def _registered() -> dict[str, str]:
    found = {}
    for info in pkgutil.iter_modules(coral.cli.__path__):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"coral.cli.{info.name}")
        register = getattr(module, "register", None)
        if not callable(register):
            continue
        target = typer.Typer()
        register(target)
        for command in target.registered_commands:
            assert command.callback is not None
            name = command.name or typer.main.get_command_name(command.callback.__name__)
            found[name] = info.name
        for group in target.registered_groups:
            assert group.name
            found[group.name] = info.name
    return found


def test_the_table_matches_what_the_modules_register() -> None:
    assert _registered() == COMMAND_MODULES, (
        "a command was added, moved or removed: update coral/cli/command_table.py"
    )


_PROBE = """
import json, sys
from coral.cli.main import main
code = main(sys.argv[1:])
names = [m.split(".")[2] for m in sys.modules if m.startswith("coral.cli.") and m.count(".") == 2]
print(json.dumps(sorted(names)), file=sys.stderr)
"""


def _cli_modules(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    names: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return names


def test_a_command_imports_its_own_module_only(repo_path: Path) -> None:
    loaded = set(_cli_modules("-C", str(repo_path), "log", "-n", "1", cwd=repo_path))
    assert "history" in loaded
    others = set(COMMAND_MODULES.values()) - {"history"}
    assert not loaded & others, sorted(loaded & others)


def test_help_and_unknown_names_import_every_module(repo_path: Path) -> None:
    everything = set(COMMAND_MODULES.values())
    assert set(_cli_modules("--help", cwd=repo_path)) >= everything
    assert set(_cli_modules("lgo", cwd=repo_path)) >= everything  # suggestions need them all

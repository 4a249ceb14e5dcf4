"""`coral alias`, scripts in .coral/commands/, and their dispatch."""

from __future__ import annotations

import json
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.porcelain import aliases
from tests.workflows.config.conftest import Proc, Run, assert_user_error


@pytest.fixture
def saved(coral: Run, models: dict[str, Path]) -> None:
    for name in ("base", "tuned"):
        assert coral("save", str(models[name]), "-m", name).exit_code == 0


def _script(repo: Path, name: str, body: str, executable: bool = True) -> Path:
    folder = repo / ".coral" / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_define_list_run_and_remove(coral: Run, repo: Path, saved: None) -> None:
    made = coral("alias", "last", "log -n 1")
    assert made.exit_code == 0 and made.stdout.strip() == "alias last = log -n 1"
    assert tomllib.loads((repo / ".coral" / "config.toml").read_text())["alias"] == {
        "last": "log -n 1"
    }
    run = coral("last", "--json")  # extra arguments go after the expansion
    assert run.exit_code == 0, run.output
    entries = json.loads(run.stdout)
    assert len(entries) == 1 and entries[0]["message"] == "tuned"

    coral("alias", "hist", "last")  # an alias may name another alias
    assert json.loads(coral("hist", "--json").stdout)[0]["message"] == "tuned"

    listed = json.loads(coral("alias", "--json").stdout)
    assert listed == [
        {"name": "hist", "kind": "alias", "command": "last", "path": None},
        {"name": "last", "kind": "alias", "command": "log -n 1", "path": None},
    ]
    assert "last = log -n 1" in coral("alias").stdout
    assert coral("alias", "last").stdout.split() == ["last", "=", "log", "-n", "1"]
    changed = coral("alias", "last", "log -n 2")
    assert "(was: log -n 1)" in changed.stdout

    removed = coral("alias", "--remove", "hist", "--json")
    assert json.loads(removed.stdout)["removed"]["name"] == "hist"
    assert "hist" not in tomllib.loads((repo / ".coral" / "config.toml").read_text())["alias"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("alias", "log", "status"), ("'log' is a built-in command", "another name")),
        (("alias", "save", "log"), ("built-in command",)),
        (("alias", "lg", "lgo -n 1"), ("'lgo' is not a coral command", "did you mean log")),
        (("alias", "lg", "log 'open"), ("cannot split", "quotes")),
        (("alias", "lg", ""), ("needs a command",)),
        (("alias", "9lives", "log"), ("bad alias name",)),
        (("alias", "--remove", "nope"), ("no alias named 'nope'",)),
        (("alias", "nope"), ("no alias or script named 'nope'", "coral alias nope")),
    ],
)
def test_alias_mistakes(
    coral: Run, repo: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    before = (repo / ".coral" / "config.toml").read_text()
    assert_user_error(coral(*args), *fragments)
    assert (repo / ".coral" / "config.toml").read_text() == before


def test_loops_are_refused_and_reported(coral: Run, repo: Path) -> None:
    assert coral("alias", "a", "log").exit_code == 0
    assert coral("alias", "b", "a -n 1").exit_code == 0
    assert_user_error(coral("alias", "a", "b"), "alias loop: a -> b -> a")
    # a loop written by hand into config.toml is reported when it runs
    path = repo / ".coral" / "config.toml"
    path.write_text(path.read_text().replace('a = "log"', 'a = "b"'))
    assert_user_error(coral("a"), "alias loop: a -> b -> a", "coral alias --remove")


def test_a_built_in_command_wins_over_a_hand_written_alias(coral: Run, repo: Path) -> None:
    path = repo / ".coral" / "config.toml"
    path.write_text(path.read_text() + '[alias]\nstatus = "log"\n')
    result = coral("status")
    assert result.exit_code == 0 and "On branch main" in result.stdout
    assert "a built-in command: never runs" in coral("alias").stdout


def test_help_lists_aliases_and_scripts(coral: Run, repo: Path) -> None:
    coral("alias", "last", "log -n 1")
    _script(repo, "hello", "echo hi\n")
    shown = coral("--help", env={"COLUMNS": "80"}).stdout
    assert "Aliases and scripts" in shown
    assert "Alias: coral log -n 1" in shown and "Script .coral/commands/hello" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())


def test_scripts_run_with_the_repository_in_their_environment(
    coral_proc: Proc, repo: Path, tmp_path: Path, saved: None
) -> None:
    _script(
        repo,
        "info",
        'echo "repo=$CORAL_REPO"\necho "args=$#:$1|$2"\n'
        '"$CORAL_BIN" -C "$CORAL_REPO" log --oneline -n 1\nexit 7\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = coral_proc("-C", str(repo), "info", "one", "two words", cwd=elsewhere)
    assert done.returncode == 7, done.stderr  # the script's exit status, passed through
    lines = done.stdout.splitlines()
    assert lines[0] == f"repo={repo}"
    assert lines[1] == "args=2:one|two words"
    assert lines[2].endswith("tuned")

    inside = coral_proc("info", cwd=repo)  # found from the current folder too
    assert inside.returncode == 7 and inside.stdout.startswith(f"repo={repo}")

    _script(repo, "notrun", "echo never\n", executable=False)
    refused = coral_proc("notrun", cwd=repo)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "is not executable" in refused.stderr
    assert "hint: make it executable: chmod +x" in refused.stderr


def test_an_alias_can_name_a_script(coral_proc: Proc, coral: Run, repo: Path) -> None:
    _script(repo, "greet", 'echo "hello $*"\n')
    assert coral("alias", "hi", "greet world").exit_code == 0
    done = coral_proc("hi", "again", cwd=repo)
    assert (done.returncode, done.stdout) == (0, "hello world again\n")
    listed = {a.name: a for a in aliases.list_aliases(repo)}
    assert listed["greet"].kind == "script" and listed["hi"].command == "greet world"


def test_alias_through_the_real_program(coral_proc: Proc, repo: Path, saved: None) -> None:
    made = coral_proc("alias", "last", "log -n 1 --oneline")
    assert made.returncode == 0, made.stderr
    done = coral_proc("last", cwd=repo)
    assert done.returncode == 0 and done.stdout.strip().endswith("tuned")
    bad = coral_proc("alias", "commit", "log")
    assert bad.returncode == 1 and "built-in command" in bad.stderr and "hint:" in bad.stderr


def test_unknown_commands_still_fail_as_usage_errors(tmp_path: Path) -> None:
    outside = CliRunner().invoke(app, ["-C", str(tmp_path), "lgo"])
    assert outside.exit_code == 2 and "No such command 'lgo'" in outside.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX scripts")
def test_the_coral_bin_of_scripts_is_executable(coral_proc: Proc, repo: Path) -> None:
    _script(repo, "where", 'test -x "$CORAL_BIN" && echo ok\n')
    done = coral_proc("where", cwd=repo)
    assert done.stdout == "ok\n", done.stderr
    assert os.access(repo / ".coral" / "commands" / "where", os.X_OK)

"""`-C PATH` and `--verbose` work before or after the subcommand (`coral log -C repo`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ("-C", "{repo}", "log", "--oneline"),
        ("log", "-C", "{repo}", "--oneline"),
        ("log", "--oneline", "-C", "{repo}"),
        ("log", "--repo", "{repo}", "--oneline"),
        ("log", "--repo={repo}", "--oneline"),
    ],
)
def test_repo_option_before_or_after_the_command(repo_path: Path, args: tuple[str, ...]) -> None:
    result = _run(*(a.format(repo=repo_path) for a in args))
    assert result.exit_code == 0, result.output
    assert "second" in result.stdout and "first" in result.stdout


def test_repo_option_after_a_nested_command(repo_path: Path) -> None:
    result = _run("remote", "list", "-C", str(repo_path))
    assert result.exit_code == 0, result.output


def test_repo_option_after_the_command_wins_over_the_one_before(
    repo_path: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    result = _run("-C", str(elsewhere), "log", "-C", str(repo_path), "--oneline")
    assert result.exit_code == 0, result.output
    assert "second" in result.stdout


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_after_the_command(repo_path: Path, flag: str) -> None:
    result = _run("-C", str(repo_path), "show", "no-such-ref", flag)
    assert result.exit_code == 1
    assert "error:" in result.stderr and "Traceback" in result.stderr


def test_verbose_and_repo_both_after_the_command(repo_path: Path) -> None:
    result = _run("show", "no-such-ref", "-v", "-C", str(repo_path))
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "no-such-ref" in result.stderr


def test_option_values_that_look_like_global_options_are_left_alone(repo_path: Path) -> None:
    result = _run("-C", str(repo_path), "tag", "v2", "-m", "-v")
    assert result.exit_code == 0, result.output
    listed = _run("-C", str(repo_path), "tag", "--json")
    assert '"description": "-v"' in listed.stdout


def test_global_options_after_the_command_are_listed_in_its_help(repo_path: Path) -> None:
    result = _run("log", "--help")
    assert result.exit_code == 0
    assert "--repo" in result.stdout and "--verbose" in result.stdout

"""`--token-file` on `coral clone` and `coral remote add`: an http(s) remote keeps the path of
a file holding its token (never the token), so pushes and pulls need no CORAL_REMOTE_TOKEN; a
missing or empty file is one error with a hint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from coral.version_control.repository import Repository
from tests.workflows.http_remote.conftest import Server, assert_cli_error, coral, model, refs_of


def _token_file(tmp_path: Path, name: str, token: str) -> Path:
    path = tmp_path / f"{name}.token"
    path.write_text(token + "\n")  # a trailing newline, as `echo` writes it
    path.chmod(0o600)
    return path


def test_clone_and_push_with_a_token_file(server: Server, tmp_path: Path) -> None:
    writer = _token_file(tmp_path, "writer", server.tokens["writer"])
    clone = tmp_path / "clone"
    cloned = coral("clone", server.url, str(clone), "--token-file", str(writer))
    assert cloned.returncode == 0, cloned.stderr
    stored = (clone / ".coral" / "remotes.json").read_text()
    assert str(writer) in stored and server.tokens["writer"] not in stored
    with Repository(clone) as repo:
        weights = model(0)
        weights["head.weight"] = weights["head.weight"] + np.float32(5)
        repo.add_all_weights(weights)
        new = str(repo.commit("pushed with a token file"))
    pushed = coral("-C", str(clone), "push", "--json")  # no CORAL_REMOTE_TOKEN
    assert pushed.returncode == 0, pushed.stderr
    assert refs_of(server.path)["heads/main"] == new
    listed = json.loads(coral("-C", str(clone), "remote", "list", "--json").stdout)
    assert listed[0]["token_file"] == str(writer)
    for result in (cloned, pushed):
        assert server.tokens["writer"] not in result.stdout + result.stderr


def test_remote_add_with_a_reader_token_file_fetches(server: Server, tmp_path: Path) -> None:
    repo = tmp_path / "mine"
    Repository.init(repo).close()
    reader = _token_file(tmp_path, "reader", server.tokens["reader"])
    added = coral(
        "-C", str(repo), "remote", "add", "origin", server.url, "--token-file", str(reader)
    )
    assert added.returncode == 0, added.stderr
    fetched = coral("-C", str(repo), "fetch", "origin")
    assert fetched.returncode == 0, fetched.stderr


def test_a_missing_or_empty_token_file_is_one_error(server: Server, tmp_path: Path) -> None:
    missing = coral("clone", server.url, str(tmp_path / "a"), "--token-file", "nowhere.token")
    assert_cli_error(missing, "cannot read the token file")
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    refused = coral("clone", server.url, str(tmp_path / "b"), "--token-file", str(empty))
    assert_cli_error(refused, "is empty")


def test_a_token_file_is_for_http_remotes_only(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    Repository.init(repo).close()
    token = _token_file(tmp_path, "t", "secret")
    result = coral(
        "-C", str(repo), "remote", "add", "b", "s3://bucket/x", "--token-file", str(token)
    )
    assert_cli_error(result, "not an http(s) remote")

"""The ACL file and `coral serve token create|list|revoke` (in-process CLI): hashes only,
patterns per branch, clear errors for broken files, and the server refusing a bad ACL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.web.acl import AccessList, AclError, Grant, WatchedAccessList, hash_token
from tests.cli.conftest import assert_user_error
from tests.workflows.http_remote.conftest import build_repository

runner = CliRunner()


def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    acl = AccessList(tmp_path / "acl.toml")
    secret = acl.create("ci", write=["feature/*", "release/*"])
    text = acl.path.read_text()
    assert secret.startswith("coral_") and len(secret) > 40
    assert secret not in text and hash_token(secret) in text
    assert (acl.path.stat().st_mode & 0o777) == 0o600
    grant = AccessList.load(acl.path).authenticate(secret)
    assert grant == Grant("ci", ("*",), ("feature/*", "release/*"))
    assert AccessList.load(acl.path).authenticate(secret + "x") is None
    assert AccessList.load(acl.path).authenticate(None) is None


def test_patterns_per_branch_and_tag() -> None:
    bot = Grant("bot", read=("main",), write=("feature/*",))
    assert bot.may_write("heads/feature/x") and not bot.may_write("heads/main")
    assert bot.may_read("heads/main") and bot.may_read("heads/feature/y")  # write implies read
    assert not bot.may_read("heads/dev") and not bot.may_read("tags/v1")
    tagger = Grant("tagger", write=("tags/*",))
    assert tagger.may_write("tags/v1") and not tagger.may_write("heads/main")
    everything = Grant("admin", write=("*",))
    assert everything.may_write("heads/feature/x") and everything.may_write("tags/v1")
    assert not Grant("none").reads_anything


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[tokens.a]\ntoken = 'plain'\nsha256 = '" + "0" * 64 + "'\n", "plain-text secret"),
        ("[tokens.a]\nsha256 = 'short'\n", "64 hex digits"),
        ("[tokens.a]\nsha256 = '" + "0" * 64 + "'\nwrite = 3\n", "list of patterns"),
        ("tokens = [1", "not valid TOML"),
    ],
)
def test_broken_acl_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "acl.toml"
    path.write_text(text)
    with pytest.raises(AclError, match=fragment):
        AccessList.load(path)


def test_a_running_server_rereads_the_file(tmp_path: Path) -> None:
    acl = AccessList(tmp_path / "acl.toml")
    first = acl.create("one")
    watched = WatchedAccessList(acl.path)
    second = acl.create("two")
    assert watched.current().authenticate(second) is not None
    acl.path.write_text("[tokens.broken\n")  # an edit in progress: keep what was there
    assert watched.current().authenticate(first) is not None
    acl.path.unlink()  # a deleted file lets nobody in
    assert watched.current().authenticate(first) is None


def test_token_commands(tmp_path: Path) -> None:
    acl = str(tmp_path / "acl.toml")
    made = runner.invoke(app, ["serve", "token", "create", "ci", "--write", "main", "--acl", acl])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("coral_") and "\n" not in secret
    as_json = runner.invoke(
        app, ["serve", "token", "create", "bot", "--write", "feature/*", "--acl", acl, "--json"]
    )
    doc = json.loads(as_json.stdout)
    assert set(doc) == {"name", "read", "write", "created", "token", "acl"}
    assert doc["read"] == ["*"] and doc["write"] == ["feature/*"]

    again = runner.invoke(app, ["serve", "token", "create", "ci", "--acl", acl])
    assert_user_error(again, "already exists", "--replace")
    listed = json.loads(
        runner.invoke(app, ["serve", "token", "list", "--acl", acl, "--json"]).stdout
    )
    assert [e["name"] for e in listed] == ["bot", "ci"]
    assert "sha256" not in json.dumps(listed) and secret not in json.dumps(listed)
    text = runner.invoke(app, ["serve", "token", "list", "--acl", acl]).stdout
    assert "ci  read: *  write: main" in text

    assert runner.invoke(app, ["serve", "token", "revoke", "ci", "--acl", acl]).exit_code == 0
    gone = runner.invoke(app, ["serve", "token", "revoke", "ci", "--acl", acl])
    assert_user_error(gone, "no token named 'ci'")
    bad = runner.invoke(app, ["serve", "token", "create", "a b", "--acl", acl])
    assert_user_error(bad, "bad token name")


def test_serve_refuses_a_missing_acl(tmp_path: Path) -> None:
    repo = build_repository(tmp_path / "repo")
    result = runner.invoke(
        app, ["-C", str(repo), "serve", "--remote", "--acl", str(tmp_path / "none.toml")]
    )
    assert_user_error(result, "no ACL file", "coral serve token create")

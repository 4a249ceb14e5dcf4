"""The issue's check: a real `coral serve --remote --acl` on loopback with a reader and writers.

The reader clones (bit-exact, verified) but cannot push (403, audited, server unchanged); the
writer pushes; a writer limited to `feature/*` cannot push main but can push its branch; no
token is a 401; every denial and every write is in the served repository's audit log; no
secret appears in anything the server or the clients print.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from coral.version_control.audit import AuditLog
from coral.version_control.repository import Repository
from tests.workflows.http_remote.conftest import (
    Server,
    assert_cli_error,
    coral,
    model,
    packs_of,
    refs_of,
)


def _same_history(a: Path, b: Path, ref: str, ref_b: str | None = None) -> None:
    """Same commit and tensor bytes at `ref` in `a` as at `ref_b` (default `ref`) in `b`."""
    ref_b = ref_b or ref
    with Repository(a) as left, Repository(b) as right:
        assert left.resolve_ref(ref) == right.resolve_ref(ref_b)
        ours, theirs = left.get_all_weights(ref), right.get_all_weights(ref_b)
        assert sorted(ours) == sorted(theirs)
        for name, tensor in ours.items():
            other = theirs[name]
            assert tensor.data.dtype == other.data.dtype and tensor.data.shape == other.data.shape
            assert tensor.data.tobytes() == other.data.tobytes(), name


def _commit_on(clone: Path, message: str, step: int) -> str:
    with Repository(clone) as repo:
        weights = model(0)
        weights["head.weight"] = weights["head.weight"] + np.float32(step)
        repo.add_all_weights(weights)
        return str(repo.commit(message))


def _entries(server: Server) -> list[dict]:
    with Repository(server.path) as repo:
        return [e.to_dict() for e in AuditLog(repo.database).entries()]


def test_reader_clones_bit_exact_but_cannot_push(server: Server, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    cloned = coral("clone", server.url, str(clone), "--json", token=server.tokens["reader"])
    assert cloned.returncode == 0, cloned.stderr
    doc = json.loads(cloned.stdout)
    assert doc["pulled_commits"] == 2 and doc["updated_branch"] == "main"
    for ref in ("main", "v1", "HEAD~1"):
        _same_history(server.path, clone, ref)
    _same_history(server.path, clone, "feature", "origin/feature")
    assert coral("-C", str(clone), "fsck").returncode == 0
    assert refs_of(clone)["tags/v1"] == refs_of(server.path)["tags/v1"]

    refs, packs = refs_of(server.path), packs_of(server.path)
    _commit_on(clone, "reader's change", 5)
    pushed = coral("-C", str(clone), "push", token=server.tokens["reader"])
    assert_cli_error(pushed, "not allowed to push", "'reader'")
    assert refs_of(server.path) == refs  # nothing changed on the server
    assert packs_of(server.path) == packs
    assert not list((server.path / ".coral" / "incoming").glob("packs/*"))
    denied = [e for e in _entries(server) if e["outcome"] == "denied"]
    assert denied and all(e["actor"] == "reader" for e in denied)
    assert denied[0]["action"] == "remote.write"

    fetched = coral("-C", str(clone), "fetch", "--json", token=server.tokens["reader"])
    assert fetched.returncode == 0, fetched.stderr  # reading is still allowed
    assert json.loads(fetched.stdout)["refs"]["heads/main"] == refs["heads/main"]
    _no_secrets(server, [cloned, pushed, fetched])


def test_writer_pushes_and_the_server_takes_it_in(server: Server, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    assert coral("clone", server.url, str(clone), token=server.tokens["writer"]).returncode == 0
    new = _commit_on(clone, "writer's change", 7)
    pushed = coral("-C", str(clone), "push", "--json", token=server.tokens["writer"])
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["refs"]["heads/main"]["new"] == new
    assert refs_of(server.path)["heads/main"] == new  # the served repository's own branch
    _same_history(clone, server.path, "main")
    assert coral("-C", str(server.path), "fsck").returncode == 0
    assert not list((server.path / ".coral" / "incoming").glob("packs/*"))  # all taken in

    ok = [e for e in _entries(server) if e["action"] == "remote.push" and e["outcome"] == "ok"]
    assert ok[0]["actor"] == "writer" and ok[0]["target"] == "main"
    assert ok[0]["detail"]["commit"] == new
    moved = [
        e
        for e in _entries(server)
        if e["action"] == "ref.update" and e["target"] == "refs/heads/main"
    ]
    assert moved[0]["actor"] == "writer"  # the branch moved for the writer, not the server's user

    # a second clone (by the reader) sees the writer's commit
    again = tmp_path / "again"
    assert coral("clone", server.url, str(again), token=server.tokens["reader"]).returncode == 0
    _same_history(server.path, again, "main")

    # pull in the first clone after another push from the second writer's clone
    other = tmp_path / "other"
    assert coral("clone", server.url, str(other), token=server.tokens["writer"]).returncode == 0
    newer = _commit_on(other, "second change", 9)
    assert coral("-C", str(other), "push", token=server.tokens["writer"]).returncode == 0
    pulled = coral("-C", str(clone), "pull", token=server.tokens["writer"])
    assert pulled.returncode == 0, pulled.stderr
    assert refs_of(clone)["heads/main"] == newer
    _no_secrets(server, [pushed, pulled])


def test_stale_push_is_a_non_fast_forward(server: Server, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        assert coral("clone", server.url, str(clone), token=server.tokens["writer"]).returncode == 0
    _commit_on(a, "from a", 3)
    assert coral("-C", str(a), "push", token=server.tokens["writer"]).returncode == 0
    _commit_on(b, "from b", 4)
    rejected = coral("-C", str(b), "push", token=server.tokens["writer"])
    assert_cli_error(rejected, "non-fast-forward")
    assert refs_of(server.path)["heads/main"] == refs_of(a)["heads/main"]


def test_branch_limited_writer(server: Server, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    assert coral("clone", server.url, str(clone), token=server.tokens["bot"]).returncode == 0
    main_before = refs_of(server.path)["heads/main"]
    new = _commit_on(clone, "bot's change", 11)
    denied = coral("-C", str(clone), "push", token=server.tokens["bot"])
    assert_cli_error(denied, "not allowed to push to main", "'bot'", "feature/*")
    assert refs_of(server.path)["heads/main"] == main_before

    assert coral("-C", str(clone), "branch", "feature/bot").returncode == 0
    pushed = coral("-C", str(clone), "push", "origin", "feature/bot", token=server.tokens["bot"])
    assert pushed.returncode == 0, pushed.stderr
    assert refs_of(server.path)["heads/feature/bot"] == new
    assert refs_of(server.path)["heads/main"] == main_before

    entries = _entries(server)
    denied_main = [e for e in entries if e["outcome"] == "denied" and e["target"] == "main"]
    assert denied_main and denied_main[0]["actor"] == "bot"
    assert denied_main[0]["action"] == "remote.push"
    took = [e for e in entries if e["target"] == "feature/bot" and e["outcome"] == "ok"]
    assert took and took[0]["actor"] == "bot"
    _no_secrets(server, [denied, pushed])


def test_no_token_or_a_wrong_one_is_401(server: Server, tmp_path: Path) -> None:
    anonymous = coral("clone", server.url, str(tmp_path / "anon"))
    assert_cli_error(anonymous, "needs a token", "CORAL_REMOTE_TOKEN")
    assert not (tmp_path / "anon").exists()  # nothing left behind
    wrong = coral("clone", server.url, str(tmp_path / "wrong"), token="coral_not-a-real-token")
    assert_cli_error(wrong, "unknown token")
    assert "coral_not-a-real-token" not in wrong.stderr
    entries = [e for e in _entries(server) if e["action"] == "remote.auth"]
    assert len(entries) == 2 and {e["outcome"] for e in entries} == {"denied"}
    assert all(e["actor"] == "anonymous" for e in entries)


def test_revoked_token_is_refused_while_serving(server: Server, tmp_path: Path) -> None:
    revoked = coral("serve", "token", "revoke", "reader", "--acl", str(server.acl))
    assert revoked.returncode == 0, revoked.stderr
    refused = coral("clone", server.url, str(tmp_path / "c"), token=server.tokens["reader"])
    assert_cli_error(refused, "unknown token")
    created = coral("serve", "token", "create", "late", "--acl", str(server.acl))
    late = created.stdout.strip()
    assert coral("clone", server.url, str(tmp_path / "d"), token=late).returncode == 0


def _no_secrets(server: Server, results: list) -> None:
    printed = server.output() + "".join(r.stdout + r.stderr for r in results)
    for token in server.tokens.values():
        assert token not in printed
    assert server.tokens["reader"] not in server.acl.read_text()  # hashes only
    audit = json.dumps(_entries(server))
    for token in server.tokens.values():
        assert token not in audit

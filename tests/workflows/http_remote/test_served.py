"""`ServedBackend` (the repository as a remote) through the Remote API, with no HTTP between:
clone and push, verification of what a push brings, refusals; and `create_app(remote=True)`
without an ACL: a read-only remote on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from coral.remotes.config import RemoteConfig
from coral.remotes.http_backend import AccessDeniedError
from coral.remotes.layout import FORMAT_KEY
from coral.remotes.remote import Remote
from coral.remotes.served import BadRequestError, NotServedError, RefusedError, ServedBackend
from coral.storage.backend import PreconditionFailedError, PutMode
from coral.storage.pack import NOT_A_CHUNK, PackWriter
from coral.version_control.audit import AuditEntry, AuditLog
from coral.version_control.objects import COMMIT
from coral.version_control.repository import Repository
from tests.workflows.http_remote.conftest import build_repository, model, refs_of


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository(build_repository(tmp_path / "served"))
    yield repo
    repo.close()


def _remote(backend: ServedBackend) -> Remote:
    return Remote(RemoteConfig("origin", "file:///served"), backend=backend)


def test_the_view_is_the_repository(served: Repository) -> None:
    backend = ServedBackend(served)
    assert json.loads(backend.get(FORMAT_KEY))["default_branch"] == "main"
    keys = [i.key for i in backend.list("refs/")]
    assert keys == ["refs/heads/feature", "refs/heads/main", "refs/tags/v1"]
    assert json.loads(backend.get("refs/heads/main"))["commit"] == served.resolve_ref("main")
    tag = json.loads(backend.get("refs/tags/v1"))
    assert tag["metrics"] == {"accuracy": 0.9} and tag["tag"]
    packs = [i.key for i in backend.list("packs/")]
    assert packs and all(k.endswith(".pack") for k in packs)
    assert backend.stat("refs/heads/main").etag == backend.stat("refs/heads/main").etag


def test_clone_push_and_tags_through_the_view(served: Repository, tmp_path: Path) -> None:
    backend = ServedBackend(served)
    with Repository.init(tmp_path / "clone") as clone:
        _remote(backend).pull(clone)
        assert clone.resolve_ref("main") == served.resolve_ref("main")
        clone.add_all_weights({**model(0), "head.weight": model(3)["head.weight"]})
        new = str(clone.commit("third"))
        clone.tag_version("v2", description="pushed tag", metrics={"accuracy": 0.95})
        result = _remote(backend).push(clone, tags=True)
        assert result.success, result.errors
    assert served.resolve_ref("main") == new  # HEAD's branch moved
    assert served.get_tag("v2").metrics == {"accuracy": 0.95}
    assert served.reflog("main")[0].message.startswith("push by a client over HTTP")
    assert not list((served.coral_dir / "incoming").glob("packs/*"))
    assert served.get_all_weights("main")["head.weight"].data.tobytes() == (
        model(3)["head.weight"].tobytes()
    )


def test_a_tampered_or_incomplete_push_changes_nothing(served: Repository) -> None:
    backend = ServedBackend(served)
    before = refs_of(served.path)
    fake = "ab" * 32
    writer = PackWriter(backend, fsync=False)
    writer.add(COMMIT, fake, b"not the commit this name promises", NOT_A_CHUNK, ())
    writer.finish()
    with pytest.raises(RefusedError, match="rejected evil"):
        backend.put("refs/heads/evil", json.dumps({"commit": fake}).encode(), PutMode.CREATE)
    with pytest.raises(RefusedError, match="lacks"):
        backend.put("refs/heads/evil", json.dumps({"commit": "cd" * 32}).encode())
    assert refs_of(served.path) == before
    assert not served.store.has_blob(COMMIT, fake)


def test_compare_and_swap_against_local_commits(served: Repository, tmp_path: Path) -> None:
    backend = ServedBackend(served)
    seen = backend.stat("refs/heads/main").etag
    served.add_all_weights(model(8))
    served.commit("a local commit while serving")
    doc = json.dumps({"commit": served.resolve_ref("feature")}).encode()
    with pytest.raises(PreconditionFailedError):
        backend.put("refs/heads/main", doc, PutMode.IF_MATCH, if_match=seen)
    with pytest.raises(PreconditionFailedError):
        backend.put("refs/heads/feature", doc, PutMode.CREATE)
    with Repository.init(tmp_path / "stale") as stale:  # a client that saw the old main
        _remote(backend).pull(stale)
        assert stale.resolve_ref("main") == served.resolve_ref("main")


def test_writes_a_served_repository_refuses(served: Repository) -> None:
    backend = ServedBackend(served)
    pack = next(iter(backend.list("packs/"))).key
    with pytest.raises(NotServedError, match="coral gc"):
        backend.delete(pack)
    with pytest.raises(NotServedError):
        backend.put("locks/gc", b"{}", PutMode.CREATE)
    with pytest.raises(NotServedError):
        backend.put("notes/x", b"")
    with pytest.raises(RefusedError, match="HEAD"):
        backend.delete("refs/heads/main")
    assert backend.delete("refs/heads/feature") and "feature" not in refs_of(served.path)
    with pytest.raises(BadRequestError, match="not a Coral pack"):
        backend.put("packs/" + "0" * 64 + ".pack", b"garbage", PutMode.CREATE)


def test_read_only_remote_without_an_acl(served: Repository, tmp_path: Path) -> None:
    from coral.web.app import create_app
    from coral.web.server import background_server

    with background_server(create_app(served, remote=True)) as url:
        remote = Remote.from_config(RemoteConfig.from_url("origin", url + "/remote/"))
        with Repository.init(tmp_path / "clone") as clone:
            assert remote.pull(clone).updated_branch == "main"
            clone.add_all_weights(model(4))
            clone.commit("try to push")
            with pytest.raises(AccessDeniedError, match="may only read"):
                remote.push(clone)
        entries = [e for e in served_audit(served) if e.outcome == "denied"]
        assert entries and entries[0].actor == "anonymous"


def served_audit(repo: Repository) -> list[AuditEntry]:
    return AuditLog(repo.database).entries()

"""fsck on healthy and deliberately damaged repositories."""

from __future__ import annotations

import numpy as np

from coral.version_control.repository import Repository
from tests.storage.damage import flip_record_byte, remove_object

from .conftest import commit_weights, make_weights


def build(repo: Repository) -> tuple[str, str]:
    h1 = commit_weights(repo, make_weights(1), "one")
    h2 = commit_weights(repo, make_weights(2), "two")
    repo.tag_version("v1", "t", {"m": 1}, ref=h1)
    return h1, h2


def fresh(repo: Repository) -> Repository:
    """Reopen, so nothing is served from in-memory caches."""
    path = repo.path
    repo.close()
    return Repository(path)


def test_healthy(repo: Repository) -> None:
    build(repo)
    report = repo.fsck()
    assert report.ok and report.problems == []
    assert report.checked["commit"] == 2 and report.checked["tensor"] >= 5
    assert report.checked["reachable_commits"] == 2
    assert str(report).startswith("ok")
    assert report.to_dict()["ok"] is True


def test_flipped_byte_in_chunk(repo: Repository) -> None:
    _h1, h2 = build(repo)
    tid = repo.get_tree(h2).entries["layer0.weight"].tensor_id
    chunk = repo.store.dependencies("tensor", tid)[0][1]
    repo.store.wait_for_maintenance()
    path = repo.store.where("chunk", chunk)
    flip_record_byte(repo.store, chunk)
    report = fresh(repo).fsck()
    assert not report.ok
    kinds = {(p.kind, p.id) for p in report.problems}
    assert ("chunk", chunk) in kinds
    chunk_problem = next(p for p in report.problems if p.id == chunk)
    assert chunk_problem.path == str(path)
    assert ("tensor", tid) in kinds  # the tensor that needs it is named too


def test_flipped_byte_in_commit_and_tree(repo: Repository) -> None:
    h1, h2 = build(repo)
    tree_id = repo.get_commit(h2).tree_id
    repo.store.wait_for_maintenance()
    commit_path = repo.store.where("commit", h1)
    tree_path = repo.store.where("tree", tree_id)
    flip_record_byte(repo.store, h1, 20)
    flip_record_byte(repo.store, tree_id, 30)
    report = fresh(repo).fsck()
    found = {(p.kind, p.id, p.path) for p in report.problems}
    assert ("commit", h1, str(commit_path)) in found
    assert ("tree", tree_id, str(tree_path)) in found
    reason = next(p.reason for p in report.problems if p.id == h1)
    assert "checksum" in reason or "hash" in reason


def test_deleted_objects(repo: Repository) -> None:
    h1, h2 = build(repo)
    tid = repo.get_tree(h2).entries["layer1.weight"].tensor_id
    repo.store.wait_for_maintenance()
    remove_object(repo.store, tid)
    remove_object(repo.store, h1)
    report = fresh(repo).fsck()
    found = {(p.kind, p.id): p for p in report.problems}
    assert found[("tensor", tid)].path == f"{h2[:10]}:layer1.weight"
    assert found[("tensor", tid)].reason == "tensor is missing"
    assert found[("commit", h1)].reason == "commit is missing"
    assert ("ref", "refs/tags/v1") in found  # the tag points at the missing commit
    assert any(p.kind == "reflog" and p.id == h1 for p in report.problems)


def test_deleted_chunk(repo: Repository) -> None:
    _h1, h2 = build(repo)
    tid = repo.get_tree(h2).entries["layer2.weight"].tensor_id
    chunk = repo.store.dependencies("tensor", tid)[0][1]
    repo.store.wait_for_maintenance()
    remove_object(repo.store, chunk)
    report = fresh(repo).fsck()
    assert any(p.kind == "tensor" and p.id == tid and "chunk" in p.reason for p in report.problems)


def test_bad_ref(repo: Repository) -> None:
    build(repo)
    bogus = "ab" * 32
    with repo.database.transaction() as tx:
        tx.execute("INSERT INTO branches VALUES ('broken', ?, 0, 0)", (bogus,))
    report = repo.fsck()
    assert ("ref", "refs/heads/broken") in {(p.kind, p.id) for p in report.problems}
    problem = next(p for p in report.problems if p.id == "refs/heads/broken")
    assert bogus in problem.reason
    assert "refs/heads/broken" in str(report)


def test_missing_staged_tensor(repo: Repository) -> None:
    build(repo)
    tid = repo.add_all_weights({"new": np.full(10, 3.0)})["new"]
    repo.store.wait_for_maintenance()
    remove_object(repo.store, tid)
    report = repo.fsck()
    assert ("staging", tid, "staged:new") in {(p.kind, p.id, p.path) for p in report.problems}


def test_references_only_mode(repo: Repository) -> None:
    _h1, _h2 = build(repo)
    report = repo.fsck(full=False)
    assert report.ok and "tensor" not in report.checked

"""Pruned commits: they stay in the history, and `gc` deletes their weights."""

from __future__ import annotations

import numpy as np
import pytest

from coral.errors import CoralError, ObjectNotFoundError, RefNotFoundError
from coral.version_control.errors import PrunedCommitError
from coral.version_control.repository import Repository, weights_equal
from tests.storage.damage import remove_object

from .conftest import commit_weights, make_weights


def five_commits(repo: Repository) -> list[str]:
    """main: c0..c4, each with its own random tensors (nothing shared, no deltas)."""
    return [commit_weights(repo, make_weights(100 + i), f"c{i}") for i in range(5)]


def tensor_ids(repo: Repository, commit: str) -> set[str]:
    return repo.get_tree(commit).tensor_ids()


def test_prune_marks_and_unprunes(repo: Repository) -> None:
    c = five_commits(repo)
    assert repo.pruned_commits() == set()
    assert repo.prune_commits([c[1], c[2][:8], c[1]]) == 2  # short hashes resolve
    assert repo.prune_commits([c[1]]) == 0
    assert repo.pruned_commits() == {c[1], c[2]}
    assert weights_equal(repo.get_all_weights(c[1]), repo.get_all_weights(c[1]))  # still there
    assert repo.unprune_commits([c[2], c[3]]) == 1
    assert repo.pruned_commits() == {c[1]}
    with pytest.raises(RefNotFoundError):
        repo.prune_commits(["f" * 64])


def test_gc_frees_only_the_weights_of_pruned_commits(repo: Repository) -> None:
    c = five_commits(repo)
    before = {h: repo.get_all_weights(h) for h in c}
    ids = {h: tensor_ids(repo, h) for h in c}
    repo.tag_version("keep", ref=c[2])
    repo.prune_commits([c[0], c[2], c[3]])
    assert repo.gc().freed_bytes > 0
    # c0 and c3: weights gone (the reflog reaches them, which does not keep weights)
    for h in (c[0], c[3]):
        assert repo.store.has_blob("commit", h)  # the history stays connected
        assert not any(repo.store.exists(t) for t in ids[h])
        with pytest.raises(PrunedCommitError) as info:
            repo.get_all_weights(h)
        assert isinstance(info.value, CoralError) and isinstance(info.value, ObjectNotFoundError)
        assert "pruned (retention) and garbage-collected" in str(info.value)
        assert "unprune" in (info.value.hint or "")
        with pytest.raises(PrunedCommitError):
            repo.get_weight("layer0.weight", h)
        with pytest.raises(PrunedCommitError):
            repo.list_weights(h)
    # the tagged pruned commit and every unpruned one read bit-exact
    for h in (c[1], c[2], c[4]):
        assert weights_equal(repo.get_all_weights(h), before[h])
    assert [x.commit_hash for x in repo.log()] == c[::-1]
    # fsck: expected, not damage
    report = repo.fsck()
    assert report.ok, str(report)
    assert {i.id for i in report.info} == {c[0], c[3]}
    assert report.to_dict()["info"] and "pruned" in str(report)
    # a second gc finds the missing trees expected, and has nothing left to take
    again = repo.gc()
    assert again.removed_total == 0
    # statistics skip what is gone
    assert [r["hash"] for r in repo.storage_history()] == [c[1], c[2], c[4]]
    assert repo.deduplicator.get_stats().total_weights == 3 * len(before[c[0]])
    # too late to unprune a collected commit; the tagged one can be
    with pytest.raises(PrunedCommitError):
        repo.unprune_commits([c[0]])
    assert repo.pruned_commits() == {c[0], c[2], c[3]}
    assert repo.unprune_commits([c[2]]) == 1


def test_gc_reports_freed_bytes(repo: Repository) -> None:
    c = five_commits(repo)
    repo.prune_commits([c[1]])
    dry = repo.gc(dry_run=True)
    assert dry.removed.get("tensor") == len(tensor_ids(repo, c[1]))
    assert dry.removed.get("tree") == 1 and "commit" not in dry.removed
    assert repo.store.exists(next(iter(tensor_ids(repo, c[1]))))  # dry run removed nothing
    result = repo.gc()
    assert result.freed_bytes > 0
    assert result.removed["tensor"] == len(make_weights(0)) and result.removed["tree"] == 1
    assert "commit" not in result.removed


def test_shared_tensors_stay(repo: Repository) -> None:
    shared = np.arange(500, dtype=np.float32)
    old = commit_weights(repo, {"shared": shared, "own": np.full(300, 1.0)}, "old")
    new = commit_weights(repo, {"shared": shared, "own": np.full(300, 2.0)}, "new")
    staged = repo.add_all_weights({"staged": np.full(40, 3.0)})
    repo.prune_commits([old])
    repo.gc()
    assert repo.get_weight("shared", new).data.tobytes() == shared.tobytes()
    assert repo.store.exists(staged["staged"])
    with pytest.raises(PrunedCommitError):
        repo.get_weight("shared", old)  # its tree is gone, though this tensor is not
    assert repo.fsck().ok


def test_refs_and_head_keep_a_pruned_commits_weights(repo: Repository) -> None:
    c = five_commits(repo)
    repo.create_branch("side", from_ref=c[1])
    repo.prune_commits(c[:4])
    repo.checkout(c[3])  # detached HEAD
    repo.gc()
    for h in (c[1], c[3]):
        assert repo.get_weight("step", h).data[0] == 100 + c.index(h)
    for h in (c[0], c[2]):
        with pytest.raises(PrunedCommitError):
            repo.get_all_weights(h)
    repo.checkout("main")
    repo.delete_branch("side", force=True)
    repo.gc()  # nothing names them now: the reflog alone does not keep weights
    for h in (c[1], c[3]):
        with pytest.raises(PrunedCommitError):
            repo.get_all_weights(h)
    assert repo.fsck().ok


def test_unprune_before_gc_keeps_the_weights(repo: Repository) -> None:
    c = five_commits(repo)
    before = repo.get_all_weights(c[1])
    repo.prune_commits([c[1]])
    assert repo.unprune_commits([c[1]]) == 1
    repo.gc()
    assert weights_equal(repo.get_all_weights(c[1]), before)


def test_rows_of_deleted_commits_are_dropped(repo: Repository) -> None:
    commit_weights(repo, make_weights(0), "base")
    repo.create_branch("tmp")
    repo.checkout("tmp")
    h = commit_weights(repo, make_weights(1), "tmp work")
    repo.checkout("main")
    repo.prune_commits([h])
    repo.delete_branch("tmp", force=True)
    repo.expire_reflog()
    repo.gc()
    assert not repo.store.has_blob("commit", h)
    assert repo.pruned_commits() == set()
    assert repo.fsck().ok


def test_a_tree_damaged_on_an_unpruned_commit_is_still_reported(repo: Repository) -> None:
    """A pruned commit sharing its tree with a live one does not hide that tree's damage."""
    w = make_weights(0)
    a = commit_weights(repo, w, "a")
    b = repo.commit("same tree", allow_empty=True)
    assert repo.read_commit(a).tree_id == repo.read_commit(b).tree_id
    repo.prune_commits([a])
    tid = next(iter(tensor_ids(repo, b)))
    repo.store.wait_for_maintenance()
    remove_object(repo.store, tid)
    report = repo.fsck()
    assert not report.ok
    assert any(p.id == tid for p in report.problems)

"""Garbage collection: what it keeps (refs, HEAD, reflog, staging) and what it removes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from coral.errors import CorruptObjectError
from coral.version_control.repository import Repository
from tests.storage.damage import remove_object

from .conftest import commit_weights, make_weights


def side_branch(repo: Repository) -> tuple[str, str]:
    """main: base; branch tmp: one commit with a unique tensor. Returns (commit, tensor id)."""
    commit_weights(repo, make_weights(0), "base")
    repo.create_branch("tmp")
    repo.checkout("tmp")
    ids = repo.add_all_weights({"only_tmp": np.arange(1000, dtype=np.float64)})
    h = repo.commit("tmp work")
    repo.checkout("main")
    return h, ids["only_tmp"]


def test_gc_removes_only_unreachable(repo: Repository) -> None:
    h, tid = side_branch(repo)
    before = repo.get_all_weights()
    repo.delete_branch("tmp", force=True)
    result = repo.gc()
    assert repo.store.exists(tid) and repo.store.has_blob("commit", h)  # reflog still reaches it
    assert result.removed_total == 0
    assert repo.expire_reflog() > 0
    result = repo.gc()
    assert not repo.store.exists(tid) and not repo.store.has_blob("commit", h)
    assert result.removed["tensor"] == 1 and result.removed["commit"] == 1
    assert result.freed_bytes > 0 and result.to_dict()["kept"]["commit"] == 1
    after = repo.get_all_weights()
    assert all(after[k].bit_equal(before[k]) for k in before)
    assert repo.fsck().ok


def test_gc_keeps_reflog_reachable(repo: Repository) -> None:
    h, _tid = side_branch(repo)
    repo.delete_branch("tmp", force=True)
    repo.gc()
    assert repo.get_all_weights(h)["only_tmp"].data[-1] == 999.0
    repo.create_branch("restored", from_ref=h)  # recoverable by hash
    assert repo.fsck().ok


def test_gc_keeps_staged_tensors(repo: Repository) -> None:
    commit_weights(repo, make_weights(0), "base")
    ids = repo.add_all_weights({"staged": np.full(100, 7.0)})
    repo.expire_reflog()
    repo.gc()
    assert repo.store.exists(ids["staged"])
    h = repo.commit("commit after gc")
    assert repo.get_weight("staged", h).data[0] == 7.0


def test_gc_keeps_detached_head_and_tags(repo: Repository) -> None:
    h, tid = side_branch(repo)
    repo.tag_version("keep", "tagged", {"x": 1}, ref=h)
    repo.checkout(h)
    detached = commit_weights(repo, {"detached": np.ones(50)}, "detached work")
    repo.delete_branch("tmp", force=True)
    repo.expire_reflog()
    repo.gc()
    assert repo.store.exists(tid)
    assert repo.get_weight("detached", detached).shape == (50,)
    assert repo.store.has_blob("tag", repo.get_tag("keep").tag_id)
    repo.checkout("main")
    repo.expire_reflog()
    repo.gc()
    assert not repo.store.has_blob("commit", detached)  # nothing reaches it any more
    assert repo.store.exists(tid)  # the tag still does


def test_gc_dry_run(repo: Repository) -> None:
    _h, tid = side_branch(repo)
    repo.delete_branch("tmp", force=True)
    repo.expire_reflog()
    dry = repo.gc(dry_run=True)
    assert dry.dry_run and dry.removed["tensor"] == 1 and dry.removed["commit"] == 1
    assert repo.store.exists(tid)
    real = repo.gc()
    assert real.removed["tensor"] == 1


def test_gc_grace_period(repo: Repository) -> None:
    _h, tid = side_branch(repo)
    repo.delete_branch("tmp", force=True)
    repo.expire_reflog()
    assert repo.gc(grace_seconds=3600).removed_total == 0
    assert repo.store.exists(tid)


def test_gc_refuses_when_history_is_damaged(repo: Repository) -> None:
    h1 = commit_weights(repo, make_weights(0), "one")
    commit_weights(repo, make_weights(1), "two")
    repo.store.wait_for_maintenance()
    remove_object(repo.store, h1)
    repo._commits.clear()
    with pytest.raises(CorruptObjectError) as info:
        repo.gc()
    assert "fsck" in (info.value.hint or "")
    repo.gc(force=True)


def test_gc_waits_for_writers(repo: Repository) -> None:
    commit_weights(repo, make_weights(0), "base")
    holding = threading.Event()
    release = threading.Event()
    done: list[float] = []

    def writer() -> None:
        with repo.write_lock():
            holding.set()
            release.wait(10)

    def collector() -> None:
        repo.gc()
        done.append(time.monotonic())

    w = threading.Thread(target=writer)
    w.start()
    holding.wait(10)
    g = threading.Thread(target=collector)
    g.start()
    time.sleep(0.3)
    assert not done  # gc is blocked while a writer holds the lock
    released_at = time.monotonic()
    release.set()
    w.join(10)
    g.join(10)
    assert done and done[0] >= released_at

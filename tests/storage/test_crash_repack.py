"""SIGKILL during repack and gc: what was reported durable stays readable, bit for bit.

(a) a store writer that repacks after every round of stores; (b) a repository that commits,
branches, deletes branches and runs gc in a loop. Each is killed at random moments
(`CORAL_CRASH_KILLS` times, default 12), and the store is checked after every kill.
Then, deterministic: a repack must never turn two chunks into deltas of each other, and a gc
killed right before any one of its deletions leaves a repository that fsck passes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.storage.base import CHUNK, TENSOR
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore
from coral.version_control.objects import COMMIT, TREE
from coral.version_control.repository import Repository

from ..version_control.gc_worker import model_for, on_main
from .crash_repacker import CONFIG, version_array
from .legacy_repo import build_legacy_repository, write_legacy_tensor, write_storage_config

KILLS = int(os.environ.get("CORAL_CRASH_KILLS", "12"))
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run_and_kill(module: str, args: list[str], marker: str, delay: float) -> list[list[str]]:
    """Start `python -m module args`, wait for its first `marker` line, SIGKILL it `delay`
    seconds later; returns the fields of every `marker` line it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    if not first.startswith(marker):
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"{module} failed before its first {marker}: {first}{err.decode()}")
    time.sleep(delay)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate(timeout=30)
    assert alive, f"{module} exited by itself: {err.decode()}"
    lines = [first, *rest.decode().splitlines()]
    # a line cut short by the kill has fewer fields (or a short hash): ignored
    return [p for p in (line.split() for line in lines) if len(p) == 3 and p[0] == marker]


def test_sigkill_during_store_and_repack(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rnd = random.Random(2024)
    reported: dict[str, int] = {}
    for i in range(KILLS):
        for _, stored, printed_seed in _run_and_kill(
            "tests.storage.crash_repacker", [str(root), str(i)], "STORED", rnd.uniform(0.0, 0.3)
        ):
            if len(stored) == 64:
                reported[stored] = int(printed_seed)
        store = PackStore(root, CONFIG)
        assert not store.index.damaged, f"after kill {i}: {store.index.damaged}"
        for tid, seed in reported.items():
            got = store.load(tid).data
            assert got.tobytes() == version_array(seed).tobytes(), (i, tid, seed)
        store.close()
    assert len(reported) >= KILLS

    store = PackStore(root, CONFIG)
    for kind in (CHUNK, TENSOR):
        for oid in store.iter_objects(kind):
            store.verify(kind, oid)
    assert store.store_stats().encodings.get("xor", 0) > 0  # the repacks did reverse chunks
    # a last repack and gc in a clean state keep every reported tensor
    store.repack()
    store.gc(set(reported), {})
    store.close()
    fresh = PackStore(root, CONFIG)
    assert fresh.list() == sorted(reported)
    for tid, seed in reported.items():
        assert fresh.load(tid).data.tobytes() == version_array(seed).tobytes()
        fresh.verify(TENSOR, tid)
    for cid in fresh.list_blobs(CHUNK):
        fresh.verify(CHUNK, cid)
    fresh.close()


def _check_repository(path: Path, reported: dict[str, int], after: str) -> int:
    """fsck passes; every commit a ref reaches has the weights of its seed; every reported
    commit of main is still on main. Returns how many commits were checked."""
    with Repository(path) as repo:
        report = repo.fsck()
        assert report.ok, f"{after}: {report}"
        tip = repo.resolve_ref("main") if repo.refs.branch_tip("main") else None
        checked = 0
        for commit in repo.iter_commits():
            seed = commit.metadata["seed"]
            h = commit.commit_hash
            assert reported.get(h, seed) == seed, (after, h)
            got = repo.get_all_weights(h)
            expected = model_for(seed)
            assert sorted(got) == sorted(expected), (after, h)
            for name, arr in expected.items():
                assert got[name].data.tobytes() == arr.tobytes(), (after, h, name)
            checked += 1
        for h, seed in reported.items():
            if on_main(seed):
                assert tip is not None and repo.is_ancestor(h, tip), (after, h)
            if not repo.store.has_blob(COMMIT, h):
                continue  # collected: its side branch was deleted
            assert repo.read_commit(h).metadata["seed"] == seed
        return checked


def test_sigkill_during_repository_gc(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    repo = Repository.init(path)
    write_storage_config(repo, {"chunk_bytes": 4096, "max_chain_depth": 4})
    repo.close()
    rnd = random.Random(77)
    reported: dict[str, int] = {}
    for i in range(KILLS):
        for _, h, printed_seed in _run_and_kill(
            "tests.version_control.gc_worker", [str(path), str(i)], "COMMIT", rnd.uniform(0, 0.5)
        ):
            if len(h) == 64:
                reported[h] = int(printed_seed)
        _check_repository(path, reported, f"kill {i}")
    assert len(reported) >= 2 * KILLS
    with Repository(path) as repo:
        collected = [h for h in reported if not repo.store.has_blob(COMMIT, h)]
        assert collected, "gc never removed a deleted branch's commit"
        repo.gc()
        assert repo.fsck().ok
        trees = set(repo.store.list_blobs(TREE))
        assert all(repo.read_commit(h).tree_id in trees for h in repo.store.list_blobs(COMMIT))
    assert _check_repository(path, reported, "final gc") > 0


# -- delta cycles -------------------------------------------------------------------------------
def _sparse_versions(n: int, size: int = 1024) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal(size) * 0.05).astype(np.float32)
    out = []
    for _ in range(n):
        w = w.copy()
        w[rng.integers(0, size, 30)] += np.float32(1e-3)
        out.append(w)
    return out


def test_repack_never_makes_a_delta_cycle(tmp_path: Path) -> None:
    config = StoreConfig(chunk_bytes=4096, max_chain_depth=3, fsync=False)
    store = PackStore(tmp_path / "store", config)
    versions = _sparse_versions(5)  # one chunk each: A B C D E
    ids = [store.store(WeightTensor(versions[0]))]
    for arr in versions[1:]:
        ids.append(store.store(WeightTensor(arr), reference=ids[-1]))
        store.repack()
    assert store.tensor_stats(ids[3]).encoding == "full"  # D: a keyframe (A->B->C->D is full)
    store.gc({ids[4]}, {})  # A..D collected; the hint (D, E) stays in E's pack
    assert store.store(WeightTensor(versions[3]), reference=ids[4]) == ids[3]  # D again
    store.repack()
    store.close()
    fresh = PackStore(tmp_path / "store", config)
    for tid, arr in ((ids[4], versions[4]), (ids[3], versions[3])):
        assert fresh.load(tid).data.tobytes() == arr.tobytes()
        fresh.verify(TENSOR, tid)


def test_recommitting_pruned_weights_keeps_the_newest_commit_readable(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    versions = _sparse_versions(10, 4096)
    with Repository.init(path) as repo:
        commits: list[str] = []
        for i, arr in enumerate(versions):
            repo.add_all_weights({"w": arr})
            commits.append(repo.commit(f"step {i}"))
            repo.store.wait_for_maintenance()
        repo.prune_commits(commits[:-1])  # retention keeps the newest checkpoint only
        repo.gc()
        repo.add_all_weights({"w": versions[8]})  # back to the weights of step 8
        again = repo.commit("step 8 again")
    with Repository(path) as repo:  # a new process: nothing cached
        assert repo.get_all_weights(commits[-1])["w"].data.tobytes() == versions[9].tobytes()
        assert repo.get_all_weights(again)["w"].data.tobytes() == versions[8].tobytes()
        assert repo.fsck().ok


# -- gc interrupted between two deletions -------------------------------------------------------
class _Killed(BaseException):
    """Stands for SIGKILL at one precise instant: nothing after it runs."""


def _garbage_delta_chain_in_packs(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Two commits on main, then two unreferenced tensors stored as forward deltas (Z against
    main's first version, X against Z), each in its own pack; returns the commits' weights."""
    versions = _sparse_versions(4, 20_000)
    expected: dict[str, dict[str, np.ndarray]] = {}
    with Repository.init(path) as repo:
        for i in (0, 1):
            repo.add_all_weights({"w": versions[i]})
            expected[repo.commit(f"c{i}")] = {"w": versions[i]}
            repo.store.wait_for_maintenance()  # the first version becomes a delta of the second
        first = repo.get_tree(next(iter(expected))).entries["w"].tensor_id
        z = repo.store.store(WeightTensor(versions[2]), reference=first)
        x = repo.store.store(WeightTensor(versions[3]), reference=z)
        assert repo.store.dependencies(CHUNK, repo.store.manifest(x).chunks[0])  # X -> Z
    return expected


def _garbage_delta_chains_loose(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """A first-release repository plus unreferenced loose v1 XOR chains (older -> newer)."""
    history = build_legacy_repository(path)
    objects = path / ".coral" / "objects"
    for seed in range(4):
        newer, older = _sparse_versions(2, 1024 + seed)
        write_legacy_tensor(objects, older, 4096, newer)
    return history.weights


class _KillBeforeDeletion:
    """Wraps a store's `delete`: counts calls and raises _Killed before call number `at`."""

    def __init__(self, repo: Repository, target: str, at: int | None) -> None:
        self.owner = getattr(repo.store, target)
        self.original = self.owner.delete
        self.at = at
        self.calls = 0
        self.owner.delete = self

    def __call__(self, *args: object) -> object:
        if self.at is not None and self.calls >= self.at:
            raise _Killed
        self.calls += 1
        return self.original(*args)

    def restore(self) -> None:
        self.owner.delete = self.original


@pytest.mark.parametrize("where", ["packs", "loose"])
def test_gc_killed_between_deletions_leaves_fsck_clean(tmp_path: Path, where: str) -> None:
    template = tmp_path / "template"
    if where == "packs":
        expected = _garbage_delta_chain_in_packs(template)
        target = "backend"
    else:
        expected = _garbage_delta_chains_loose(template)
        target = "loose"
    # a complete gc first, to count its deletions: the dead objects go last
    shutil.copytree(template, tmp_path / "count")
    with Repository(tmp_path / "count") as repo:
        counter = _KillBeforeDeletion(repo, target, None)
        removed = repo.gc().removed_total
        counter.restore()
    total = counter.calls
    assert removed > 0 and total > 0
    failures: list[tuple[int, list[str]]] = []
    for k in range(max(0, total - removed - 1), total):  # killed right before deletion k
        path = tmp_path / f"kill{k}"
        shutil.copytree(template, path)
        repo = Repository(path)
        killer = _KillBeforeDeletion(repo, target, k)
        with pytest.raises(_Killed):
            repo.gc()
        killer.restore()
        repo.close()
        with Repository(path) as reopened:
            report = reopened.fsck()
            if not report.ok:
                failures.append((k, [str(p) for p in report.problems]))
            _check_weights_of(reopened, expected)
            reopened.gc()  # a gc that gets through repairs everything
            assert reopened.fsck().ok
            _check_weights_of(reopened, expected)
        shutil.rmtree(path)
    assert not failures, failures


def _check_weights_of(repo: Repository, expected: dict[str, dict[str, np.ndarray]]) -> None:
    for commit, weights in expected.items():
        got = repo.get_all_weights(commit)
        for name, arr in weights.items():
            assert got[name].data.tobytes() == arr.tobytes(), (commit, name)

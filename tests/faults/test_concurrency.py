"""Concurrent writers on one repository: a commit holds exactly what its caller staged.

Processes (subprocesses; more and longer with CORAL_FAULT_SCALE) stage their own tensors,
shared-name tensors and a shared model file through the API and commit to `main`; afterwards
every commit's tree is its parent's with that process's staged changes applied, no reported
commit is missing from the history, and fsck is clean. In-process cases pin the pieces down:
private sessions per object, a lost compare-and-swap re-applying the caller's own changes, a
staged change equal to HEAD's surviving a move of the branch, sessions of dead processes
dropped (their tensors kept by gc while the owner lives), and a reader finding an object that
another process's repack moved while the reader listed the packs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.errors import ConcurrentUpdateError
from coral.storage.backend import Backend, LocalBackend, ObjectInfo
from coral.storage.backend_wrappers import BackendWrapper
from coral.storage.pack_store import PackStore
from coral.storage.repack import _compact
from coral.version_control.repository import Repository

from .concurrency_worker import digest
from .scale import scale, trials

WORKER = Path(__file__).with_name("concurrency_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _init(path: Path) -> str:
    with Repository.init(path) as repo:
        repo.add_all_weights({"shared": np.zeros(16), "const": np.full(4, -1, dtype=np.int32)})
        repo.add_file("notes.json", b"{}")
        return repo.commit("base")


def _session_rows(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path / ".coral" / "coral.db")
    try:
        return sum(
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("staging_sessions", "session_staging", "session_staged_files")
        )
    finally:
        db.close()


def _check_commit(repo: Repository, record: dict[str, Any]) -> None:
    """The commit is its parent's tree with exactly the recorded changes applied."""
    commit = repo.get_commit(record["hash"])
    assert len(commit.parents) == 1, record
    tree, parent = repo.get_tree(commit.commit_hash), repo.get_tree(commit.parents[0])
    weights = repo.get_all_weights(commit.commit_hash)
    staged, removed = record["tensors"], set(record["removed"])
    for name in staged:
        assert digest(weights[name].data) == staged[name], (record["round"], name)
    for name in removed:
        assert name not in tree.entries, (record["round"], name)
    for name, entry in parent.entries.items():
        if name not in staged and name not in removed:
            assert tree.entries[name].tensor_id == entry.tensor_id, (record["round"], name)
    assert set(tree.entries) == (set(parent.entries) | set(staged)) - removed
    for path, sha in record["files"].items():
        data = repo.get_files(commit.commit_hash)[path]
        assert hashlib.sha256(data).hexdigest() == sha, (record["round"], path)
    assert not any(n.startswith("decoy.") for n in tree.entries)


def test_processes_commit_exactly_what_they_staged(tmp_path: Path) -> None:
    """Processes * rounds commits (4 * 6 = 24 at scale 1): none lost, none holding another's."""
    path = tmp_path / "repo"
    base = _init(path)
    workers, rounds = min(3 + scale(), 12), trials(6)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "commit", str(path), str(w), str(rounds)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    records: list[dict[str, Any]] = []
    for w, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
        for r in json.loads(out.decode().strip().splitlines()[-1]):
            records.append({**r, "worker": w})
    with Repository(path) as repo:
        history = repo.log()
        assert history[-1].commit_hash == base
        assert sorted(c.commit_hash for c in history[:-1]) == sorted(r["hash"] for r in records)
        assert len(records) == workers * rounds
        for r in records:
            assert repo.get_commit(r["hash"]).message == f"worker {r['worker']} round {r['round']}"
            _check_commit(repo, r)
        report = repo.fsck()
        assert report.ok, report
    assert _session_rows(path) == 0  # committed and closed sessions leave nothing behind


def test_objects_of_one_process_have_their_own_staging(tmp_path: Path) -> None:
    _init(tmp_path)
    a, b = Repository(tmp_path), Repository(tmp_path)
    shared = Repository(tmp_path, shared_staging=True)
    a.add_weight("a", np.ones(3))
    b.add_weight("b", np.ones(3))
    assert set(a.staged_changes()) == {"a"} and set(b.status().added) == {"b"}
    assert shared.status().is_clean
    hb = b.commit("b")
    assert "a" not in b.get_tree(hb).entries
    ha = a.commit("a")
    assert a.get_commit(ha).parents == [hb]
    assert set(a.get_tree(ha).entries) == {"shared", "const", "a", "b"}
    shared.add_weight("cli", np.zeros(2))  # the CLI's area: every shared object sees it
    assert set(Repository(tmp_path, shared_staging=True).staged_changes()) == {"cli"}
    assert a.status().is_clean
    for r in (a, b, shared):
        r.close()


def test_lost_compare_and_swap_reapplies_own_changes(tmp_path: Path) -> None:
    """Another process's commit lands between reading HEAD and moving it: the commit is made
    again onto the new tip, with this caller's changes only (it used to raise)."""
    base = _init(tmp_path)
    mine, other = Repository(tmp_path), Repository(tmp_path)
    mine.add_all_weights({"shared": np.full(16, 1.0), "mine": np.ones(2)})
    other.add_all_weights({"shared": np.full(16, 2.0), "theirs": np.ones(2)})
    raced: list[str] = []

    def race(_commit: object) -> None:
        if not raced:
            raced.append(other.commit("theirs"))

    mine.writer.on_commit.append(race)
    h = mine.commit("mine")
    assert mine.get_commit(h).parents == raced and mine.get_commit(raced[0]).parents == [base]
    got = mine.get_all_weights(h)
    assert got["shared"].data.tolist() == [1.0] * 16 and {"mine", "theirs"} <= set(got)
    assert mine.get_tree(raced[0]).entries.keys() == {"shared", "const", "theirs"}
    assert mine.status().is_clean and mine.fsck().ok
    mine.close()
    other.close()


def test_change_equal_to_head_survives_a_moved_branch(tmp_path: Path) -> None:
    """Staging the value HEAD holds, then another writer changes it: the commit holds ours."""
    _init(tmp_path)
    mine, other = Repository(tmp_path), Repository(tmp_path)
    mine.add_weight("const", np.full(4, -1, dtype=np.int32))  # what HEAD holds
    assert mine.status().is_clean  # nothing differs from HEAD ...
    other.add_weight("const", np.full(4, 7, dtype=np.int32))
    other.commit("theirs")
    h = mine.commit("mine", allow_empty=False)  # ... but it is staged
    assert mine.get_weight("const", h).data.tolist() == [-1] * 4
    mine.close()
    other.close()


def test_checkout_drops_changes_equal_to_head(tmp_path: Path) -> None:
    _init(tmp_path)
    with Repository(tmp_path) as repo:
        repo.create_branch("side")
        repo.add_weight("const", np.full(4, -1, dtype=np.int32))
        repo.checkout("side")  # nothing differs from HEAD: allowed, and nothing follows along
        assert repo.staged_changes() == {}
        repo.add_weight("const", np.full(4, 3, dtype=np.int32))
        with pytest.raises(Exception, match="changes are staged"):
            repo.checkout("main")


def test_dead_process_session_is_reaped_and_live_one_kept_by_gc(tmp_path: Path) -> None:
    _init(tmp_path)
    for trial in range(trials(2)):
        child = subprocess.Popen(
            [sys.executable, str(WORKER), "stage", str(tmp_path)],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        tid = child.stdout.readline().strip()
        assert tid, child.stderr.read() if child.stderr else ""
        with Repository(tmp_path) as repo:  # another process: gc while the owner lives
            repo.gc()
            assert repo.store.exists(tid)
        if trial % 2 == 0:  # the owner commits what gc kept
            child.stdin.write("commit\n")
            child.stdin.flush()
            h = child.stdout.readline().strip()
            with Repository(tmp_path) as repo:
                assert repo.get_tree(h).entries["pending"].tensor_id == tid
        child.stdin.write("exit\n")
        child.stdin.flush()
        assert child.wait(60) == 0
        with Repository(tmp_path) as repo:  # opening drops the dead process's session
            assert _session_rows(tmp_path) == 0
            repo.gc()
            assert repo.store.exists(tid) == (trial % 2 == 0)
            report = repo.fsck()
            assert report.ok, report


def test_head_moved_to_another_branch_is_not_followed(tmp_path: Path) -> None:
    """HEAD switched to another branch mid-commit: not followed (ConcurrentUpdateError)."""
    _init(tmp_path)
    mine, other = Repository(tmp_path), Repository(tmp_path, shared_staging=True)
    other.create_branch("side")
    other.checkout("side")
    other.add_weight("side", np.ones(2))
    other.commit("side moves")
    other.checkout("main")
    mine.add_weight("mine", np.ones(2))

    def switch(_commit: object) -> None:
        if other.head().branch == "main":
            other.checkout("side")

    mine.writer.on_commit.append(switch)
    with pytest.raises(ConcurrentUpdateError):
        mine.commit("mine")
    assert set(mine.staged_changes()) == {"mine"}  # still staged
    mine.close()
    other.close()


class _RepackAfterListing(BackendWrapper):
    """The next listing is followed at once by another store compacting every pack (as a
    background repack in another process does) before the lister reads the packs it saw."""

    def __init__(self, inner: Backend, other: PackStore) -> None:
        super().__init__(inner)
        self.other, self.armed = other, False

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(prefix))
        if self.armed:
            self.armed = False
            self.other.index.refresh(force=True)
            _compact(self.other, self.other.index.packs())
        return iter(listed)


def test_reader_finds_objects_a_repack_moved_while_it_listed(tmp_path: Path) -> None:
    """A listing saw the old pack, which was gone when read, and missed the new one: the object
    used to be 'not in the store' (a concurrent `add` failed reading HEAD's commit)."""
    for trial in range(trials(3)):
        root = tmp_path / f"objects{trial}"
        writer = PackStore(root)
        backend = _RepackAfterListing(LocalBackend(root), writer)
        reader = PackStore(root, backend=backend)
        blobs = [("file", f"object {trial} {i}".encode()) for i in range(3)]
        ids = writer.put_blobs(blobs[:1]) + writer.put_blobs(blobs[1:2])  # two packs
        before = {p.pack_id for p in writer.index.packs()}
        backend.armed = True
        assert reader.get_blob("file", ids[1]) == blobs[1][1]
        assert not before & {p.pack_id for p in writer.index.packs()}  # both were repacked
        assert reader.get_blob("file", ids[0]) == blobs[0][1]
        writer.close()
        reader.close()


class _RepackBeforeOpen(BackendWrapper):
    """Each of the next `armed` opens of a pack file is preceded by another store compacting
    every pack: the pack a reader located is gone again by the time it opens it."""

    def __init__(self, inner: Backend, other: PackStore) -> None:
        super().__init__(inner)
        self.other, self.armed = other, 0

    def path(self, key: str) -> Path:
        if self.armed and key.endswith(".pack"):
            self.armed -= 1
            self.other.index.refresh(force=True)
            _compact(self.other, self.other.index.packs())
        return self.inner.path(key)


def test_reader_follows_an_object_repacked_twice(tmp_path: Path) -> None:
    """The pack named by the index went away, and the one the refreshed index named went away
    too: the read used to fail with a raw FileNotFoundError."""
    for trial in range(trials(3)):
        root = tmp_path / f"objects{trial}"
        writer = PackStore(root)
        blob = ("file", f"object {trial}".encode())
        (oid,) = writer.put_blobs([blob])
        backend = _RepackBeforeOpen(LocalBackend(root), writer)
        reader = PackStore(root, backend=backend)
        backend.armed = 2 + trial % 7  # the read follows up to 8 moves
        assert reader.get_blob("file", oid) == blob[1]
        assert backend.armed == 0
        writer.close()
        reader.close()


def test_opening_another_object_keeps_the_database_locks(tmp_path: Path) -> None:
    """Opening a second Repository in a process must not drop the POSIX locks the first one's
    SQLite connection holds (closing any descriptor of the file does): another process closing
    its connection then took itself for the last one and deleted the write-ahead log under
    live connections (concurrent writers saw 'disk I/O error' / 'malformed')."""
    _init(tmp_path)
    wal = tmp_path / ".coral" / "coral.db-wal"
    probe = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM meta').fetchall(); c.close()"
    )
    with Repository(tmp_path) as first:
        first.add_weight("w", np.ones(3))
        first.commit("w")
        for _ in range(trials(2)):
            with Repository(tmp_path) as second:
                second.log()
                subprocess.run(
                    [sys.executable, "-c", probe, str(tmp_path / ".coral" / "coral.db")], check=True
                )
                assert wal.exists()  # still in use here: not checkpointed away
                second.add_weight("v", np.zeros(2))
                second.commit("v")
        assert first.fsck().ok

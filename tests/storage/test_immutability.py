"""No file of an object store changes after it is written: files only appear and disappear.

After every step (stores with references, blobs, repack, gc, commits) every file under the store
root except `tmp/` is recorded as path -> (inode, size, mtime_ns, content hash); a path present
in two snapshots must be the same file with the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.storage.base import CHUNK, TENSOR
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore
from coral.version_control.repository import Repository

from .legacy_repo import write_legacy_blob, write_legacy_tensor


class FileState(NamedTuple):
    inode: int
    size: int
    mtime_ns: int
    sha256: str


Snapshot = dict[str, FileState]


def snapshot(root: Path) -> Snapshot:
    """Every file under `root` except `tmp/`."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d != "tmp"]
        for name in filenames:
            path = Path(dirpath) / name
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(rel_dir / name)] = FileState(st.st_ino, st.st_size, st.st_mtime_ns, digest)
    return out


def changed(before: Snapshot, after: Snapshot) -> dict[str, tuple[FileState, FileState]]:
    return {p: (before[p], after[p]) for p in before.keys() & after.keys() if before[p] != after[p]}


class History:
    """Snapshots taken after each step; checks every pair of them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.steps: list[tuple[str, Snapshot]] = [("start", snapshot(root))]

    def step(self, label: str) -> Snapshot:
        snap = snapshot(self.root)
        for earlier_label, earlier in self.steps:
            diff = changed(earlier, snap)
            assert not diff, f"files changed between {earlier_label!r} and {label!r}: {diff}"
        self.steps.append((label, snap))
        return snap

    @property
    def latest(self) -> Snapshot:
        return self.steps[-1][1]


def _versions(n: int, size: int, seed: int, base: np.ndarray | None = None) -> list[np.ndarray]:
    """n versions of a tensor, each a sparse update of the one before (of `base`, if given)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(size) * 0.02).astype(np.float32) if base is None else base
    out = [] if base is not None else [w]
    while len(out) < n:
        w = w.copy()
        w[rng.integers(0, size, max(1, size // 200))] += np.float32(1e-3)
        out.append(w)
    return out


def test_store_files_never_change(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    # a first-release store underneath: its loose files must not change until gc deletes them
    legacy_old, legacy_new = _versions(2, 6000, seed=9)
    old_id = write_legacy_tensor(root, legacy_old, 4096, legacy_new)
    new_id = write_legacy_tensor(root, legacy_new, 4096)
    write_legacy_blob(root, "tree", b'{"entries":[],"format":1,"type":"tree"}')
    config = StoreConfig(chunk_bytes=4096, max_chain_depth=3, fsync=False)
    store = PackStore(root, config)
    history = History(root)
    expected: dict[str, np.ndarray] = {old_id: legacy_old, new_id: legacy_new}

    streams = {name: _versions(6, 5000 + 700 * i, seed=i) for i, name in enumerate("abc")}
    previous: dict[str, str | None] = dict.fromkeys(streams, None)
    streams["a"] = _versions(6, 6000, seed=10, base=legacy_new)
    previous["a"] = new_id  # the first version is stored against a loose tensor
    reversed_total = 0
    for version in range(6):
        items = [(WeightTensor(streams[n][version]), previous[n]) for n in streams]
        ids = store.store_many(items)
        for n, tid in zip(streams, ids, strict=True):
            previous[n] = tid
            expected[tid] = streams[n][version]
        history.step(f"store_many {version}")
        store.put_blobs([("commit", f"commit {version}".encode()), ("tree", b"t%d" % version)])
        history.step(f"put_blobs {version}")
        if version % 2:
            done = store.repack()
            reversed_total += done.get("reversed", 0)
            history.step(f"repack {version}")
    store.store(WeightTensor(streams["a"][0] * 2))  # a lone tensor without reference
    history.step("store")
    reversed_total += store.repack().get("reversed", 0)
    history.step("repack")
    assert reversed_total > 0  # the sequence did re-encode chunks

    for tid, arr in expected.items():
        assert PackStore(root, config).load(tid).data.tobytes() == arr.tobytes()

    heads = [t for t in previous.values() if t is not None]
    live = {*heads, old_id}
    report = store.gc(live, {"tree": set()})
    snap = history.step("gc")
    assert report.removed.get(TENSOR, 0) > 0
    assert all(p.startswith("packs/") for p in snap), sorted(snap)  # loose files converted
    fresh = PackStore(root, config)
    for tid in live:
        assert fresh.load(tid).data.tobytes() == expected[tid].tobytes()
        fresh.verify(TENSOR, tid)
    for cid in fresh.list_blobs(CHUNK):
        fresh.verify(CHUNK, cid)
    fresh.store(WeightTensor(streams["b"][-1] + 1), reference=previous["b"])
    fresh.repack()
    history.step("store after gc")
    store.gc(set(fresh.list()), {})
    history.step("gc again")


def _model(step: int) -> dict[str, np.ndarray]:
    """A 4-tensor model after `step` training steps (each step a small sparse update)."""
    rng = np.random.default_rng(42)
    weights = {
        "enc.weight": (rng.standard_normal((128, 96)) * 0.05).astype(np.float32),
        "enc.bias": np.zeros(96, np.float32),
        "dec.weight": (rng.standard_normal((96, 64)) * 0.05).astype(np.float32),
        "dec.bias": np.zeros(64, np.float32),
    }
    for s in range(1, step + 1):
        upd = np.random.default_rng(1000 + s)
        for name, w in weights.items():
            flat = w.reshape(-1)
            flat[upd.integers(0, flat.size, max(1, flat.size // 100))] += np.float32(1e-3)
            if name.endswith("bias"):
                flat[0] = s
    return weights


def test_repository_commits_never_change_files(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    repo = Repository.init(path)
    objects = path / ".coral" / "objects"
    history = History(objects)
    new_files: list[int] = []
    commits: list[str] = []
    for step in range(10):
        before = history.latest
        repo.add_all_weights(_model(step))
        commits.append(repo.commit(f"step {step}"))
        repo.store.wait_for_maintenance()
        after = history.step(f"commit {step}")
        new_files.append(len(after.keys() - before.keys()))
    # store_many pack, tree+commit pack, reverse-delta pack and at most one compaction
    assert max(new_files) <= 4, new_files
    packs = [p for p in history.latest if p.startswith("packs/") and p.endswith(".pack")]
    assert len(packs) == len(history.latest)  # nothing but packs outside tmp/
    assert len(packs) <= 12, len(packs)
    stats = repo.store.store_stats()
    assert stats.encodings.get("xor", 0) > 0  # older versions became reverse deltas
    repo.create_branch("old", commits[3])
    repo.delete_branch("old", force=True)
    repo.gc()
    history.step("gc")
    for step in (0, 5, 9):
        got = repo.get_all_weights(commits[step])
        for name, arr in _model(step).items():
            assert got[name].data.tobytes() == arr.tobytes(), (step, name)
    assert repo.fsck().ok
    repo.close()
    history.step("close")

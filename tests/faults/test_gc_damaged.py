"""gc on a damaged repository: it refuses, deleting nothing, while an object it would trace or
copy is damaged or missing, and names the damage; restoring the damaged file from a backup then
makes the repository whole again (fsck ok, every commit bit-exact).

Without the check, gc deleted what a damaged manifest or pack index referenced, and compaction
copied a damaged record into a newer pack, which shadowed the good copy restored afterwards.
Random single-file damages (bit flips, truncations, deletions) scale with CORAL_FAULT_SCALE.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CorruptObjectError
from coral.storage import repack
from coral.storage.pack import pack_key
from coral.storage.pack_store import PackStore
from coral.version_control.repository import Repository
from tests.faults.scale import trials
from tests.storage.damage import flip_record_byte, remove_object
from tests.storage.legacy_repo import build_legacy_repository, loose_path, write_storage_config


@dataclass
class Template:
    """A repository to damage: commits on two branches with delta chains, a tag, a model file,
    garbage beside live records in the same packs, more small packs than a repack leaves."""

    path: Path
    weights: dict[str, dict[str, np.ndarray]]
    dead: dict[str, str] = field(default_factory=dict)  # role -> id of an unreachable object


def _build(path: Path) -> Template:
    weights: dict[str, dict[str, np.ndarray]] = {}
    with Repository.init(path) as repo:
        write_storage_config(repo, {"fsync": False, "chunk_bytes": 16384})
    rng = np.random.default_rng(3)
    base = {f"l{i}": rng.standard_normal(6000).astype(np.float32) for i in range(3)}
    base["zeros"] = np.zeros(5000, np.float32)
    with Repository(path) as repo:
        for step in range(10):
            w = {k: v.copy() for k, v in base.items()}
            for k in ("l0", "l1", "l2"):
                w[k][step :: 7 + step] += np.float32(1e-3 * (step + 1))
            if step % 3 == 1:  # staged, then replaced: garbage in a pack with live records
                repo.add_all_weights({**w, "l0": w["l0"] * 3})
            repo.add_all_weights(w)
            if step == 4:
                repo.add_files({"config.json": b'{"hidden": 6000}'})
            weights[repo.commit(f"step {step}")] = w
            if step == 4:
                repo.tag_version("v1", "fifth step", {"acc": 0.5})
        repo.create_branch("side")
        repo.checkout("side")
        side = {k: v + 1 for k, v in base.items()}
        repo.add_all_weights(side)
        weights[repo.commit("side")] = side
        repo.checkout("main")
        repo.create_branch("doomed")
        repo.checkout("doomed")
        repo.add_all_weights({"dead": rng.standard_normal(7000).astype(np.float32)})
        dead = repo.commit("doomed")
        dead_tensor = repo.read_tree(repo.read_commit(dead).tree_id).entries["dead"].tensor_id
        repo.checkout("main")
        repo.delete_branch("doomed", force=True)
        repo.expire_reflog()
        repo.store.wait_for_maintenance()
        chunk = repo.store.manifest(dead_tensor).chunks[0]
    return Template(path, weights, {"commit": dead, "tensor": dead_tensor, "chunk": chunk})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _build(tmp_path_factory.mktemp("gc-damaged") / "repo")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("gc-legacy") / "repo"
    history = build_legacy_repository(path, {"fsync": False})
    return Template(path, history.weights)


def _copy(template: Template, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template.path, work)
    return work


def _objects(path: Path) -> dict[str, str]:
    """Every object file (temporary files aside) -> a digest of its bytes."""
    root = path / ".coral" / "objects"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "tmp"
    }


def _assert_whole(path: Path, weights: dict[str, dict[str, np.ndarray]]) -> None:
    with Repository(path) as repo:
        report = repo.fsck()
        assert report.ok, [str(p) for p in report.problems]
        for commit, expected in weights.items():
            got = repo.get_all_weights(commit)
            assert sorted(got) == sorted(expected), commit
            for name, array in expected.items():
                assert got[name].data.tobytes() == array.tobytes(), (commit, name)


def _gc_refuses(path: Path) -> CorruptObjectError:
    """gc raises, naming the damage and fsck, and every object file is as it was."""
    before = _objects(path)
    with Repository(path) as repo, pytest.raises(CorruptObjectError) as info:
        repo.gc()
    assert "gc stopped, nothing deleted" in info.value.message
    assert "fsck" in (info.value.hint or "") and "backup" in (info.value.hint or "")
    assert _objects(path) == before
    return info.value


# -- each kind of object gc traces -------------------------------------------------------------
def _live(repo: Repository) -> dict[str, str]:
    """An id of each kind of live object."""
    store = repo.store
    head = repo.read_commit(repo.refs.head().commit)
    tree = repo.read_tree(head.tree_id)
    tensor = tree.entries["l0"].tensor_id
    chunks = store.manifest(tensor).chunks
    delta = next(c for c in store.list_blobs("chunk") if store.index.get(c).refs)
    tagged = repo.read_tree(repo.read_commit(repo.resolve_ref("v1")).tree_id)
    return {
        "commit": repo.log()[-1].commit_hash,
        "tree": head.tree_id,
        "tensor": tensor,
        "chunk": chunks[0],
        "delta base": store.index.get(delta).refs[0],
        "tag": next(t.tag_id for t in repo.refs.list_tags() if t.tag_id),
        "file": tagged.files["config.json"].blob_id,
    }


ROLES = ["commit", "tree", "tensor", "chunk", "delta base", "tag", "file"]


@pytest.mark.parametrize("damage", ["flip", "lose"])
@pytest.mark.parametrize("role", ROLES)
def test_gc_refuses_while_a_live_object_is_damaged(
    template: Template, tmp_path: Path, role: str, damage: str
) -> None:
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        store = repo.store
        target = _live(repo)[role]
        pack = _pack_file(store, target)
        original = pack.read_bytes()
        if damage == "flip":
            flip_record_byte(store, target, offset=store.index.get(target).length // 2)
        else:
            remove_object(store, target)  # its pack rewritten without it
    error = _gc_refuses(work)
    assert target[:10] in error.message, error.message
    _restore(pack, original)
    _assert_whole(work, template.weights)


@pytest.mark.parametrize("damage", ["index flip", "truncation", "deletion"])
def test_gc_refuses_while_a_pack_is_damaged_or_gone(
    template: Template, tmp_path: Path, damage: str
) -> None:
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        pack = _pack_file(repo.store, _live(repo)["chunk"])
    original = pack.read_bytes()
    if damage == "index flip":
        pack.write_bytes(original[:-20] + bytes([original[-20] ^ 1]) + original[-19:])
    elif damage == "truncation":
        pack.write_bytes(original[: len(original) // 2])
    else:
        pack.unlink()
    _gc_refuses(work)
    _restore(pack, original)
    _assert_whole(work, template.weights)


# -- random damage -------------------------------------------------------------------------------
Damager = Callable[[Path, random.Random], None]


def _flip(path: Path, rnd: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    path.write_bytes(bytes(data))


def _truncate(path: Path, rnd: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: rnd.randrange(len(data))])


def _delete(path: Path, rnd: random.Random) -> None:
    path.unlink()


DAMAGES: list[Damager] = [_flip, _flip, _flip, _truncate, _delete]


def _random_trials(template: Template, tmp_path: Path, count: int, seed: int) -> dict[str, int]:
    """Damage one random object file, gc, restore the file, check the repository is whole."""
    outcomes = {"refused": 0, "collected": 0}
    for trial in range(count):
        rnd = random.Random(seed * 1_000_003 + trial)
        work = _copy(template, tmp_path)
        files = sorted(_objects(work))
        path = work / ".coral" / "objects" / rnd.choice(files)
        original = path.read_bytes()
        rnd.choice(DAMAGES)(path, rnd)
        before = _objects(work)
        try:
            with Repository(work) as repo:
                repo.gc()
        except CorruptObjectError as exc:
            assert "gc stopped" in exc.message and "fsck" in (exc.hint or ""), exc
            assert _objects(work) == before, "gc deleted or rewrote files while refusing"
            outcomes["refused"] += 1
        else:
            outcomes["collected"] += 1  # the damage was in garbage only
        _restore(path, original)
        _assert_whole(work, template.weights)
    return outcomes


def test_random_damage_then_gc_then_restore_loses_nothing(
    template: Template, tmp_path: Path
) -> None:
    outcomes = _random_trials(template, tmp_path, trials(30), seed=1)
    assert outcomes["refused"] > 0


def test_random_damage_to_loose_files_then_gc_loses_nothing(
    legacy: Template, tmp_path: Path
) -> None:
    """The first release's loose files: gc would copy them into packs and delete them."""
    outcomes = _random_trials(legacy, tmp_path, trials(10), seed=2)
    assert outcomes["refused"] > 0


def test_a_damaged_loose_chunk_is_not_converted(legacy: Template, tmp_path: Path) -> None:
    work = _copy(legacy, tmp_path)
    with Repository(work) as repo:
        head = repo.read_tree(repo.read_commit(repo.refs.head().commit).tree_id)
        chunk = repo.store.manifest(head.entries["layer.weight"].tensor_id).chunks[0]
    path = loose_path(work / ".coral" / "objects", "chunk", chunk)
    original = path.read_bytes()
    _flip(path, random.Random(5))
    assert chunk[:10] in _gc_refuses(work).message
    _restore(path, original)
    _assert_whole(work, legacy.weights)
    with Repository(work) as repo:
        repo.gc()  # whole again: the loose files become packs
    assert not path.exists()
    _assert_whole(work, legacy.weights)


# -- what gc still does ---------------------------------------------------------------------------
def test_damage_in_garbage_does_not_stop_gc(template: Template, tmp_path: Path) -> None:
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        flip_record_byte(repo.store, template.dead["chunk"], offset=30)
    with Repository(work) as repo:
        result = repo.gc()
        assert result.removed.get("commit") == 1
        assert not repo.store.exists(template.dead["tensor"])
    _assert_whole(work, template.weights)


def test_force_collects_anyway(template: Template, tmp_path: Path) -> None:
    """Forced, gc collects what it can; the pack holding the damage is kept as it is."""
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        target = _live(repo)["chunk"]
        pack = _pack_file(repo.store, target)
        garbage_elsewhere = _pack_file(repo.store, template.dead["commit"]) != pack
        original = pack.read_bytes()
        flip_record_byte(repo.store, target, offset=5)
    with Repository(work) as repo:
        removed = repo.gc(force=True).removed
        assert repo.store.index.get(target).pack_id == pack.stem  # the damage was not copied
        if garbage_elsewhere:
            assert removed.get("commit") == 1
    _restore(pack, original)
    _assert_whole(work, template.weights)


def test_a_repack_never_copies_a_damaged_record(template: Template, tmp_path: Path) -> None:
    """Compaction would copy the record into a new pack and delete the old one, so a good copy
    of the old pack restored from a backup would lose to the damaged copy."""
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        store = repo.store
        target = _live(repo)["chunk"]
        pack = _pack_file(store, target)
        original = pack.read_bytes()
        flip_record_byte(store, target, offset=40)
    with Repository(work) as repo:
        store = repo.store
        packs = store.index.packs()
        assert repack._compact(store, packs) == len(packs) - 1  # what a repack does to them
        assert store.index.get(target).pack_id == pack.stem  # still (only) in the damaged pack
    _restore(pack, original)
    _assert_whole(work, template.weights)


def test_the_cli_refuses_and_names_the_damage(template: Template, tmp_path: Path) -> None:
    work = _copy(template, tmp_path)
    with Repository(work) as repo:
        target = _live(repo)["tensor"]
        flip_record_byte(repo.store, target, offset=5)
    before = _objects(work)
    result = CliRunner().invoke(app, ["-C", str(work), "gc"])
    assert result.exit_code == 1, result.output
    assert "gc stopped, nothing deleted" in result.stderr and target[:10] in result.stderr
    assert "coral fsck" in result.stderr and "bug in Coral" not in result.stderr
    assert _objects(work) == before


# -- helpers ---------------------------------------------------------------------------------------
def _pack_file(store: PackStore, object_id: str) -> Path:
    loc = store.index.get(object_id)
    assert loc is not None
    return store.backend.path(pack_key(loc.pack_id))


def _restore(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

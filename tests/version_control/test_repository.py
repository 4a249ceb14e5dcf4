"""Repository porcelain: init/open, staging, commit, read back, log, status, diff, checkout,
branches, tags, refs."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.errors import (
    AmbiguousRefError,
    ConcurrentUpdateError,
    CoralError,
    FormatVersionError,
    InvalidNameError,
    NotARepositoryError,
    NothingToCommitError,
    RefNotFoundError,
    RepositoryExistsError,
)
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore
from coral.version_control.errors import (
    BranchNotMergedError,
    CurrentBranchError,
    DirtyStagingError,
    RefExistsError,
    WeightNotFoundError,
)
from coral.version_control.repository import Repository

from .conftest import commit_weights, make_weights


def same(a: WeightTensor, b: np.ndarray) -> bool:
    return a.data.dtype == b.dtype and a.data.shape == b.shape and a.data.tobytes() == b.tobytes()


# -- init / open ---------------------------------------------------------------------------------
def test_init_layout_and_open(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    assert r.coral_dir == tmp_path / "r" / ".coral"
    assert (r.coral_dir / "coral.db").is_file()
    assert "format_version = 1" in (r.coral_dir / "config.toml").read_text()
    assert r.current_branch == "main"
    assert r.status().unborn and r.log() == []
    r.close()
    r2 = Repository(tmp_path / "r")
    assert r2.path == tmp_path / "r"
    r2.close()
    wal = (
        sqlite3.connect(tmp_path / "r" / ".coral" / "coral.db")
        .execute("PRAGMA journal_mode")
        .fetchone()
    )
    assert wal[0] == "wal"


def test_open_searches_upward_and_errors_clearly(tmp_path: Path) -> None:
    Repository(tmp_path / "r", init=True).close()
    deep = tmp_path / "r" / "a" / "b"
    deep.mkdir(parents=True)
    with Repository(deep) as r:
        assert r.path == tmp_path / "r"
    with pytest.raises(NotARepositoryError) as info:
        Repository(tmp_path / "elsewhere")
    assert info.value.hint and "coral init" in info.value.hint


def test_init_twice(tmp_path: Path) -> None:
    Repository.init(tmp_path).close()
    with pytest.raises(RepositoryExistsError):
        Repository.init(tmp_path)
    with pytest.raises(RepositoryExistsError):
        Repository(tmp_path, init=True)
    Repository.init(tmp_path, exist_ok=True).close()


def test_newer_format_refused(tmp_path: Path) -> None:
    Repository.init(tmp_path / "a").close()
    db = sqlite3.connect(tmp_path / "a" / ".coral" / "coral.db")
    db.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    db.commit()
    db.close()
    with pytest.raises(FormatVersionError):
        Repository(tmp_path / "a")
    Repository.init(tmp_path / "b").close()
    cfg = tmp_path / "b" / ".coral" / "config.toml"
    cfg.write_text(cfg.read_text().replace("format_version = 1", "format_version = 7"))
    with pytest.raises(FormatVersionError) as info:
        Repository(tmp_path / "b")
    assert "upgrade" in str(info.value)


def test_storage_settings_read_from_config(tmp_path: Path) -> None:
    """Every StoreConfig field can be set in [storage]; a misspelt key is refused, not ignored."""
    Repository.init(tmp_path).close()
    cfg = tmp_path / ".coral" / "config.toml"
    base = cfg.read_text()
    cfg.write_text(base + '[storage]\nreverse_deltas = false\nmode = "fast"\nfsync = false\n')
    with Repository(tmp_path) as r:
        assert isinstance(r.store, PackStore)
        assert r.store.config.reverse_deltas is False
        assert r.store.config.mode == "fast"
        assert r.store.config.fsync is False
    cfg.write_text(base + "[storage]\nreverse_delta = false\nchunk_byte = 4096\n")
    with pytest.raises(CoralError) as info:
        Repository(tmp_path)
    assert "'chunk_byte', 'reverse_delta'" in info.value.message
    assert info.value.hint is not None
    for f in dataclasses.fields(StoreConfig):
        assert f.name in info.value.hint


def test_init_with_other_default_branch(tmp_path: Path) -> None:
    with Repository.init(tmp_path, default_branch="trunk") as r:
        commit_weights(r, make_weights(0), "c")
        assert [b.name for b in r.list_branches()] == ["trunk"]


# -- staging and commit --------------------------------------------------------------------------
def test_add_commit_read_back_all_input_kinds(repo: Repository) -> None:
    torch = pytest.importorskip("torch")
    w = {
        "np": np.arange(12, dtype=np.float32).reshape(3, 4),
        "wt": WeightTensor(np.ones(3, dtype=np.float16), name="ignored", layer_type="Linear"),
        "torch_bf16": torch.linspace(-1, 1, 7, dtype=torch.bfloat16),
        "scalar": np.float64(3.5),
        "empty": np.zeros((0, 4), dtype=np.int8),
        "bool": np.array([True, False]),
    }
    ids = repo.add_all_weights(w)
    assert set(ids) == set(w)
    h = repo.commit("all kinds", author="tester", metadata={"metrics": {"acc": 0.5}})
    got = repo.get_all_weights()
    assert same(got["np"], w["np"])
    assert got["wt"].metadata.layer_type == "Linear" and got["wt"].name == "wt"
    assert got["torch_bf16"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert (
        got["torch_bf16"].data.view(np.uint16).tolist()
        == w["torch_bf16"].view(torch.int16).numpy().view(np.uint16).tolist()
    )
    assert got["scalar"].shape == () and float(got["scalar"].data) == 3.5
    assert got["empty"].shape == (0, 4)
    assert got["bool"].data.tolist() == [True, False]
    c = repo.get_commit(h)
    assert c.author == "tester" and c.metrics == {"acc": 0.5} and c.parents == []


def test_bit_exact_special_values(repo: Repository) -> None:
    vals = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, np.nan], dtype=np.float32)
    payload = np.array([0x7FC00001, 0xFFC12345], dtype=np.uint32).view(np.float32)
    commit_weights(repo, {"v": vals, "nan_payload": payload}, "special")
    got = repo.get_all_weights()
    assert got["v"].data.tobytes() == vals.tobytes()
    assert got["nan_payload"].data.tobytes() == payload.tobytes()


def test_nothing_to_commit(repo: Repository) -> None:
    with pytest.raises(NothingToCommitError):
        repo.commit("empty")
    with pytest.raises(NothingToCommitError):
        repo.commit("empty", allow_empty=True)  # no HEAD and nothing staged
    w = make_weights(1)
    commit_weights(repo, w, "first")
    with pytest.raises(NothingToCommitError):
        repo.commit("again", allow_empty=False)
    repo.add_all_weights(w)  # identical to HEAD: nothing staged
    assert repo.status().is_clean
    with pytest.raises(NothingToCommitError):
        repo.commit("same", allow_empty=False)
    h = repo.commit("marks the final state", metadata={"metrics": {"acc": 0.9}})
    assert repo.get_commit(h).tree_id == repo.get_commit("HEAD~1").tree_id
    assert repo.get_commit(h).metadata["metrics"] == {"acc": 0.9}


def test_in_place_mutation_is_detected(repo: Repository) -> None:
    wt = WeightTensor(np.zeros(4, dtype=np.float32), name="w")
    repo.add_all_weights({"w": wt})
    repo.commit("zeros")
    wt.data[0] = 1.0  # mutate behind the cached hash's back
    repo.add_all_weights({"w": wt})
    repo.commit("one")
    assert repo.get_weight("w").data.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert repo.get_weight("w", "HEAD~1").data.tolist() == [0.0] * 4


def test_status_and_staging_survive_restart(tmp_path: Path) -> None:
    r = Repository.init(tmp_path, shared_staging=True)  # the CLI's area: it outlives the object
    commit_weights(r, make_weights(0), "base")
    w = make_weights(0)
    w["layer0.weight"] = w["layer0.weight"] + 1
    w["new"] = np.ones(2, dtype=np.float32)
    r.add_all_weights({k: w[k] for k in ("layer0.weight", "new")})
    r.remove_weight("layer1.weight")
    r.close()
    assert Repository(tmp_path).status().is_clean  # a private session does not see it
    r = Repository(tmp_path, shared_staging=True)
    st = r.status()
    assert (st.branch, st.detached) == ("main", False)
    assert (
        st.added == ["new"] and st.modified == ["layer0.weight"] and st.removed == ["layer1.weight"]
    )
    assert st.to_dict()["staged"]["added"] == ["new"]
    h = r.commit("changes")
    tree = r.get_tree(h)
    assert "layer1.weight" not in tree and "new" in tree
    assert r.status().is_clean
    r.close()


def test_unstage_and_remove(repo: Repository) -> None:
    commit_weights(repo, make_weights(0), "base")
    repo.add_weight("x", np.ones(3))
    repo.add_weight("y", np.ones(3))
    assert repo.unstage("x") == 1
    assert repo.status().added == ["y"]
    assert repo.unstage() == 1
    with pytest.raises(WeightNotFoundError):
        repo.remove_weight("nope")
    repo.add_weight("z", np.ones(1))
    repo.remove_weight("z")  # staged addition only: dropped
    assert repo.status().is_clean


def test_weight_name_validation(repo: Repository) -> None:
    with pytest.raises(InvalidNameError):
        repo.add_all_weights({"": np.ones(1)})
    with pytest.raises(InvalidNameError):
        repo.add_all_weights({"bad\nname": np.ones(1)})
    with pytest.raises(TypeError):
        repo.add_all_weights([("a", np.ones(1))])  # type: ignore[arg-type]


def test_delta_reference_is_parent_tensor(repo: Repository) -> None:
    """A small change to a tensor costs a small delta, not a second full copy."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((256, 256)).astype(np.float32)
    commit_weights(repo, {"w": base}, "base")
    one = repo.store.stats().stored_bytes
    tweaked = base.copy()
    tweaked[0, :8] += 1e-3
    commit_weights(repo, {"w": tweaked}, "tweak")
    assert repo.store.stats().stored_bytes < 1.1 * one
    assert repo.deduplicator.get_stats().similar_weights == 1


# -- reading -------------------------------------------------------------------------------------
def test_get_all_weights_layers_and_lazy(repo: Repository) -> None:
    w = make_weights(2, n=4)
    commit_weights(repo, w, "c")
    assert set(repo.get_all_weights(layers="layer[12].*")) == {"layer1.weight", "layer2.weight"}
    assert set(repo.get_all_weights(layers=["step", "layer0.*"])) == {"step", "layer0.weight"}
    assert repo.list_weights(layers="lay*") == [f"layer{i}.weight" for i in range(4)]
    lazy = repo.get_all_weights(lazy=True)
    assert all(not t.is_loaded for t in lazy.values())
    assert lazy["layer3.weight"].shape == (16, 8) and not lazy["layer3.weight"].is_loaded
    assert same(lazy["layer3.weight"], w["layer3.weight"])
    assert same(repo.get_weight("step"), w["step"])
    assert same(repo.get_weight("layer1.weight", lazy=True), w["layer1.weight"])
    with pytest.raises(WeightNotFoundError):
        repo.get_weight("missing")


def test_unborn_head_errors(repo: Repository) -> None:
    with pytest.raises(RefNotFoundError) as info:
        repo.get_all_weights()
    assert "no commits" in str(info.value)


# -- refs ----------------------------------------------------------------------------------------
@pytest.fixture
def graph(repo: Repository) -> dict[str, str]:
    """c1 - c2 - c3 (main), c2 - f1 - f2 (feat/x), merge m = main + feat/x; tag v1 at c2."""
    h: dict[str, str] = {}
    h["c1"] = commit_weights(repo, make_weights(1), "c1")
    h["c2"] = commit_weights(repo, make_weights(2), "c2")
    repo.tag_version("v1", "second", {"acc": 0.7})
    repo.create_branch("feat/x")
    h["c3"] = commit_weights(repo, {"only_main": np.ones(2)}, "c3")
    repo.checkout("feat/x")
    h["f1"] = commit_weights(repo, {"only_feat": np.ones(3)}, "f1")
    h["f2"] = commit_weights(repo, {"only_feat": np.zeros(3)}, "f2")
    repo.checkout("main")
    h["m"] = str(repo.merge("feat/x"))
    return h


def test_ten_ref_syntaxes(repo: Repository, graph: dict[str, str]) -> None:
    r = repo.resolve_ref
    assert r("main") == graph["m"]  # 1 branch
    assert r("v1") == graph["c2"]  # 2 tag
    assert r(graph["c1"]) == graph["c1"]  # 3 full hash
    assert r(graph["c1"][:8]) == graph["c1"]  # 4 short hash
    assert r("HEAD") == graph["m"]  # 5 HEAD
    assert r("HEAD~2") == graph["c2"]  # 6 HEAD~n (first parents)
    assert r("feat/x~1") == graph["f1"]  # 7 ref~n with a / in the branch name
    assert r("main^") == graph["c3"]  # 8 ref^
    assert r("main^2") == graph["f2"]  # 9 second parent
    assert r("HEAD^^") == graph["c2"]  # 10 ref^^
    assert r("main^2~2") == graph["c2"]
    assert r("v1~1") == graph["c1"] == r("v1^1") == r(graph["c2"][:6] + "~")
    assert r("main^0") == graph["m"]
    assert r("refs/heads/main") == graph["m"] and r("refs/tags/v1") == graph["c2"]
    assert r(graph["c1"].upper()[:10]) == graph["c1"]


def test_bad_refs(repo: Repository, graph: dict[str, str]) -> None:
    for bad in ["nope", "HEAD~10", "main^3", "c1^2", "abc", "zzzz", graph["c1"][:3]]:
        with pytest.raises(RefNotFoundError):
            repo.resolve_ref(bad)
    with pytest.raises(RefNotFoundError) as info:
        repo.resolve_ref("HEAD~10")
    assert "parent" in str(info.value)


def test_ambiguous_short_hash_forced(repo: Repository) -> None:
    """Plant two commit records with the same 4-character prefix and look them up by it."""
    from coral.storage.pack import PackWriter

    h = commit_weights(repo, make_weights(0), "c")
    twin = h[:4] + ("0" if h[4] != "0" else "1") + h[5:]
    writer = PackWriter(repo.store.backend, fsync=False)
    writer.add("commit", twin, repo.store.read_record("commit", h))
    repo.store.index.add_pack(writer.finish(), writer.size)
    with pytest.raises(AmbiguousRefError) as info:
        repo.resolve_ref(h[:4])
    assert "more characters" in (info.value.hint or "")
    assert repo.resolve_ref(h[:6]) == h


def test_log_order_and_limits(repo: Repository, graph: dict[str, str]) -> None:
    log = repo.log()
    assert [c.commit_hash for c in log][:1] == [graph["m"]]
    assert len(log) == 6 and log[-1].commit_hash == graph["c1"]
    pos = {c.commit_hash: i for i, c in enumerate(log)}
    for c in log:
        for p in c.parents:
            assert pos[c.commit_hash] < pos[p]
    assert [c.message for c in repo.log(max_commits=2)] == [log[0].message, log[1].message]
    assert [c.message for c in repo.log(branch="feat/x")] == ["f2", "f1", "c2", "c1"]
    assert repo.log(max_commits=0) == []


def test_checkout_branch_tag_commit_and_dirty(repo: Repository, graph: dict[str, str]) -> None:
    assert repo.checkout("v1") == graph["c2"]
    st = repo.status()
    assert st.detached and st.branch is None and st.head == graph["c2"]
    assert set(repo.get_all_weights()) == set(make_weights(2))
    h = commit_weights(repo, {"detached_work": np.ones(1)}, "on detached head")
    assert repo.head_commit() == h and repo.get_commit(h).parents == [graph["c2"]]
    repo.checkout("main")
    assert repo.current_branch == "main" and repo.head_commit() == graph["m"]
    repo.checkout(graph["f1"][:10])
    assert repo.status().detached
    repo.checkout("feat/x")
    assert repo.current_branch == "feat/x"
    repo.add_weight("dirty", np.ones(1))
    with pytest.raises(DirtyStagingError):
        repo.checkout("main")
    repo.checkout("main", force=True)
    assert repo.current_branch == "main" and repo.status().is_clean
    with pytest.raises(RefNotFoundError):
        repo.checkout("no-such-branch")
    assert [e.message.split(":")[0] for e in repo.reflog("HEAD", limit=1)] == ["checkout"]


def test_branches(repo: Repository, graph: dict[str, str]) -> None:
    names = [b.name for b in repo.list_branches()]
    assert names == ["feat/x", "main"]
    assert [b.is_current for b in repo.list_branches()] == [False, True]
    b = repo.create_branch("old", from_ref="HEAD~2")
    assert b.commit_hash == graph["c2"]
    with pytest.raises(RefExistsError):
        repo.create_branch("old")
    with pytest.raises(InvalidNameError):
        repo.create_branch("bad..name")
    with pytest.raises(CurrentBranchError):
        repo.delete_branch("main")
    assert repo.delete_branch("old") == graph["c2"]  # merged: fine
    repo.checkout("feat/x")
    commit_weights(repo, {"unmerged": np.ones(1)}, "unmerged")
    repo.checkout("main")
    with pytest.raises(BranchNotMergedError):
        repo.delete_branch("feat/x")
    repo.delete_branch("feat/x", force=True)
    assert [b.name for b in repo.list_branches()] == ["main"]
    with pytest.raises(RefNotFoundError):
        repo.delete_branch("feat/x")


def test_tags_survive_reopen(tmp_path: Path) -> None:
    r = Repository.init(tmp_path)
    h1 = commit_weights(r, make_weights(1), "one")
    r.tag_version("v1.0", description="first", metrics={"accuracy": 0.91, "loss": 0.2})
    commit_weights(r, make_weights(2), "two")
    r.tag_version("v2.0", ref="HEAD")
    r.create_branch("exp/a")
    with pytest.raises(RefExistsError):
        r.tag_version("v1.0")
    with pytest.raises(InvalidNameError):
        r.tag_version("bad tag")
    r.close()
    r = Repository(tmp_path)
    tags = {t.name: t for t in r.list_tags()}
    assert set(tags) == {"v1.0", "v2.0"}
    assert tags["v1.0"].commit_hash == h1
    assert tags["v1.0"].description == "first"
    assert tags["v1.0"].metrics == {"accuracy": 0.91, "loss": 0.2}
    assert tags["v1.0"].created_at > 0 and tags["v1.0"].tag_id
    assert r.get_tag("v2.0").description is None
    assert [b.name for b in r.list_branches()] == ["exp/a", "main"]
    moved = r.tag_version("v1.0", "moved", ref="HEAD", force=True)
    assert r.get_tag("v1.0").commit_hash == moved.commit_hash != h1
    r.delete_tag("v2.0")
    assert [t.name for t in r.list_tags()] == ["v1.0"]
    with pytest.raises(RefNotFoundError):
        r.delete_tag("v2.0")
    r.close()


def test_reflog_records_moves(repo: Repository) -> None:
    h1 = commit_weights(repo, make_weights(1), "one")
    h2 = commit_weights(repo, make_weights(2), "two")
    log = repo.reflog("main")
    assert [(e.old, e.new) for e in log] == [(h1, h2), (None, h1)]
    assert log[0].message == "commit: two"
    assert repo.reflog("HEAD")[0].to_dict()["new"] == h2


def test_ref_compare_and_swap(repo: Repository) -> None:
    h1 = commit_weights(repo, make_weights(1), "one")
    h2 = commit_weights(repo, make_weights(2), "two")
    with pytest.raises(ConcurrentUpdateError) as info, repo.database.transaction() as tx:
        repo.refs.update_branch(tx, "main", h1, h1, "stale")
    assert "moved" in str(info.value) and info.value.hint
    assert repo.head_commit() == h2


# -- diff ----------------------------------------------------------------------------------------
def test_diff(repo: Repository) -> None:
    a = {
        "same": np.ones(4, np.float32),
        "chg": np.array([3.0, 4.0], np.float32),
        "gone": np.ones(1),
        "reshaped": np.ones((2, 2)),
    }
    commit_weights(repo, a, "a")
    b = {
        "same": a["same"],
        "chg": np.array([3.0, 5.0], np.float32),
        "new": np.ones(1),
        "reshaped": np.ones(4),
    }
    repo.add_all_weights(b)
    repo.remove_weight("gone")
    staged = repo.diff("HEAD")
    assert staged.to_ref == "staged" and staged.changed["chg"].l2 == pytest.approx(1.0)
    repo.commit("b")
    d = repo.diff("HEAD~1", "HEAD")
    assert d.added == ["new"] and d.removed == ["gone"] and d.identical == ["same"]
    assert set(d.changed) == {"chg", "reshaped"}
    c = d.changed["chg"]
    assert c.l2 == pytest.approx(1.0)
    assert c.relative == pytest.approx(1.0 / 5.0)
    assert c.max_abs == pytest.approx(1.0)
    assert c.changed_elements == 1
    assert d.changed["reshaped"].shape_changed and d.changed["reshaped"].l2 is None
    as_dict = d.to_dict()
    assert as_dict["summary"] == {
        "added": 1,
        "removed": 1,
        "identical": 1,
        "changed": 2,
        "metadata_changed": 0,
    }
    assert as_dict["changed"]["chg"]["relative"] == pytest.approx(0.2)
    assert repo.diff("HEAD").has_changes is False


# -- lossy opt-in --------------------------------------------------------------------------------
def test_lossy_delta_is_opt_in_and_recorded(repo: Repository) -> None:
    from coral.version_control.lossy import LossyOptionError

    rng = np.random.default_rng(3)
    base = rng.standard_normal((64, 64)).astype(np.float32)
    first = commit_weights(repo, {"w": base, "steps": np.arange(3)}, "base")
    assert not repo.get_commit(first).lossy
    new = base + rng.standard_normal((64, 64)).astype(np.float32) * 0.01
    with pytest.raises(LossyOptionError):
        repo.add_all_weights({"w": new}, lossy_delta="xor")
    with pytest.raises(LossyOptionError):
        repo.add_all_weights({"w": new}, lossy_delta="nonsense")
    repo.add_all_weights({"w": new, "steps": np.arange(4)}, lossy_delta="int8_quantized_lossy")
    h = repo.commit("lossy step")
    commit = repo.get_commit(h)
    assert commit.lossy and set(commit.metadata["lossy"]) == {"w"}
    info = commit.metadata["lossy"]["w"]
    assert info["delta_type"] == "int8_quantized_lossy"
    got = repo.get_weight("w", h)
    assert got.metadata.extra["lossy"]["reference"] == repo.get_tree(first).entries["w"].tensor_id
    err = np.abs(got.data.astype(np.float64) - new.astype(np.float64)).max()
    assert 0 < err <= info["max_abs_error"] * 1.01 + 1e-6
    assert repo.get_weight("steps", h).data.tolist() == [0, 1, 2, 3]  # non-float: untouched


def test_renamed_tensor_finds_similar_reference(repo: Repository) -> None:
    """No same-named tensor in HEAD: the fingerprint index supplies a similar one."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((128, 128)).astype(np.float32)
    commit_weights(repo, {"old.name": x}, "one")
    one = repo.store.stats().stored_bytes
    repo.remove_weight("old.name")
    commit_weights(repo, {"new.name": x + np.float32(1e-4) * x}, "renamed and nudged")
    assert repo.store.stats().stored_bytes < 1.5 * one
    assert repo.deduplicator.get_stats().similar_weights == 1


def test_weights_equal_handles_0d_and_nan_bits() -> None:
    from coral.core.weight_tensor import WeightTensor
    from coral.version_control.repository import weights_equal

    nan_a = np.array(np.nan, dtype=np.float32)
    nan_b = np.array([0x7FC00001], dtype=np.uint32).view(np.float32).reshape(())
    assert weights_equal({"s": WeightTensor(nan_a)}, {"s": WeightTensor(nan_a.copy())})
    assert not weights_equal({"s": WeightTensor(nan_a)}, {"s": WeightTensor(nan_b)})

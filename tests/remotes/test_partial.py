"""Partial and lazy clones: `--layers` fetches some tensors, `--lazy` none; the rest arrive,
verified, when first read — also after the repository is reopened — and fsck says what is not
here yet without calling it damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CorruptObjectError, ObjectNotFoundError
from coral.storage.base import TENSOR
from coral.storage.promisor import PROMISOR_FILE
from coral.version_control.repository import Repository
from tests.remotes.helpers import (
    assert_bit_exact,
    commit,
    file_url,
    flip_remote_byte,
    model,
    open_remote,
)


def _history(make_repo, remote_dir: Path) -> tuple[Repository, list[dict], list[str]]:
    a = make_repo("a")
    weights = [model(s, n=4, shape=(64, 32)) for s in range(3)]
    commits = [commit(a, w, f"c{i}") for i, w in enumerate(weights)]
    assert open_remote(remote_dir).push(a).success
    return a, weights, commits


def _present(repo: Repository, ref: str = "HEAD") -> dict[str, bool]:
    tree = repo.read_tree(repo.read_commit(repo.resolve_ref(ref)).tree_id)
    return {n: repo.store._has(TENSOR, e.tensor_id) for n, e in tree.entries.items()}


def test_layers_fetch_only_matching_tensors_and_the_rest_on_first_read(make_repo, remote_dir):
    _, weights, _ = _history(make_repo, remote_dir)
    b = make_repo("b")
    result = open_remote(remote_dir).pull(b, layers=["layer0.*", "step"])
    assert result.success
    present = _present(b)
    assert present == {
        "layer0.weight": True,
        "layer1.weight": False,
        "layer2.weight": False,
        "layer3.weight": False,
        "step": True,
    }
    assert result.pulled_weights == 3 * 2  # layer0.weight and step of each of 3 commits
    assert (b.store.root / PROMISOR_FILE).is_file()
    assert_bit_exact(b, "HEAD", weights[-1])  # reads fetch the missing tensors
    assert all(_present(b).values())
    assert_bit_exact(b, "HEAD~2", weights[0])


def test_lazy_clone_fetches_on_read_after_reopening(make_repo, remote_dir, tmp_path):
    _, weights, commits = _history(make_repo, remote_dir)
    b = make_repo("b")
    result = open_remote(remote_dir).pull(b, lazy=True)
    assert result.success and result.pulled_weights == 0
    assert b.log()[0].commit_hash == commits[-1]
    assert not any(_present(b).values())
    report = b.fsck()
    assert report.ok, report.problems
    assert report.info and all("not fetched" in i.reason for i in report.info)
    b.close()
    reopened = make_repo("b", init=False)
    one = reopened.get_weight("layer2.weight", "HEAD~1")
    assert one.data.tobytes() == weights[1]["layer2.weight"].tobytes()
    assert _present(reopened, "HEAD~1")["layer2.weight"]
    assert not _present(reopened, "HEAD~1")["layer1.weight"]
    assert_bit_exact(reopened, "HEAD", weights[2])
    assert reopened.fsck().ok


def test_lazy_read_from_an_unreachable_remote_is_a_clear_error(make_repo, remote_dir, tmp_path):
    _, weights, _ = _history(make_repo, remote_dir)
    b = make_repo("b")
    open_remote(remote_dir).pull(b, layers=["layer0.*"])
    shutil.move(remote_dir, tmp_path / "moved")
    b.close()
    b = make_repo("b", init=False)
    with pytest.raises(ObjectNotFoundError) as err:
        b.get_all_weights("HEAD")
    assert "partial clone" in err.value.message and "origin" in err.value.message
    # what is here still reads, and nothing was damaged
    assert b.get_weight("layer0.weight").data.tobytes() == weights[-1]["layer0.weight"].tobytes()
    assert b.fsck().ok
    shutil.move(tmp_path / "moved", remote_dir)
    assert_bit_exact(b, "HEAD", weights[-1])


def test_tampered_remote_chunk_is_refused_on_lazy_read(make_repo, remote_dir):
    a, weights, _ = _history(make_repo, remote_dir)
    b = make_repo("b")
    remote = open_remote(remote_dir)
    remote.pull(b, lazy=True)
    tid = a.read_tree(a.read_commit(a.resolve_ref("HEAD")).tree_id).entries["layer3.weight"]
    chunk = a.store.manifest(tid.tensor_id).chunks[0]
    flip_remote_byte(remote_dir, remote, chunk)
    with pytest.raises((CorruptObjectError, ObjectNotFoundError)):
        b.get_weight("layer3.weight")
    assert not b.store._has(TENSOR, tid.tensor_id)
    assert b.get_weight("layer1.weight").data.tobytes() == weights[-1]["layer1.weight"].tobytes()


def test_cli_partial_clone_then_checkout_fetches_the_rest(make_repo, remote_dir, tmp_path):
    _, weights, _ = _history(make_repo, remote_dir)
    runner = CliRunner()
    target = tmp_path / "clone"
    res = runner.invoke(app, ["clone", "--layers", "layer1.*", file_url(remote_dir), str(target)])
    assert res.exit_code == 0, res.output
    assert "partial" in res.output
    clone = make_repo("clone", init=False)
    assert _present(clone) == {
        "layer0.weight": False,
        "layer1.weight": True,
        "layer2.weight": False,
        "layer3.weight": False,
        "step": False,
    }
    clone.close()
    res = runner.invoke(app, ["-C", str(target), "fsck"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["-C", str(target), "fetch", "--layers", "layer2.*"])
    assert res.exit_code == 0, res.output
    again = make_repo("clone", init=False)
    assert _present(again)["layer2.weight"]
    assert_bit_exact(again, "HEAD", weights[-1])


def test_pushing_a_lazy_clone_elsewhere_fetches_what_the_other_remote_lacks(
    make_repo, remote_dir, tmp_path
):
    _, weights, _ = _history(make_repo, remote_dir)
    b = make_repo("b")
    open_remote(remote_dir).pull(b, lazy=True)
    other = tmp_path / "other"
    assert open_remote(other, "backup").push(b).success
    c = make_repo("c")
    assert open_remote(other, "backup").pull(c).success
    assert_bit_exact(c, "HEAD", weights[-1])
    assert_bit_exact(c, "HEAD~2", weights[0])


def test_gc_and_fsck_of_a_lazy_clone_fetch_nothing(make_repo, remote_dir):
    _, weights, _ = _history(make_repo, remote_dir)
    b = make_repo("b")
    open_remote(remote_dir).pull(b, lazy=True)
    assert b.fsck().ok
    b.gc()
    assert not any(_present(b).values()) and not any(_present(b, "HEAD~2").values())
    assert b.fsck().ok
    assert_bit_exact(b, "HEAD~1", weights[1])
    b.gc()
    assert_bit_exact(b, "HEAD~1", weights[1])

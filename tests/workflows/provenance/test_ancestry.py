"""`coral ancestry WEIGHT [REF]`: the commits where one tensor's content changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coral.porcelain.ancestry import ancestry
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.provenance.conftest import as_json, model


def test_versions_newest_first_with_norms_storage_and_base(session, coral):
    doc = as_json(coral("ancestry", "head.weight", "--json"))
    assert set(doc) == {"name", "ref", "commit_hash", "truncated", "versions"}
    assert doc["name"] == "head.weight" and doc["truncated"] is False
    new, old = doc["versions"]
    assert [new["kind"], old["kind"]] == ["changed", "added"]
    assert [new["message"], old["message"]] == ["fine-tune head", "base model"]
    assert new["previous"] == [
        {"tensor": old["tensor"], "name": "head.weight", "commit_hash": old["commit_hash"]}
    ]
    a, b = (model(i)["head.weight"].astype(np.float64) for i in (0, 1))
    assert new["norm"] == pytest.approx(np.linalg.norm(b), rel=1e-9)
    assert old["norm"] == pytest.approx(np.linalg.norm(a), rel=1e-9)
    assert new["change_l2"] == pytest.approx(np.linalg.norm(b - a), rel=1e-6)
    assert new["relative_change"] == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a))
    assert old["change_l2"] is None and old["previous"] == []
    assert new["base"]["commit"] == old["commit_hash"] and new["base"]["ref"] == "base"
    for v in doc["versions"]:
        s = v["storage"]
        assert s["raw_bytes"] == 8 * 64 * 4 and s["stored_bytes"] > 0
        if s["encoding"] != "full":  # a delta: it names the tensor it is encoded against
            assert s["delta_of"] and all(d["name"] == "head.weight" for d in s["delta_of"])
    # one of the two versions is stored as a delta of the other (whichever way storage chose)
    deltas = [d["tensor"] for v in doc["versions"] for d in v["storage"]["delta_of"]]
    assert deltas and set(deltas) <= {new["tensor"], old["tensor"]}


def test_unchanged_tensor_has_one_version_and_ref_limits_history(session, coral):
    doc = as_json(coral("ancestry", "encoder.bias", "--json"))
    assert [v["kind"] for v in doc["versions"]] == ["added"]
    assert doc["versions"][0]["norm"] == 0.0
    older = as_json(coral("ancestry", "head.weight", "HEAD~1", "--json"))
    assert [v["message"] for v in older["versions"]] == ["base model"]
    assert len(as_json(coral("ancestry", "head.weight", "-n", "1", "--json"))["versions"]) == 1


def test_text_fits_80_columns(session, coral):
    result = coral("ancestry", "head.weight")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("head.weight (8, 64) float32: 2 versions from HEAD")
    assert any("changed" in ln and "norm" in ln and "change" in ln for ln in lines)
    assert any(ln.strip().startswith("stored ") for ln in lines)
    assert any(ln.strip().startswith("base base (") for ln in lines)
    assert all(len(ln) <= 80 for ln in lines), lines


def test_merge_removal_and_readd(tmp_path):
    w = model(0)
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights(w)
        root = repo.commit("root")
        repo.create_branch("side")
        repo.add_weight("head.weight", w["head.weight"] * 2)
        ours = repo.commit("ours")
        repo.checkout("side")
        repo.add_weight("head.weight", w["head.weight"] * 4)
        theirs = repo.commit("theirs")
        repo.checkout("main")
        merged = str(repo.merge("side", strategy="average"))
        repo.remove_weight("encoder.bias")
        gone = repo.commit("drop bias")
        repo.add_weight("encoder.bias", np.ones(64, np.float32))
        back = repo.commit("bias again")

        head = ancestry(repo, "head.weight")
        assert [(v.kind, v.commit.commit_hash) for v in head.versions] == [
            ("merged", merged),
            ("changed", theirs),
            ("changed", ours),
            ("added", root),
        ]
        assert {p.commit for p in head.versions[0].previous} == {ours, theirs}
        expected = np.linalg.norm((w["head.weight"] * 3).astype(np.float64))
        assert head.versions[0].norm == pytest.approx(expected, rel=1e-6)

        bias = ancestry(repo, "encoder.bias")
        assert [(v.kind, v.commit.commit_hash) for v in bias.versions] == [
            ("added", back),
            ("removed", gone),
            ("added", root),
        ]
        assert bias.versions[1].entry is None and bias.versions[1].stored is None
        # at the merge the tensor came unchanged from main: the side branch is not walked
        assert [v.kind for v in ancestry(repo, "encoder.weight").versions] == ["added"]


def test_unknown_weight_and_ref_are_user_errors(session, coral):
    assert_user_error(coral("ancestry", "head.wieght"), "no weight named", "head.weight")
    assert_user_error(coral("ancestry", "head.weight", "nope"), "nope")
    assert_user_error(coral("ancestry", "head.weight", "-n", "0"), "--max-count")


def test_subprocess_coral_ancestry(session: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(session), "ancestry", "head.weight"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 versions from HEAD" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(session), "ancestry", "nothing"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "\nhint: " in bad.stderr


def test_a_revert_names_the_version_it_restores(tmp_path):
    w = model(0)
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights(w)
        first = repo.commit("first")
        repo.add_weight("head.weight", w["head.weight"] + 1)
        repo.commit("tuned")
        repo.add_weight("head.weight", w["head.weight"])
        repo.commit("revert")
        versions = ancestry(repo, "head.weight").versions
        assert [v.same_as for v in versions] == [first, None, None]
        assert versions[0].to_dict()["same_as"] == first


def test_pruned_and_collected_history_is_reported_not_guessed(tmp_path):
    w = np.ones((8, 8), np.float32)
    with Repository.init(tmp_path / "r") as repo:
        commits = []
        for i in range(3):
            repo.add_all_weights({"a": w * i, "b": w})
            commits.append(repo.commit(f"c{i}"))
        repo.prune_commits(commits[:2])
        repo.gc()
        result = ancestry(repo, "a")
        assert result.truncated is True
        assert [(v.kind, v.commit.commit_hash) for v in result.versions] == [
            ("unknown", commits[2])
        ]
        assert result.versions[0].norm == pytest.approx(16.0)

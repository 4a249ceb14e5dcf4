"""Every `coral` command on a small repository, human and --json output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coral.integrations.formats import save_weights
from coral.version_control.repository import Repository
from tests.cli.conftest import Invoke, assert_user_error, weights


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return result.stdout


def test_init(tmp_path: Path, coral: Invoke) -> None:
    out = ok(coral("init", str(tmp_path / "new"), "--branch", "trunk", repo=None))
    assert "Initialized empty Coral repository" in out
    with Repository(tmp_path / "new") as repo:
        assert repo.current_branch == "trunk"
    assert_user_error(coral("init", repo=tmp_path / "new"), "already exists")
    ok(coral("init", repo=tmp_path / "other"))  # -C names where to create it
    assert (tmp_path / "other" / ".coral").is_dir()


def test_add_status_commit_reset_rm(coral: Invoke, repo_path: Path, tmp_path: Path) -> None:
    w = weights(2)
    w["extra"] = np.ones(3, np.float64)
    save_weights(w, tmp_path / "ckpt.safetensors")
    out = ok(coral("add", str(tmp_path / "ckpt.safetensors")))
    assert (
        "staged 4 tensors" in out
        and "1 new" in out
        and "1 modified" in out
        and "2 unchanged" in out
    )
    status = ok(coral("status"))
    assert (
        "On branch main" in status
        and "new:" in status
        and "extra" in status
        and "modified:" in status
    )
    st = json.loads(ok(coral("status", "--json")))
    assert st["staged"] == {"added": ["extra"], "modified": ["encoder.weight"], "removed": []}
    assert ok(coral("reset", "extra")).strip() == "unstaged 1 change"
    ok(coral("rm", "head.weight"))
    st = json.loads(ok(coral("status", "--json")))
    assert st["staged"] == {"added": [], "modified": ["encoder.weight"], "removed": ["head.weight"]}
    out = ok(
        coral(
            "commit",
            "-m",
            "third",
            "--metric",
            "loss=0.25",
            "--metric",
            "note=x",
            "--author",
            "Ann",
        )
    )
    assert out.startswith("[main ") and "third" in out
    with Repository(repo_path) as repo:
        c = repo.get_commit("HEAD")
        assert c.metrics == {"loss": 0.25, "note": "x"} and c.author == "Ann"
        assert "head.weight" not in repo.get_tree("HEAD").entries
    assert "nothing staged" in ok(coral("status"))
    assert_user_error(coral("commit", "-m", "again"), "nothing to commit")
    assert_user_error(coral("commit", "-m", "x", "--metric", "novalue"), "bad metric")


def test_add_replace_and_prefix(coral: Invoke, repo_path: Path, tmp_path: Path) -> None:
    save_weights({"only": np.ones(2, np.float32)}, tmp_path / "a.npz")
    ok(coral("add", "--replace", str(tmp_path / "a.npz")))
    st = json.loads(ok(coral("status", "--json")))
    assert st["staged"]["added"] == ["only"]
    assert sorted(st["staged"]["removed"]) == ["encoder.bias", "encoder.weight", "head.weight"]
    ok(coral("reset"))
    ok(coral("add", "--prefix", "teacher.", str(tmp_path / "a.npz")))
    assert json.loads(ok(coral("status", "--json")))["staged"]["added"] == ["teacher.only"]


def test_log(coral: Invoke) -> None:
    out = ok(coral("log"))
    assert out.index("second") < out.index("first")
    assert "(HEAD -> main, tag: v1)" in out and "Metrics: loss=0.5" in out
    lines = ok(coral("log", "--oneline")).splitlines()
    assert len(lines) == 2 and lines[0].endswith("second") and "(feature)" in lines[1]
    assert len(ok(coral("log", "-n", "1", "--oneline")).splitlines()) == 1
    assert "second" not in ok(coral("log", "feature", "--oneline"))
    data = json.loads(ok(coral("log", "--json")))
    assert [c["message"] for c in data] == ["second", "first"]
    assert data[0]["refs"] == ["HEAD -> main", "tag: v1"] and data[0]["metadata"]["metrics"] == {
        "loss": 0.5
    }


def test_log_graph_of_a_merge(coral: Invoke, repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        repo.checkout("feature")
        w = weights(0)
        w["head.weight"] = w["head.weight"] * 2
        repo.add_all_weights(w)
        repo.commit("feature work")
        repo.checkout("main")
    out = ok(coral("merge", "feature", "--strategy", "average"))
    assert "Merged feature into main" in out
    graph = ok(coral("log", "--graph", "--oneline")).splitlines()
    assert graph[0].startswith("* ") and "Merge" in graph[0]
    assert graph[1] == "|\\"
    assert any(line.startswith("| * ") and "feature work" in line for line in graph)
    assert graph[-1].startswith("* ") and graph[-1].endswith("first")
    assert "|/" in graph
    full = ok(coral("log", "--graph"))
    assert "Merge:" in full


def test_show_commit_and_tensor(coral: Invoke) -> None:
    out = ok(coral("show", "v1"))
    assert "second" in out and "encoder.weight" in out and "(16, 8)" in out and "3 tensors" in out
    filtered = ok(coral("show", "HEAD", "--layers", "encoder.*"))
    assert (
        "encoder.bias" in filtered
        and "head.weight" not in filtered
        and "2 of 3 tensors" in filtered
    )
    data = json.loads(ok(coral("show", "HEAD~1", "--json", "--layers", "head.*")))
    assert data["message"] == "first" and [t["name"] for t in data["tensors"]] == ["head.weight"]
    tensor = ok(coral("show", "HEAD:encoder.weight"))
    assert "float32" in tensor and "l2_norm" in tensor and "stored" in tensor
    info = json.loads(ok(coral("show", "feature:encoder.bias", "--json")))
    assert (
        info["values"]["zeros"] == 8
        and info["shape"] == [8]
        and info["storage"]["stored_bytes"] > 0
    )
    assert (
        json.loads(ok(coral("show", "head.weight", "--json")))["name"] == "head.weight"
    )  # bare name: HEAD
    assert_user_error(coral("show", "HEAD:missing"), "missing")


def test_diff(coral: Invoke, repo_path: Path) -> None:
    out = ok(coral("diff", "feature", "main"))
    assert "1 changed" in out and "2 identical" in out and "encoder.weight" in out
    assert "encoder.bias" not in out
    assert "encoder.bias" in ok(coral("diff", "feature", "main", "--all"))
    data = json.loads(ok(coral("diff", "HEAD~1", "HEAD", "--json")))
    change = data["changed"]["encoder.weight"]
    assert (
        data["summary"]["changed"] == 1 and change["l2"] > 0 and change["changed_elements"] == 128
    )
    assert json.loads(ok(coral("diff", "HEAD", "--json")))["summary"]["changed"] == 0


def test_diff_against_the_staged_changes(coral: Invoke, tmp_path: Path) -> None:
    save_weights({"fresh": np.ones((2, 5), np.float16)}, tmp_path / "f.npz")
    ok(coral("add", str(tmp_path / "f.npz")))
    out = ok(coral("diff", "HEAD"))
    assert "HEAD -> staged" in out and "1 added" in out
    assert "fresh" in out and "(2, 5)" in out and "float16" in out


def test_branch(coral: Invoke) -> None:
    out = ok(coral("branch"))
    assert "* main" in out and "  feature" in out
    assert "Created branch exp" in ok(coral("branch", "exp", "HEAD~1"))
    data = json.loads(ok(coral("branch", "--json")))
    assert {b["name"] for b in data} == {"main", "feature", "exp"}
    assert next(b for b in data if b["is_current"])["name"] == "main"
    assert "Deleted branch exp" in ok(coral("branch", "-d", "exp"))
    ok(coral("checkout", "-b", "side", "feature"))
    ok(coral("checkout", "main"))
    assert_user_error(coral("branch", "-d", "main"), "main")
    assert_user_error(coral("branch", "bad..name"), "bad..name")


def test_checkout(coral: Invoke, repo_path: Path, tmp_path: Path) -> None:
    assert "Switched to branch feature" in ok(coral("checkout", "feature"))
    assert "detached" in ok(coral("checkout", "v1"))
    assert "HEAD detached" in ok(coral("status"))
    ok(coral("checkout", "main"))
    save_weights({"x": np.ones(1)}, tmp_path / "x.npz")
    ok(coral("add", str(tmp_path / "x.npz")))
    assert_user_error(coral("checkout", "feature"), "staged")
    ok(coral("checkout", "--force", "feature"))
    with Repository(repo_path) as repo:
        assert repo.current_branch == "feature" and repo.status().is_clean


def test_tag(coral: Invoke, repo_path: Path) -> None:
    out = ok(coral("tag"))
    assert "v1" in out and "good one" in out and "accuracy=0.9" in out
    ok(
        coral(
            "tag",
            "v0",
            "HEAD~1",
            "-m",
            "baseline",
            "--metric",
            "accuracy=0.7",
            "--metric",
            "epochs=3",
        )
    )
    data = {t["name"]: t for t in json.loads(ok(coral("tag", "--json")))}
    assert data["v0"]["metrics"] == {"accuracy": 0.7, "epochs": 3}
    assert data["v0"]["description"] == "baseline"
    with Repository(repo_path) as repo:
        assert data["v0"]["commit_hash"] == repo.resolve_ref("HEAD~1")
    assert_user_error(coral("tag", "v0"), "v0")  # exists
    ok(coral("tag", "v0", "-f"))
    assert "Deleted tag v0" in ok(coral("tag", "-d", "v0"))


def test_merge(coral: Invoke, repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        repo.checkout("feature")
        w = weights(0)
        w["encoder.weight"] = w["encoder.weight"] * 3
        repo.add_all_weights(w)
        repo.commit("conflicting")
        repo.checkout("main")
    assert_user_error(coral("merge", "feature"), "conflict")
    data = json.loads(
        ok(coral("merge", "feature", "-s", "weighted", "--weights", "0.75,0.25", "--json"))
    )
    assert data["strategy"] == "weighted" and data["conflicts"] == ["encoder.weight"]
    assert "Already up to date" in ok(coral("merge", "feature"))
    assert_user_error(coral("merge", "feature", "-s", "nonsense"), "nonsense")


def test_gc_fsck_stats(coral: Invoke, repo_path: Path, tmp_path: Path) -> None:
    save_weights({"tmp": np.arange(1000, dtype=np.float32)}, tmp_path / "t.npz")
    ok(coral("add", str(tmp_path / "t.npz")))
    ok(coral("reset"))
    dry = ok(coral("gc", "--dry-run"))
    assert dry.startswith("would remove") and "1 tensor" in dry
    data = json.loads(ok(coral("gc", "--json")))
    assert data["removed"].get("tensor") == 1 and data["freed_bytes"] > 0
    assert ok(coral("fsck")).startswith("ok: checked")
    assert json.loads(ok(coral("fsck", "--json", "--quick")))["ok"] is True
    out = ok(coral("stats"))
    assert "Storage per commit" in out and "second" in out and "deduplicated" in out
    stats = json.loads(ok(coral("stats", "--json")))
    assert [r["message"] for r in stats["history"]] == ["first", "second"]
    dedup = stats["deduplication"]
    assert (
        dedup["total_weights"] == 6
        and dedup["distinct_weights"] == 4
        and dedup["duplicate_weights"] == 2
        and dedup["unique_weights"] + dedup["similar_weights"] == 4
    )
    assert stats["store"]["tensors"] == 4


def test_json_output_is_strict_json(coral: Invoke, repo_path: Path) -> None:
    """A zero tensor that changes has relative change inf: JSON stays strict ("Infinity")."""
    with Repository(repo_path) as repo:
        w = weights(1)
        w["encoder.bias"] = np.ones(8, np.float32)
        repo.add_all_weights(w)
        repo.commit("bias moves")

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(ok(coral("diff", "HEAD~1", "HEAD", "--json")), parse_constant=no_constants)
    assert data["changed"]["encoder.bias"]["relative"] == "Infinity"


def test_log_names_linked_experiments(coral: Invoke, repo_path: Path) -> None:
    experiments = pytest.importorskip("coral.experiments")
    with Repository(repo_path) as repo:
        tracker = experiments.ExperimentTracker(repo)
        exp = tracker.start("lr-sweep")
        tracker.link_commit(repo.resolve_ref("HEAD~1"))
        tracker.end()
    lines = ok(coral("log", "--oneline")).splitlines()
    assert lines[1].endswith("first [lr-sweep]") and "[" not in lines[0].split("second")[-1]
    assert f"Experiment: lr-sweep ({exp.experiment_id})" in ok(coral("log"))  # as listed
    data = json.loads(ok(coral("log", "--json")))
    assert data[1]["experiments"] == [{"experiment_id": exp.experiment_id, "name": "lr-sweep"}]
    assert data[0]["experiments"] == []


def test_commit_refuses_when_nothing_is_staged(coral: Invoke, repo_path: Path) -> None:
    assert_user_error(coral("commit", "-m", "nothing"), "nothing to commit", "--allow-empty")
    assert "second" in ok(coral("log", "-n", "1", "--oneline"))
    ok(coral("commit", "-m", "marker", "--allow-empty"))
    assert "marker" in ok(coral("log", "-n", "1", "--oneline"))

"""`coral preview REF` (look, change nothing) and `coral rollback REF` (REF's model as a new
commit, history kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral.errors import NothingToCommitError
from coral.porcelain.preview import preview_checkout
from coral.porcelain.rollback import rollback
from coral.version_control.errors import DirtyStagingError
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.snapshots.conftest import Invoke, as_json, repo_state, run_coral, tensors_of


@pytest.fixture
def history(coral: Invoke, models: dict[str, Path]) -> Invoke:
    """main: base (tag v1, loss 0.5) -> tuned (loss 0.3) -> wide + extra.bias + config.json."""
    coral("add", models["base"])
    coral("commit", "-m", "base", "--metric", "loss=0.5")
    coral("tag", "v1")
    coral("add", models["tuned"])
    coral("commit", "-m", "tuned", "--metric", "loss=0.3")
    coral("add", models["hf"])
    coral("add", models["wide"])
    coral("add", models["addon"])
    coral("commit", "-m", "wide")
    return coral


def test_preview_shows_the_change_and_modifies_nothing(history: Invoke, repo: Path) -> None:
    coral = history
    coral("status")  # the first open of a repository may create tables: not the preview's
    before = repo_state(repo)
    shown = coral("preview", "v1").stdout
    assert "would move HEAD" in shown and "(detached HEAD)" in shown
    assert "head.weight" in shown and "shape changed" in shown
    assert "extra.bias" in shown and "removed" in shown
    assert "config.json" in shown
    assert "nothing was changed" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    data = as_json(coral("preview", "v1", "--json"))
    assert data["detached"] is True and data["moves"] is True
    assert data["diff"]["removed"] == ["extra.bias"]
    assert data["diff"]["categories"]["shape_changed"] == 1
    assert data["files"] == {"config.json": "removed"}
    assert data["blocked"] is False
    assert repo_state(repo) == before
    assert as_json(coral("status", "--json"))["branch"] == "main"


def test_preview_of_a_branch_and_of_head(history: Invoke) -> None:
    coral = history
    coral("branch", "old", "v1")
    data = as_json(coral("preview", "old", "--json"))
    assert data["branch"] == "old" and data["detached"] is False
    same = coral("preview", "main").stdout
    assert "nothing would change" in same


def test_preview_names_staged_changes_that_would_block(
    history: Invoke, models: dict[str, Path], repo: Path
) -> None:
    coral = history
    coral("add", models["other"])
    before = repo_state(repo)
    data = as_json(coral("preview", "v1", "--json"))
    assert data["blocked"] is True
    assert {"kind": "modified", "name": "head.weight"} in data["staged"]
    assert "would stop it" in coral("preview", "v1").stdout
    assert repo_state(repo) == before


def test_rollback_commits_the_old_model_on_top(
    history: Invoke, models: dict[str, Path], repo: Path
) -> None:
    coral = history
    head = as_json(coral("status", "--json"))["head"]
    done = coral("rollback", "v1")
    assert "Rollback to" in done.stdout and "(v1)" in done.stdout
    log = as_json(coral("log", "--json"))
    assert len(log) == 4  # history kept: a new commit, nothing rewritten
    with Repository(repo) as r:
        commit = r.get_commit("HEAD")
        v1 = r.resolve_ref("v1")
        assert commit.parents == [head]
        assert commit.message == f"Rollback to {v1[:10]} (v1)"
        assert commit.metadata["rollback_of"] == v1
        assert commit.metrics == {"loss": 0.5}
        assert r.get_tree("HEAD").encode() == r.get_tree("v1").encode()
        stored = r.get_all_weights("HEAD")
        assert r.current_branch == "main"
    expected = tensors_of(models["base"])
    assert sorted(stored) == sorted(expected)
    for name, value in expected.items():
        assert stored[name].data.tobytes() == value.tobytes()


def test_rollback_dry_run_and_message(history: Invoke, repo: Path) -> None:
    coral = history
    coral("status")
    before = repo_state(repo)
    plan = coral("rollback", "HEAD~1", "--dry-run")
    assert "would commit onto main" in plan.stdout and "nothing was committed" in plan.stdout
    assert "extra.bias" in plan.stdout
    data = as_json(coral("rollback", "HEAD~1", "--dry-run", "--json"))
    assert data["commit"] is None and data["dry_run"] is True
    assert data["diff"]["removed"] == ["extra.bias"]
    assert repo_state(repo) == before

    made = as_json(coral("rollback", "HEAD~1", "-m", "back to tuned", "--json"))
    assert made["commit"] and made["message"] == "back to tuned"
    assert as_json(coral("log", "--json"))[0]["message"] == "back to tuned"


def test_rollback_errors(history: Invoke, models: dict[str, Path], tmp_path: Path) -> None:
    coral = history
    assert_user_error(coral("rollback", "nope", code=1), "nope")
    assert_user_error(coral("rollback", "HEAD", code=1), "nothing to roll back")
    assert_user_error(coral("preview", "nope", code=1), "nope")
    coral("add", models["other"])
    refused = coral("rollback", "v1", code=1)
    assert_user_error(refused, "staged")
    assert "coral stash" in refused.stderr
    coral("reset")

    empty = tmp_path / "empty"
    Repository.init(empty).close()
    result = coral("-C", str(empty), "rollback", "HEAD", code=1)
    assert_user_error(result, "no commits yet")


def test_subprocess_session(history: Invoke, repo: Path) -> None:
    shown = run_coral(repo, "preview", "v1")
    assert shown.returncode == 0, shown.stderr
    assert "head.weight" in shown.stdout
    done = run_coral(repo, "rollback", "v1")
    assert done.returncode == 0, done.stderr
    again = run_coral(repo, "rollback", "v1")
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "hint: " in again.stderr


def test_porcelain_functions(tmp_path: Path) -> None:
    import numpy as np

    with Repository.init(tmp_path / "r") as repo:
        repo.add_weight("w", np.zeros(4, np.float32))
        first = repo.commit("zeros", metadata={"metrics": {"acc": 0.1}})
        repo.add_weight("w", np.ones(4, np.float32))
        repo.commit("ones")
        p = preview_checkout(repo, first)
        assert p.moves and p.branch is None and list(p.diff.changed) == ["w"]
        plan = rollback(repo, first, dry_run=True)
        assert plan.commit is None and repo.log()[0].message == "ones"
        done = rollback(repo, first)
        assert repo.head_commit() == done.commit
        assert repo.get_commit().metadata["rollback_of"] == first
        assert repo.get_weight("w").data.tolist() == [0, 0, 0, 0]
        with pytest.raises(NothingToCommitError):
            rollback(repo, first)
        repo.add_weight("w", np.full(4, 2, np.float32))
        with pytest.raises(DirtyStagingError):
            rollback(repo, "HEAD~1")

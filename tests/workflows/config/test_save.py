"""`coral save PATH... -m MSG`: add and commit in one step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from coral.errors import NothingToCommitError
from coral.porcelain.save import save_paths
from coral.version_control.repository import Repository
from tests.workflows.config.conftest import Proc, Run, assert_user_error


def test_save_stages_and_commits(coral: Run, repo: Path, models: dict[str, Path]) -> None:
    first = coral("save", str(models["base"]), "-m", "base model", "--metric", "loss=1.5")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1].startswith("[main ")
    assert first.stdout.splitlines()[-1].endswith("] base model (3 tensors)")
    second = coral("save", str(models["tuned"]), "-m", "fine-tune", "--json")
    data = json.loads(second.stdout)
    assert set(data) == {
        "commit_hash",
        "message",
        "tensors",
        "files",
        "new",
        "modified",
        "unchanged",
        "removed",
    }
    assert (data["modified"], data["unchanged"], data["message"]) == (1, 2, "fine-tune")
    with Repository(repo) as r:
        assert r.head_commit() == data["commit_hash"]
        assert [c.message for c in r.log()] == ["fine-tune", "base model"]
        assert r.get_commit("HEAD~1").metadata["metrics"] == {"loss": 1.5}
        stored = r.get_all_weights("HEAD")
        for name, array in load_file(str(models["tuned"])).items():
            assert stored[name].data.tobytes() == array.tobytes()  # bit-exact
        assert not r.staged_changes()


def test_save_mistakes(coral: Run, repo: Path, models: dict[str, Path], tmp_path: Path) -> None:
    coral("save", str(models["base"]), "-m", "base")
    assert_user_error(
        coral("save", str(models["base"]), "-m", "again"), "nothing to commit", "coral show HEAD"
    )
    assert_user_error(coral("save", str(tmp_path / "nope.safetensors"), "-m", "x"), "nope")
    missing_message = coral("save", str(models["tuned"]))
    assert missing_message.exit_code == 2 and "--message" in missing_message.stderr
    with Repository(repo) as r:
        assert [c.message for c in r.log()] == ["base"]


def test_save_api(repo: Path, models: dict[str, Path]) -> None:
    with Repository(repo, shared_staging=True) as r:
        result = save_paths(r, [models["base"]], "base", metadata={"metrics": {"acc": 0.5}})
        assert result.added.counts["new"] == 3
        assert r.get_commit(result.commit_hash).metadata["metrics"] == {"acc": 0.5}
        with pytest.raises(NothingToCommitError):
            save_paths(r, [models["base"]], "same")


def test_save_through_the_real_program(coral_proc: Proc, models: dict[str, Path]) -> None:
    done = coral_proc("save", str(models["base"]), "-m", "base", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new"] == 3
    again = coral_proc("save", str(models["base"]), "-m", "base")
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert "hint:" in again.stderr


def test_save_records_provenance_as_commit_does(
    coral: Run, repo: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    coral("save", str(models["base"]), "-m", "base")
    config = tmp_path / "train.yaml"
    config.write_text("lr: 0.1\n")
    done = coral(
        "save", str(models["tuned"]), "-m", "ft", "--config", str(config), "--base", "HEAD"
    )
    assert done.exit_code == 0, done.output
    with Repository(repo) as r:
        assert "provenance" in r.get_commit("HEAD").metadata

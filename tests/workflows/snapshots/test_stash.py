"""`coral stash`: put staged work aside and bring it back, nothing lost on the way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral.porcelain.stash import (
    StashError,
    parse_stash_ref,
    stash_apply,
    stash_drop,
    stash_list,
    stash_pop,
    stash_push,
    stash_show,
)
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.snapshots.conftest import Invoke, as_json, run_coral, tensors_of


@pytest.fixture
def committed(coral: Invoke, models: dict[str, Path]) -> Invoke:
    """A repository whose one commit is the base model."""
    coral("add", models["base"])
    coral("commit", "-m", "base", "--metric", "loss=0.5")
    return coral


def staged(coral: Invoke) -> dict:
    return as_json(coral("status", "--json"))["staged"]


def test_stash_saves_and_clears_then_pop_restores(
    committed: Invoke, models: dict[str, Path], repo: Path
) -> None:
    coral = committed
    coral("add", models["tuned"])
    before = staged(coral)
    assert before["modified"] == ["head.weight"]

    saved = coral("stash", "-m", "half-done head")
    assert "stash@{0}" in saved.stdout and "half-done head" in saved.stdout
    assert staged(coral) == {"added": [], "modified": [], "removed": []}

    listed = coral("stash", "list").stdout
    assert listed.startswith("stash@{0}: On main: half-done head")
    assert "1 tensor" in listed

    shown = coral("stash", "show").stdout
    assert "head.weight" in shown and "changed" in shown
    assert "encoder.weight" not in shown  # only what was staged

    popped = coral("stash", "pop")
    assert "Applied stash@{0}" in popped.stdout
    assert staged(coral) == before
    assert coral("stash", "list").stdout.strip() == "no stash entries"

    coral("commit", "-m", "tuned")
    with Repository(repo) as r:
        stored = r.get_all_weights("HEAD")
    for name, value in tensors_of(models["tuned"]).items():
        assert stored[name].data.tobytes() == value.tobytes()


def test_numbering_show_apply_drop(committed: Invoke, models: dict[str, Path]) -> None:
    coral = committed
    coral("add", models["tuned"])
    coral("stash", "-m", "first")
    coral("add", models["extra"])
    coral("stash", "-m", "second")

    entries = as_json(coral("stash", "list", "--json"))
    assert [e["stash"] for e in entries] == ["stash@{0}", "stash@{1}"]
    assert [e["message"] for e in entries] == ["second", "first"]
    assert entries[0]["tensor_changes"] == 1 and entries[0]["file_changes"] == 0

    by_number = as_json(coral("stash", "show", "1", "--json"))
    by_ref = as_json(coral("stash", "show", "stash@{1}", "--json"))
    assert by_number == by_ref
    assert by_number["message"] == "first"
    assert by_number["diff"]["changed"]["head.weight"]["relative"] > 0
    newest = as_json(coral("stash", "show", "--json"))
    assert newest["diff"]["added"] == ["extra.bias"]

    coral("stash", "apply", "stash@{1}")  # kept
    assert staged(coral)["modified"] == ["head.weight"]
    assert len(as_json(coral("stash", "list", "--json"))) == 2

    dropped = as_json(coral("stash", "drop", "1", "--json"))
    assert dropped["dropped"]["message"] == "first"
    remaining = as_json(coral("stash", "list", "--json"))
    assert [(e["stash"], e["message"]) for e in remaining] == [("stash@{0}", "second")]


def test_pop_refuses_a_conflicting_staging_area(committed: Invoke, models: dict[str, Path]) -> None:
    coral = committed
    coral("add", models["tuned"])
    coral("stash")
    coral("add", models["other"])  # head.weight staged differently
    before = staged(coral)

    refused = coral("stash", "pop", code=1)
    assert_user_error(refused, "conflict", "head.weight")
    assert "stash is kept" in refused.stderr
    assert staged(coral) == before
    assert len(as_json(coral("stash", "list", "--json"))) == 1

    coral("reset")
    coral("stash", "pop")
    assert staged(coral)["modified"] == ["head.weight"]


def test_pop_merges_with_a_staging_area_that_does_not_conflict(
    committed: Invoke, models: dict[str, Path], repo: Path
) -> None:
    coral = committed
    coral("add", models["tuned"])
    coral("stash")
    with Repository(repo, shared_staging=True) as r:
        r.add_weight("extra.bias", np.ones(8, np.float32))
    applied = as_json(coral("stash", "pop", "--json"))
    assert applied["dropped"] is True and applied["staged"] == 1
    st = staged(coral)
    assert st["added"] == ["extra.bias"] and st["modified"] == ["head.weight"]


def test_stash_keeps_model_files_and_removals(committed: Invoke, models: dict[str, Path]) -> None:
    coral = committed
    coral("add", models["hf"])  # tuned weights + config.json
    coral("rm", "encoder.bias")
    before = as_json(coral("status", "--json"))
    assert before["files"] == {"config.json": "added"}

    entry = as_json(coral("stash", "--json"))
    assert entry["files"]["config.json"]["size"] > 0
    assert entry["tensors"]["encoder.bias"] is None  # a staged removal
    assert as_json(coral("status", "--json"))["clean"] is True
    shown = coral("stash", "show").stdout
    assert "file added: config.json" in shown and "encoder.bias" in shown

    coral("stash", "pop")
    assert as_json(coral("status", "--json")) == before


def test_gc_keeps_stashed_tensors_until_dropped(
    committed: Invoke, models: dict[str, Path], repo: Path
) -> None:
    coral = committed
    coral("add", models["tuned"])
    coral("stash")
    kept = as_json(coral("gc", "--json"))
    assert kept["removed"].get("tensor", 0) == 0

    coral("stash", "pop")
    coral("commit", "-m", "tuned")
    with Repository(repo) as r:
        head = r.get_weight("head.weight").data
    assert head.tobytes() == tensors_of(models["tuned"])["head.weight"].tobytes()

    # the same tensor again, stashed and then dropped: gc collects it
    coral("add", models["other"])
    coral("stash")
    coral("stash", "drop")
    collected = as_json(coral("gc", "--json"))
    assert collected["removed"].get("tensor", 0) == 1


def test_errors_have_a_hint(committed: Invoke, models: dict[str, Path]) -> None:
    coral = committed
    assert_user_error(coral("stash", code=1), "nothing to stash")
    for command in ("pop", "apply", "drop", "show"):
        assert_user_error(coral("stash", command, code=1), "no stash entries")
    coral("add", models["tuned"])
    coral("stash")
    assert_user_error(coral("stash", "show", "3", code=1), "no stash entry stash@{3}")
    assert_user_error(coral("stash", "pop", "stash@{x}", code=1), "bad stash reference")
    # identical to HEAD is nothing to stash either
    coral("add", models["base"])
    assert_user_error(coral("stash", code=1), "nothing to stash")


def test_stash_in_a_repository_without_commits(coral: Invoke, models: dict[str, Path]) -> None:
    coral("add", models["base"])
    entry = as_json(coral("stash", "--json"))
    assert entry["head"] is None and "no commits yet" in entry["message"]
    coral("stash", "pop")
    coral("commit", "-m", "first")
    assert len(as_json(coral("log", "--json"))) == 1


def test_subprocess_session(repo: Path, models: dict[str, Path]) -> None:
    for args in (("add", models["base"]), ("commit", "-m", "base"), ("add", models["tuned"])):
        assert run_coral(repo, *args).returncode == 0
    saved = run_coral(repo, "stash", "-m", "wip")
    assert saved.returncode == 0, saved.stderr
    assert "stash@{0}" in saved.stdout
    listed = run_coral(repo, "stash", "list")
    assert "wip" in listed.stdout and all(len(line) <= 80 for line in listed.stdout.splitlines())
    empty = run_coral(repo, "stash", "drop", "5")
    assert empty.returncode == 1
    assert empty.stderr.startswith("error: ") and "hint: " in empty.stderr
    popped = run_coral(repo, "stash", "pop")
    assert popped.returncode == 0, popped.stderr


# -- the API ----------------------------------------------------------------------------------


def test_porcelain_functions(tmp_path: Path) -> None:
    w = {"a": np.arange(6, dtype=np.float32), "b": np.ones(3, np.float32)}
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights(w)
        repo.commit("one")
        repo.add_weight("a", np.zeros(6, np.float32))
        entry = stash_push(repo, "zeros")
        assert entry.ref == "stash@{0}" and list(entry.tensors) == ["a"]
        assert repo.status().is_clean
        assert [s.entry.message for s in stash_list(repo)] == ["zeros"]
        shown = stash_show(repo, 0)
        assert list(shown.diff.changed) == ["a"]
        applied = stash_apply(repo, "stash@{0}")
        assert not applied.dropped and repo.status().modified == ["a"]
        repo.unstage()
        assert stash_pop(repo).dropped
        assert repo.status().modified == ["a"]
        repo.unstage()
        with pytest.raises(StashError, match="no stash entries"):
            stash_drop(repo)
        with pytest.raises(StashError, match="nothing to stash"):
            stash_push(repo)


@pytest.mark.parametrize(("text", "index"), [("0", 0), ("12", 12), ("stash@{3}", 3), (None, 0)])
def test_parse_stash_ref(text: str | None, index: int) -> None:
    assert parse_stash_ref(text) == index


@pytest.mark.parametrize("text", ["-1", "stash@{}", "stash@1", "x", "stash@{0}x"])
def test_parse_stash_ref_refuses(text: str) -> None:
    with pytest.raises(StashError):
        parse_stash_ref(text)

"""`coral release`, `coral releases`, `coral changelog`: semver tags carrying metrics, a level
proposed from the change, and a Markdown changelog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral.porcelain.changelog import changelog
from coral.porcelain.release import (
    ReleaseExistsError,
    create_release,
    list_releases,
    propose_release,
)
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.snapshots.conftest import Invoke, as_json, run_coral


@pytest.fixture
def first(coral: Invoke, models: dict[str, Path]) -> Invoke:
    coral("add", models["base"])
    coral("commit", "-m", "base", "--metric", "loss=0.5", "--metric", "acc=0.8")
    return coral


def tags(coral: Invoke) -> list[str]:
    return [t["name"] for t in as_json(coral("tag", "--json"))]


def test_first_release_is_proposed_then_created(first: Invoke) -> None:
    coral = first
    proposed = coral("release")
    assert "v0.1.0" in proposed.stdout and "first release" in proposed.stdout
    assert "run `coral release minor` to create it" in proposed.stdout
    assert tags(coral) == []  # a proposal creates nothing

    made = as_json(coral("release", "--yes", "--json"))
    assert made["created"] is True and made["version"] == "v0.1.0"
    assert made["release"]["metrics"] == {"loss": 0.5, "acc": 0.8}
    tag = as_json(coral("tag", "--json"))[0]
    assert tag["name"] == "v0.1.0" and tag["metrics"] == {"acc": 0.8, "loss": 0.5}
    assert tag["commit_hash"] == as_json(coral("status", "--json"))["head"]


def test_a_first_major_release_is_v1(first: Invoke) -> None:
    assert as_json(first("release", "major", "--json"))["version"] == "v1.0.0"


@pytest.mark.parametrize(
    ("model", "level", "version", "reason"),
    [
        ("tuned", "minor", "v0.2.0", "1 tensor changed: head.weight"),
        ("wide", "major", "v1.0.0", "1 tensor reshaped: head.weight"),
        ("addon", "major", "v1.0.0", "1 tensor added: extra.bias"),
    ],
)
def test_the_level_follows_the_change(
    first: Invoke, models: dict[str, Path], model: str, level: str, version: str, reason: str
) -> None:
    coral = first
    coral("release", "minor")
    coral("add", models[model])
    coral("commit", "-m", model)
    proposal = as_json(coral("release", "--json"))
    assert (proposal["level"], proposal["version"]) == (level, version)
    assert proposal["reason"] == reason and proposal["previous"] == "v0.1.0"
    assert proposal["created"] is False
    assert f"coral release {level}" in coral("release").stdout


def test_metadata_only_is_a_patch_and_removal_is_major(first: Invoke, repo: Path) -> None:
    coral = first
    coral("release", "minor")
    coral("commit", "--allow-empty", "-m", "new metrics", "--metric", "loss=0.4")
    proposal = as_json(coral("release", "--json"))
    assert (proposal["level"], proposal["version"]) == ("patch", "v0.1.1")
    coral("release", "--yes")
    coral("rm", "encoder.bias")
    coral("commit", "-m", "no bias")
    proposal = as_json(coral("release", "--json"))
    assert proposal["level"] == "major" and proposal["changes"]["removed"] == ["encoder.bias"]


def test_pre_releases_count_up_per_label(first: Invoke, models: dict[str, Path]) -> None:
    coral = first
    coral("release", "minor", "-m", "first")
    made = []
    for model, args in (
        ("tuned", ["--pre", "beta"]),
        ("other", ["--pre", "beta"]),
        ("extra", ["--pre", "rc"]),
        ("tuned", []),
    ):
        coral("add", models[model])
        coral("commit", "-m", model)
        made.append(as_json(coral("release", "minor", *args, "--json"))["version"])
    assert made == ["v0.2.0-beta.1", "v0.2.0-beta.2", "v0.2.0-rc.1", "v0.2.0"]
    coral("add", models["other"])
    coral("commit", "-m", "again")
    build = as_json(coral("release", "patch", "--build", "exp.7", "--json"))["version"]
    assert build == "v0.2.1+exp.7"

    listed = as_json(coral("releases", "--json"))
    assert [r["version"] for r in listed] == [
        "v0.2.1+exp.7",
        "v0.2.0",
        "v0.2.0-rc.1",
        "v0.2.0-beta.2",
        "v0.2.0-beta.1",
        "v0.1.0",
    ]
    assert listed[-1]["description"] == "first"
    assert listed[-1]["metrics"] == {"acc": 0.8, "loss": 0.5}
    assert [r["prerelease"] for r in listed].count(True) == 3
    table = coral("releases").stdout
    assert "v0.2.0-beta.1" in table and "loss=0.5" in table
    assert all(len(line) <= 80 for line in table.splitlines())


def test_release_errors(first: Invoke) -> None:
    coral = first
    coral("release", "minor")
    again = coral("release", "minor", code=1)
    assert_user_error(again, "release v0.1.0 already exists at HEAD")
    assert_user_error(coral("release", code=1), "already exists")
    assert_user_error(coral("release", "v0.1.0", code=1), "release v0.1.0 already exists")
    assert_user_error(coral("release", "huge", code=1), "unknown release level")
    assert_user_error(coral("release", "minor", "--pre", "1.2", code=1), "pre-release label")
    assert_user_error(coral("release", "minor", "--build", "a..b", code=1), "build metadata")
    assert tags(coral) == ["v0.1.0"]


def test_release_in_an_empty_repository(coral: Invoke) -> None:
    assert_user_error(coral("release", code=1), "no commits yet")
    assert coral("releases").stdout.startswith("no releases")
    assert as_json(coral("releases", "--json")) == []


def test_explicit_version(first: Invoke) -> None:
    made = as_json(first("release", "v2.0.0-rc.1", "--json"))
    assert made["version"] == "v2.0.0-rc.1"


def test_changelog(first: Invoke, models: dict[str, Path], tmp_path: Path) -> None:
    coral = first
    coral("release", "minor")
    coral("branch", "side")
    coral("add", models["tuned"])
    coral("commit", "-m", "tune the head", "--metric", "loss=0.3", "--metric", "acc=0.9")
    coral("add", models["addon"])
    coral("commit", "-m", "add a bias", "--metric", "loss=0.25")
    coral("release", "major")

    text = coral("changelog", "v0.1.0", "v1.0.0").stdout
    assert text.startswith("# Changelog: v0.1.0 → v1.0.0")
    assert "tune the head" in text and "add a bias" in text and "base" not in text.split("##")[1]
    assert "| loss | 0.5 | 0.25 | -0.25 |" in text
    assert "| `head.weight` | changed | (8, 64) |" in text
    assert "| `extra.bias` | added | (8,) |" in text
    rel = next(line for line in text.splitlines() if "`head.weight`" in line)
    assert rel.rstrip(" |").endswith("%")

    out = tmp_path / "CHANGES.md"
    written = coral("changelog", "v0.1.0", "v1.0.0", "-o", out)
    assert "wrote" in written.stdout and out.read_text(encoding="utf-8") == text
    data = as_json(coral("changelog", "v0.1.0", "v1.0.0", "--json"))
    assert [c["subject"] for c in data["commits"]] == ["add a bias", "tune the head"]
    loss = next(m for m in data["metrics"] if m["name"] == "loss")
    assert loss["delta"] == pytest.approx(-0.25)
    assert data["tensors"]["added"] == ["extra.bias"]

    # B's history not in A's: the side branch is behind, so nothing is in it that v1.0.0 lacks
    assert "No commits in side" in coral("changelog", "v1.0.0", "side").stdout
    assert_user_error(coral("changelog", "v0.1.0", "nope", code=1), "nope")


def test_subprocess_session(first: Invoke, repo: Path, models: dict[str, Path]) -> None:
    made = run_coral(repo, "release", "minor")
    assert made.returncode == 0, made.stderr
    assert "Released v0.1.0" in made.stdout
    first("add", models["tuned"])
    first("commit", "-m", "tuned")
    proposed = run_coral(repo, "release")
    assert proposed.returncode == 0 and "v0.2.0" in proposed.stdout
    log = run_coral(repo, "changelog", "v0.1.0", "HEAD")
    assert log.returncode == 0 and "head.weight" in log.stdout
    exists = run_coral(repo, "release", "v0.1.0")
    assert exists.returncode == 1
    assert exists.stderr.startswith("error: ") and "hint: " in exists.stderr


def test_porcelain_functions(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "r") as repo:
        repo.add_weight("w", np.zeros(4, np.float32))
        repo.commit("zeros", metadata={"metrics": {"acc": 0.1}})
        assert propose_release(repo).version.core == (0, 1, 0)
        first = create_release(repo, "minor")
        assert first.release is not None and first.release.tag.metrics == {"acc": 0.1}
        repo.add_weight("w", np.ones(4, np.float32))
        repo.commit("ones", metadata={"metrics": {"acc": 0.2}})
        proposal = propose_release(repo, pre="beta")
        assert str(proposal.version) == "v0.2.0-beta.1" and proposal.level == "minor"
        create_release(repo, proposal.level, pre="beta")
        with pytest.raises(ReleaseExistsError):
            create_release(repo, "minor", pre="beta")
        assert [r.name for r in list_releases(repo)] == ["v0.2.0-beta.1", "v0.1.0"]
        log = changelog(repo, "v0.1.0", "v0.2.0-beta.1")
        assert [c.message for c in log.commits] == ["ones"]
        assert log.metrics[0].delta == pytest.approx(0.1)
        assert "## Tensors" in log.to_markdown()

"""Every hash the branch/tag/merge/checkout/gc commands print, and the note a publish writes,
is 10 characters long (DESIGN §8: hashes print at one length)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from coral.cli.main import app
from coral.registry.publisher import _run_note
from coral.registry.snapshot import CommitSnapshot
from coral.version_control.repository import Repository
from tests.storage.damage import remove_object

HEX = re.compile(r"(?<![0-9a-f])[0-9a-f]{7,}(?![0-9a-f])")


def _hashes(text: str) -> list[str]:
    return HEX.findall(text)


def _run(repo_path: Path, *args: str):
    result = CliRunner().invoke(app, ["-C", str(repo_path), *args])
    return result, _hashes(result.stdout + result.stderr)


def test_ref_commands_print_10_character_hashes(repo_path: Path) -> None:
    seen: list[str] = []
    for args in (
        ("branch", "topic"),
        ("branch",),
        ("branch", "-d", "topic"),
        ("tag", "v2", "HEAD~1"),
        ("tag",),
        ("tag", "-d", "v2"),
        ("checkout", "HEAD~1"),
        ("branch",),
        ("checkout", "main"),
        ("merge", "feature", "-s", "average"),
    ):
        result, hashes = _run(repo_path, *args)
        assert result.exit_code == 0, (args, result.output)
        assert all(len(h) == 10 for h in hashes), (args, hashes)
        seen += hashes
    assert len(seen) >= 8


def test_gc_refusal_prints_a_10_character_hash(repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        first = repo.log()[-1].commit_hash
        repo.store.wait_for_maintenance()
        remove_object(repo.store, first)
    result, hashes = _run(repo_path, "gc")
    assert result.exit_code == 1 and "gc stopped" in result.stderr
    assert hashes and all(len(h) == 10 for h in hashes), hashes


def test_a_publish_note_names_the_commit_at_10_characters(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights({"w": np.ones(3, np.float32)})
        repo.commit("one")
        note = _run_note(CommitSnapshot.load(repo, "HEAD"), None)
    assert [len(h) for h in _hashes(note)] == [10]


def test_fsck_findings_print_10_character_hashes(repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        first = repo.log()[-1].commit_hash
        repo.prune_commits([first])
        repo.gc()  # an expected absence: "info:"
        tensor = repo.get_tree("HEAD").entries["head.weight"].tensor_id
        repo.store.wait_for_maintenance()
        remove_object(repo.store, tensor)  # damage: a problem
    result = CliRunner().invoke(app, ["-C", str(repo_path), "fsck"])
    assert result.exit_code == 1
    assert "info:" in result.stdout and "tensor is missing" in result.stdout
    hashes = _hashes(result.stdout)
    assert len(hashes) >= 4 and all(len(h) == 10 for h in hashes), result.stdout

"""The retention / gc story, told the same everywhere: a pruned commit stays in the history and
loads by its hash until `gc`, which deletes its weights (unless a branch, tag or HEAD names it);
afterwards every read says "pruned" (with a hint), never "missing tree ... copy it back from a
backup". `gc --dry-run` reports the bytes it would free; gc and fsck report progress through a
callback (the CLI draws it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CoralError
from coral.version_control import pruning
from coral.version_control.errors import PrunedCommitError
from coral.version_control.repository import Repository, weights_equal

from .conftest import commit_weights, make_weights


def _history(repo: Repository) -> list[str]:
    return [commit_weights(repo, make_weights(200 + i), f"c{i}") for i in range(4)]


def _cli(repo: Repository, *args: str):
    return CliRunner().invoke(app, ["-C", str(repo.path), *args])


def test_a_pruned_commit_loads_by_its_hash_until_gc(repo: Repository) -> None:
    c = _history(repo)
    before = repo.get_all_weights(c[1])
    repo.prune_commits([c[1]])
    assert weights_equal(repo.get_all_weights(c[1]), before)
    assert pruning.status(repo, c[1]) == "pruned"
    assert pruning.status(repo, c[2]) is None
    repo.gc()
    assert pruning.status(repo, c[1]) == "collected"
    with pytest.raises(PrunedCommitError):
        repo.get_all_weights(c[1])


def test_after_gc_every_read_says_pruned(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[1]])
    repo.gc()
    tree_id = repo.read_commit(c[1]).tree_id
    with pytest.raises(PrunedCommitError) as info:
        repo.read_tree(tree_id)  # what `coral show` reads
    assert "pruned" in info.value.message and "copy it back" not in str(info.value)
    with pytest.raises(PrunedCommitError):
        repo.get_tree(c[1])
    with pytest.raises(PrunedCommitError):
        repo.checkout(c[1])
    assert repo.head().branch == "main"  # the refused checkout moved nothing

    for args in (
        ("show", c[1]),
        ("show", c[1][:10]),
        ("checkout", c[1]),
        ("export", c[1], "x.npz"),
    ):
        result = _cli(repo, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "pruned" in result.stderr, (args, result.stderr)
        assert "copy it back from a backup" not in result.stderr, (args, result.stderr)
        assert "hint:" in result.stderr
        assert "Traceback" not in result.output


def test_checking_out_a_pruned_commit_before_gc_warns(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[1]])
    result = _cli(repo, "checkout", c[1])
    assert result.exit_code == 0, result.output
    assert "pruned" in result.stderr and "gc" in result.stderr
    assert repo.gc().removed_total == 0 or repo.get_all_weights(c[1])  # HEAD names it: kept
    assert weights_equal(repo.get_all_weights(c[1]), repo.get_all_weights("HEAD"))


def test_a_tag_keeps_a_pruned_commits_weights(repo: Repository) -> None:
    c = _history(repo)
    repo.tag_version("keep", ref=c[1])
    repo.prune_commits([c[1]])
    repo.gc()
    assert pruning.status(repo, c[1]) == "pruned"
    assert repo.get_all_weights(c[1])


def test_dry_run_reports_the_bytes_gc_frees(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[0], c[2]])
    dry = repo.gc(dry_run=True)
    assert dry.dry_run and dry.freed_bytes > 0
    assert repo.get_all_weights(c[0])  # nothing deleted
    text = _cli(repo, "gc", "--dry-run")
    assert text.exit_code == 0, text.output
    assert "would free" in text.stdout
    as_json = json.loads(_cli(repo, "gc", "--dry-run", "--json").stdout)
    assert as_json["dry_run"] is True and as_json["freed_bytes"] == dry.freed_bytes
    real = repo.gc()
    assert real.freed_bytes == dry.freed_bytes
    assert real.removed == dry.removed


def test_gc_and_fsck_report_progress_through_a_callback(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[0]])
    calls: list[tuple[str, int, int | None]] = []
    repo.gc(dry_run=True, progress=lambda phase, done, total: calls.append((phase, done, total)))
    repo.gc(progress=lambda phase, done, total: calls.append((phase, done, total)))
    phases = {p for p, _, _ in calls}
    assert phases and all(isinstance(p, str) for p in phases)
    assert any(done > 0 for _, done, _ in calls)
    checked: list[tuple[str, int, int | None]] = []
    report = repo.fsck(progress=lambda phase, done, total: checked.append((phase, done, total)))
    assert report.ok
    assert checked and checked[-1][1] == checked[-1][2]  # the last phase ends complete
    objects = [x for x in checked if x[0].startswith("verifying")]
    assert objects and max(d for _, d, _ in objects) >= 1


def test_pruned_commit_error_is_a_coral_error_with_a_useful_hint(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[1]])
    repo.gc()
    with pytest.raises(PrunedCommitError) as info:
        repo.get_all_weights(c[1])
    assert isinstance(info.value, CoralError)
    assert c[1][:10] in info.value.message and c[1][:11] not in info.value.message
    assert "coral checkpoints" in (info.value.hint or "")


def test_readme_tells_the_same_story() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "loadable by its hash." not in readme  # it is, but only until gc
    assert "until `coral gc`" in readme
    assert "auto_gc" in readme


def test_log_marks_pruned_commits(repo: Repository) -> None:
    c = _history(repo)
    repo.prune_commits([c[1]])
    repo.gc()
    repo.prune_commits([c[2]])  # marked after gc: its weights are still there
    res = _cli(repo, "log", "--oneline")
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert "pruned, weights collected" in lines[c[1][:10]]
    assert "[pruned]" in lines[c[2][:10]]
    assert "pruned" not in lines[c[0][:10]] and "pruned" not in lines[c[3][:10]]

"""Commits `coral watch` makes are training checkpoints like CheckpointManager's: recorded in
the checkpoint index (step from the file name), so `coral checkpoints` lists them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from coral.cli.main import app
from coral.integrations.formats import load_weights
from coral.training.checkpoint_index import CheckpointIndex
from coral.training.watch import CheckpointWatcher, WatchRules


def _weights(step: int) -> dict[str, np.ndarray]:
    return {"layer.weight": np.full((8, 4), step, np.float32)}


def _watch(repo, folder: Path, rules: WatchRules, steps) -> CheckpointWatcher:
    watcher = CheckpointWatcher(repo, folder, rules, loader=load_weights)
    for i, step in enumerate(steps):
        np.savez(folder / f"epoch-{step}.npz", **_weights(step))
        watcher.poll(now=i * 10.0)
        watcher.poll(now=i * 10.0 + 1)
    return watcher


def test_watched_commits_are_in_the_checkpoint_index(repo, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    watcher = _watch(repo, folder, WatchRules(debounce_ms=0, patterns=["*.npz"]), [100, 200])
    assert watcher.summary.committed == 2
    infos = CheckpointIndex(repo).list("main")
    assert [i.commit for i in infos] == watcher.summary.commits
    assert [i.step for i in infos] == [100, 200]
    assert all(i.reason == "watch" and i.branch == "main" for i in infos)
    assert infos[0].created_at > 0


def test_coral_checkpoints_lists_what_watch_committed(repo, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    repo.add_all_weights(_weights(0))
    repo.commit("start")
    repo.create_branch("run-2")
    rules = WatchRules(debounce_ms=0, patterns=["*.npz"], branch="run-2", every=2)
    watcher = _watch(repo, folder, rules, [1, 2, 3, 4])
    assert watcher.summary.committed == 2  # every 2nd
    result = CliRunner().invoke(
        app, ["-C", str(repo.path), "checkpoints", "--branch", "run-2", "--json"]
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(c["step"], c["reason"]) for c in listed] == [(2, "watch"), (4, "watch")]
    assert [c["commit"] for c in listed] == watcher.summary.commits
    table = CliRunner().invoke(app, ["-C", str(repo.path), "checkpoints", "-b", "run-2"])
    assert watcher.summary.commits[0][:10] in table.stdout
    assert CheckpointIndex(repo).list("main") == []  # the other branch is untouched


def test_an_unchanged_checkpoint_is_not_indexed(repo, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    watcher = CheckpointWatcher(
        repo, folder, WatchRules(debounce_ms=0, patterns=["*.npz"]), loader=load_weights
    )
    for i, name in enumerate(("a-1.npz", "b-2.npz")):
        np.savez(folder / name, **_weights(7))  # same weights twice
        watcher.poll(now=i * 10.0)
        watcher.poll(now=i * 10.0 + 1)
    assert watcher.summary.committed == 1
    assert [i.step for i in CheckpointIndex(repo).list("main")] == [1]

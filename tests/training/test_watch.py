"""`coral watch`: checkpoints appearing in a folder (one written slowly in pieces) become commits;
SIGINT stops the watcher cleanly with a summary line. Plus the watcher's rules, in process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from coral.integrations.formats import load_weights
from coral.training.watch import CheckpointWatcher, WatchRules, step_number

ROOT = Path(__file__).resolve().parents[2]


def _weights(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {
        "layer.weight": rng.normal(size=(64, 32)).astype(np.float32),
        "layer.bias": np.full(32, step, dtype=np.float32),
    }


def _wait_for(predicate, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _commits(repo_path: Path) -> list:
    from coral.version_control.repository import Repository

    with Repository(repo_path) as repo:
        return repo.log()


def test_watch_cli_commits_new_checkpoints_and_stops_on_sigint(tmp_path):
    from coral.version_control.repository import Repository

    repo_path = tmp_path / "repo"
    Repository.init(repo_path).close()
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "step-0.safetensors").write_bytes(st_save(_weights(0)))  # there before: not committed

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coral.cli.main",
            "-C",
            str(repo_path),
            "watch",
            str(folder),
            "--debounce-ms",
            "400",
            "--interval",
            "0.05",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        _wait_for(
            lambda: any(line.startswith("watching") for line in lines), "the watcher to start"
        )

        (folder / "step-100.safetensors").write_bytes(st_save(_weights(100)))
        _wait_for(lambda: len(_commits(repo_path)) == 1, "the first commit")

        data = st_save(
            _weights(200)
        )  # written slowly, in pieces, with a pause longer than the debounce
        with open(folder / "step-200.safetensors", "wb") as f:
            for i, piece in enumerate(np.array_split(np.frombuffer(data, np.uint8), 4)):
                f.write(piece.tobytes())
                f.flush()
                time.sleep(0.8 if i == 1 else 0.15)
        _wait_for(lambda: len(_commits(repo_path)) == 2, "the slowly written checkpoint")

        tmp = folder / "step-300.safetensors.tmp"  # the write-then-rename pattern
        tmp.write_bytes(st_save(_weights(300)))
        tmp.rename(folder / "step-300.safetensors")
        (folder / "notes.txt").write_text("not a checkpoint")
        _wait_for(lambda: len(_commits(repo_path)) == 3, "the renamed checkpoint")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(timeout=10)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert lines[-1].strip().endswith("3 checkpoints seen, 3 committed, 0 skipped, 0 failed"), lines
    assert not any("could not read" in line for line in lines)

    log = _commits(repo_path)
    assert [c.message for c in log] == [f"step-{s}.safetensors step {s}" for s in (300, 200, 100)]
    with Repository(repo_path) as repo:
        for commit, step in zip(log, (300, 200, 100), strict=True):
            got = repo.get_all_weights(commit.commit_hash)
            assert {k: w.data.tobytes() for k, w in got.items()} == {
                k: v.tobytes() for k, v in _weights(step).items()
            }
            assert commit.metadata["watch"]["n"] == step


def test_rules_from_config_every_nth_and_unchanged(repo, tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    rules = WatchRules.from_config(
        {
            "watch": {
                "every": 2,
                "message": "ckpt {count}: {filename}",
                "debounce_ms": 0,
                "patterns": ["*.npz"],
            }
        }
    )
    events = []
    watcher = CheckpointWatcher(repo, folder, rules, loader=load_weights, on_event=events.append)
    for step in (1, 2, 3, 4):
        np.savez(folder / f"e{step}.npz", **_weights(step))
        watcher.poll(now=step * 10.0)
        watcher.poll(now=step * 10.0 + 1)  # stable since the previous poll
    np.savez(folder / "copy.npz", **_weights(4))  # same weights as the tip: nothing to commit
    np.savez(folder / "skip.npz", **_weights(4))
    watcher.poll(now=100.0)
    watcher.poll(now=101.0)
    actions = [(e.path.name, e.action) for e in events]
    assert actions == [
        ("e1.npz", "skipped"),
        ("e2.npz", "committed"),
        ("e3.npz", "skipped"),
        ("e4.npz", "committed"),
        ("copy.npz", "skipped"),
        ("skip.npz", "unchanged"),
    ]
    assert [c.message for c in repo.log()] == ["ckpt 4: e4.npz", "ckpt 2: e2.npz"]


def test_a_file_that_never_loads_is_reported_once(repo, tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    events = []
    watcher = CheckpointWatcher(
        repo, folder, WatchRules(debounce_ms=0), loader=load_weights, on_event=events.append
    )
    (folder / "broken.pt").write_bytes(b"not a pickle at all")
    for i in range(12):
        watcher.poll(now=float(i) * 10)
    assert [e.action for e in events] == ["failed"]
    assert watcher.summary.failed == 1 and repo.log() == []


def test_step_numbers():
    assert step_number("checkpoint-500", 7) == 500
    assert step_number("epoch=3-step=1200.ckpt", 7) == 1200
    assert step_number("model.safetensors", 7) == 7
    assert step_number("model-00002.safetensors.index.json", 1) == 2


def test_unknown_watch_setting_is_a_clear_error():
    from coral.training.watch import WatchConfigError

    with pytest.raises(WatchConfigError):
        WatchRules.from_config({"watch": {"evry": 2}})

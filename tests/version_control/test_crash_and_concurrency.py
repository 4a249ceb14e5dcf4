"""Crash safety (SIGKILL at random instants) and two concurrent committers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coral.version_control.repository import Repository

from .workers import crash_weights, worker_value

WORKERS = Path(__file__).with_name("workers.py")
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _logged(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[1]) == 64:  # a torn last line is ignored
            out.append((int(parts[0]), parts[1]))
    return out


@pytest.mark.slow
def test_sigkill_during_commit_and_gc_loops(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    Repository.init(repo_path).close()
    log = tmp_path / "commits.log"
    rnd = random.Random(1234)
    kills = 0
    for _round in range(22):
        done = _logged(log)
        start = done[-1][0] + 1 if done else 0
        proc = subprocess.Popen(
            [sys.executable, str(WORKERS), "crash", str(repo_path), str(log), str(start)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rnd.uniform(0.6, 1.6))
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
        kills += 1
        with Repository(repo_path) as repo:
            report = repo.fsck()
            assert report.ok, f"after kill {kills}: {report}"
            done = _logged(log)
            tip = repo.resolve_ref("main")
            for i, h in done:  # every recorded commit is intact and on main
                assert repo.is_ancestor(h, tip)
                assert repo.get_commit(h).metadata["i"] == i
                got = repo.get_all_weights(h)
                for name, arr in crash_weights(i).items():
                    assert got[name].data.tobytes() == arr.tobytes(), (i, name)
    assert kills >= 20
    assert len(_logged(log)) >= 20


def test_two_concurrent_committers_lose_nothing(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    with Repository.init(repo_path) as repo:
        repo.add_all_weights({"shared": np.zeros(4)})
        base = repo.commit("base")
    n = 15
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), "commit", str(repo_path), str(w), str(n)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in (0, 1)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    commits = [h for r in results for h in r["commits"]]
    assert len(commits) == len(set(commits)) == 2 * n  # each commits its own staging: none lost
    assert all(r["absorbed"] == 0 and r["collisions"] == 0 for r in results)
    with Repository(repo_path) as repo:
        history = [c.commit_hash for c in repo.log()]
        assert history[-1] == base
        assert sorted(history[:-1]) == sorted(commits)  # every successful commit, nothing else
        tip = repo.get_all_weights()
        for w in (0, 1):  # each worker's last value made it
            np.testing.assert_array_equal(tip[f"p{w}.w"].data, worker_value(w, n - 1))
        assert repo.fsck().ok
        assert all(len(c.parents) == 1 for c in repo.log()[:-1])  # linear: no commit overwritten

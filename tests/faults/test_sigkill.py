"""SIGKILL at random instants during commit, CLI import, CLI merge and gc: no commit that was
reported is lost, and `fsck` is clean after every kill.

Trials: 3 kills per workload at CORAL_FAULT_SCALE=1 (12 in all), 3 * scale in a long run.
"""

from __future__ import annotations

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
from tests.faults.kill_worker import weights
from tests.faults.scale import trials

WORKER = Path(__file__).with_name("kill_worker.py")
ROOT = Path(__file__).resolve().parents[2]
MODES = ["commit", "import", "merge", "gc"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "80"
    return env


def _logged(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[1]) == 64:  # a torn last line is not a report
            out.append((int(parts[0]), parts[1]))
    return out


def _run_and_kill(
    mode: str, repo: Path, log: Path, start: int, delay: float, *, after_a_step: bool
) -> None:
    """Start the worker, kill it `delay` s after it is ready (`after_a_step`: after it
    logged a step, so that every run of the test makes progress however slow the machine)."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(repo), str(log), str(start)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()  # imports done, repository open
    assert ready.strip() == b"READY", (proc.stderr.read() if proc.stderr else b"").decode()
    if after_a_step:
        logged = len(_logged(log))
        deadline = time.monotonic() + 120
        while len(_logged(log)) == logged and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is not None:
        raise AssertionError(
            f"{mode} worker died: {(proc.stderr.read() if proc.stderr else b'').decode()}"
        )
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _check(repo_path: Path, reported: list[tuple[int, str]], mode: str) -> None:
    with Repository(repo_path) as repo:
        report = repo.fsck()
        assert report.ok, report.summary() if hasattr(report, "summary") else report
        for i, commit in reported:
            got = repo.get_all_weights(commit)
            for name, expected in weights(i).items():
                assert name in got, f"{mode}: commit {commit[:10]} of step {i} lost {name}"
                assert got[name].data.tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_loses_no_reported_commit(tmp_path: Path, mode: str) -> None:
    repo_path = tmp_path / "repo"
    with Repository.init(
        repo_path
    ) as repo:  # a first commit: branches need something to start from
        repo.add_weight("base", np.zeros(16, dtype=np.float32))
        repo.commit("base")
    log = tmp_path / "reported.log"
    rnd = random.Random(f"sigkill-{mode}")
    kills = trials(3)
    for k in range(kills):
        done = _logged(log)
        start = done[-1][0] + 1 if done else 0
        delay = rnd.uniform(0.0, 0.6) if k == 0 else rnd.uniform(0.2, 1.5)
        _run_and_kill(mode, repo_path, log, start, delay, after_a_step=k == 0)
        _check(repo_path, _logged(log), mode)
    assert _logged(log), f"{mode}: no step finished in {kills} runs"

"""Experiments across processes: SIGKILL mid-logging, concurrent writers, uncaught errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from coral.experiments import ExperimentStatus, ExperimentTracker
from coral.version_control.repository import Repository

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.experiments.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_until(proc: subprocess.Popen[str], predicate: object, timeout: float = 120) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(
                f"worker exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
            )
        lines.append(line.strip())
        if predicate(line.strip()):  # type: ignore[operator]
            return lines
    raise AssertionError(f"timed out; got {lines[-5:]}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_sigkill_while_logging_then_resume(repo: Repository) -> None:
    proc = _spawn("own", str(repo.path), "killed", "100000000", "2000")
    lines = _read_until(proc, lambda line: line == "FLUSHED 10000")
    eid = lines[0].split()[1]
    _kill(proc)

    tracker = ExperimentTracker(Repository(repo.path))
    exp = tracker.get(eid)
    steps = [m.step for m in exp.metrics]
    # everything flushed before the kill is there, as a prefix of what was logged
    assert len(steps) >= 10_000
    assert steps == list(range(len(steps)))
    assert [m.value for m in exp.metrics[:3]] == [0.0, 1.0, 2.0]
    assert exp.summary["x"]["count"] == len(steps)
    # the dead process's experiment is still RUNNING, and recognisably orphaned
    assert exp.status is ExperimentStatus.RUNNING
    assert tracker.is_orphaned(exp)
    assert tracker.active_experiment_id() == eid

    resumed = tracker.resume(eid)
    assert resumed.parent_experiment == eid and resumed.status is ExperimentStatus.RUNNING
    assert resumed.params == {"n": 100000000, "pid_hint": "worker"} and resumed.tags == ["worker"]
    original = tracker.get(eid, include_metrics=False)
    assert original.status is ExperimentStatus.FAILED
    assert "exited without ending" in (original.error_message or "")
    tracker.log("x", 1.0)
    tracker.end()


def test_timer_flush_stores_points_of_a_process_that_then_dies(repo: Repository) -> None:
    proc = _spawn("hang", str(repo.path), "5000")
    lines = _read_until(proc, lambda line: line == "LOGGED")
    eid = lines[0].split()[1]
    tracker = ExperimentTracker(Repository(repo.path))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the writer thread flushes every 0.2 s
        if tracker.get(eid, include_metrics=False).summary.get("x", {}).get("count") == 5000:
            break
        time.sleep(0.1)
    _kill(proc)
    assert [m.step for m in tracker.get(eid).metrics] == list(range(5000))


def test_two_processes_logging_concurrently(repo: Repository) -> None:
    n = 20_000
    procs = [_spawn("own", str(repo.path), f"worker-{i}", str(n), "500") for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)
    tracker = ExperimentTracker(Repository(repo.path))
    exps = tracker.list()
    assert sorted(e.name for e in exps) == ["worker-0", "worker-1"]
    for e in exps:
        assert e.status is ExperimentStatus.COMPLETED
        assert [m.step for m in e.metrics] == list(range(n))
        assert e.summary["x"]["count"] == n and e.summary["x"]["max"] == n - 1
    assert tracker.get_summary()["total_metrics_logged"] == 2 * n


def test_two_processes_logging_into_one_experiment(repo: Repository) -> None:
    tracker = ExperimentTracker(repo)
    exp = tracker.start("shared")
    tracker.detach()
    n = 10_000
    procs = [_spawn("attach", str(repo.path), f"m{i}", str(n)) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    got = tracker.get(exp.experiment_id)
    for name in ("m0", "m1"):
        assert [m.step for m in got.get_metric(name)] == list(range(n))
    assert got.status is ExperimentStatus.RUNNING
    tracker.attach(exp.experiment_id)
    tracker.end()


def test_uncaught_exception_marks_the_experiment_failed(repo: Repository) -> None:
    proc = _spawn("raise", str(repo.path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "exploded at step 10" in err
    eid = out.split()[1]
    exp = ExperimentTracker(Repository(repo.path)).get(eid)
    assert exp.status is ExperimentStatus.FAILED
    assert exp.error_message == "RuntimeError: exploded at step 10"
    assert len(exp.metrics) == 10


def test_process_exit_without_end_flushes_pending_points(repo: Repository, tmp_path: Path) -> None:
    n = 3
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import sys\n"
        "from coral.experiments import ExperimentTracker\n"
        "t = ExperimentTracker(sys.argv[1], flush_interval=3600)\n"
        "e = t.start('forgetful')\n"
        f"for i in range({n}): t.log('x', i)\n"
        "print(e.experiment_id)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script), str(repo.path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    exp = ExperimentTracker(repo).get(out.stdout.strip())
    assert len(exp.metrics) == n  # written by the atexit handler
    assert exp.status is ExperimentStatus.RUNNING

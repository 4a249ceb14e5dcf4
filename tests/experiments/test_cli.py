"""`coral experiment ...` through the real command (typer's CliRunner, in process)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.experiments import ExperimentStatus, ExperimentTracker
from coral.version_control.repository import Repository
from tests.experiments.conftest import weights

Invoke = Callable[..., Result]


@pytest.fixture
def coral(repo: Repository) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["-C", str(repo.path), *args])

    return invoke


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result


def test_start_log_end_across_invocations(coral: Invoke, repo: Repository) -> None:
    out = _ok(
        coral(
            "experiment",
            "start",
            "lr-sweep",
            "--param",
            "lr=0.01",
            "--param",
            "opt=adam",
            "--param",
            "layers=3",
            "--tag",
            "nlp",
            "--tag",
            "quick",
            "--description",
            "try it",
            "--json",
        )
    ).stdout
    eid = json.loads(out)["experiment_id"]
    _ok(coral("experiment", "log", "loss", "0.5"))
    _ok(coral("experiment", "log", "loss", "0.25"))
    _ok(coral("experiment", "log", "acc", "0.9", "--step", "10"))
    repo.add_all_weights(weights(1))
    commit = repo.commit("trained")
    res = _ok(coral("experiment", "end"))
    assert eid in res.stdout and "1 commit(s) linked" in res.stdout

    exp = ExperimentTracker(repo).get(eid)
    assert exp.status is ExperimentStatus.COMPLETED
    assert exp.params == {"lr": 0.01, "opt": "adam", "layers": 3}
    assert exp.tags == ["nlp", "quick"] and exp.description == "try it"
    assert [(m.name, m.value, m.step) for m in exp.metrics] == [
        ("loss", 0.5, 0),
        ("loss", 0.25, 1),
        ("acc", 0.9, 10),
    ]
    assert exp.commit_hash == commit and exp.pid is None
    # nothing is active any more
    res = coral("experiment", "log", "loss", "1")
    assert res.exit_code == 1 and "no active experiment" in res.stderr and "hint:" in res.stderr


def test_end_with_status_commit_and_explicit_experiment(coral: Invoke, repo: Repository) -> None:
    repo.add_all_weights(weights(0))
    commit = repo.commit("base")
    first = json.loads(_ok(coral("experiment", "start", "a", "--json")).stdout)["experiment_id"]
    second = json.loads(_ok(coral("experiment", "start", "b", "--json")).stdout)["experiment_id"]
    _ok(coral("experiment", "log", "x", "1", "--experiment", first[:6]))
    _ok(
        coral(
            "experiment",
            "end",
            "--experiment",
            first[:6],
            "--status",
            "failed",
            "-m",
            "diverged",
            "--commit",
            commit[:10],
        )
    )
    _ok(coral("experiment", "end", "--status", "cancelled"))  # the active one: b
    t = ExperimentTracker(repo)
    a, b = t.get(first), t.get(second)
    assert a.status is ExperimentStatus.FAILED and a.error_message == "diverged"
    assert a.commit_hash == commit and [m.name for m in a.metrics] == ["x"]
    assert b.status is ExperimentStatus.CANCELLED
    bad = coral("experiment", "end", "--status", "done")
    assert bad.exit_code == 1 and "unknown status" in bad.stderr


def _three(coral: Invoke) -> list[str]:
    ids = []
    for i, lr in enumerate(("0.1", "0.01", "0.001")):
        ids.append(
            json.loads(
                _ok(
                    coral(
                        "experiment", "start", f"run{i}", "-p", f"lr={lr}", "-p", "bs=32", "--json"
                    )
                ).stdout
            )["experiment_id"]
        )
        for step in range(5):
            _ok(
                coral(
                    "experiment",
                    "log",
                    "val_loss",
                    str(1.0 / (step + 1) + i * 0.1),
                    "--step",
                    str(step),
                )
            )
        _ok(coral("experiment", "log", "acc", str(0.5 + i / 10)))
        _ok(coral("experiment", "end"))
    return ids


def test_list_show_best_compare(coral: Invoke, tmp_path: Path) -> None:
    ids = _three(coral)
    listing = _ok(coral("experiment", "list")).stdout
    for eid in ids:
        assert eid in listing
    assert listing.index(ids[2]) < listing.index(ids[0])  # newest first
    as_json = json.loads(_ok(coral("experiment", "list", "--json", "--limit", "2")).stdout)
    assert [e["experiment_id"] for e in as_json] == [ids[2], ids[1]]
    assert (
        json.loads(_ok(coral("experiment", "list", "--json", "--name", "run1")).stdout)[0][
            "experiment_id"
        ]
        == ids[1]
    )

    shown = _ok(coral("experiment", "show", ids[1][:5])).stdout
    assert ids[1] in shown and "val_loss" in shown and "lr" in shown and "completed" in shown
    data = json.loads(_ok(coral("experiment", "show", ids[1][:5], "--json")).stdout)
    assert len(data["metrics"]) == 6 and data["params"] == {"lr": 0.01, "bs": 32}

    best = json.loads(_ok(coral("experiment", "best", "--metric", "val_loss", "--json")).stdout)
    assert [r["experiment_id"] for r in best] == ids
    assert best[0]["best_value"] == pytest.approx(0.2)
    best_max = json.loads(
        _ok(coral("experiment", "best", "--metric", "acc", "--mode", "max", "--json")).stdout
    )
    assert best_max[0]["experiment_id"] == ids[2]
    table = _ok(coral("experiment", "best", "--metric", "val_loss", "--limit", "1")).stdout
    assert ids[0] in table and ids[1] not in table

    plot = tmp_path / "curves.png"
    cmp_out = _ok(
        coral(
            "experiment",
            "compare",
            ids[0][:6],
            ids[1][:6],
            ids[2][:6],
            "--metric",
            "val_loss",
            "--plot",
            str(plot),
        )
    ).stdout
    assert "val_loss" in cmp_out and "lr" in cmp_out
    assert re.search(r"\bacc\b", cmp_out) is None  # not asked for (ids are hex: whole word)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    cmp_json = json.loads(_ok(coral("experiment", "compare", ids[0], ids[1], "--json")).stdout)
    assert set(cmp_json["metrics"]) == {"val_loss", "acc"}
    assert cmp_json["differing_params"] == ["lr"]


def test_errors_are_reported_with_hints(coral: Invoke, repo: Repository) -> None:
    missing = coral("experiment", "show", "ffffffff")
    assert (
        missing.exit_code == 1 and "no experiment" in missing.stderr and "hint:" in missing.stderr
    )
    assert "Traceback" not in missing.output
    t = ExperimentTracker(repo)
    ids = []
    while True:  # two ids with the same first character
        ids.append(t.start("x").experiment_id)
        t.end()
        firsts = [i[0] for i in ids]
        dup = next((c for c in firsts if firsts.count(c) > 1), None)
        if dup:
            break
    amb = coral("experiment", "show", dup)
    assert amb.exit_code == 1 and "ambiguous" in amb.stderr
    assert coral("experiment", "best", "--metric", "m", "--mode", "mean").exit_code == 1
    assert coral("experiment", "list", "--status", "weird").exit_code == 1
    empty = _ok(coral("experiment", "best", "--metric", "nothing"))
    assert "No experiment logged" in empty.stdout


def test_resume_from_cli(coral: Invoke, repo: Repository) -> None:
    eid = json.loads(_ok(coral("experiment", "start", "r", "-p", "a=1", "--json")).stdout)[
        "experiment_id"
    ]
    _ok(coral("experiment", "end", "--status", "failed"))
    out = _ok(coral("experiment", "resume", eid[:6])).stdout
    assert eid in out
    t = ExperimentTracker(repo)
    new = t.get(t.active_experiment_id())  # type: ignore[arg-type]
    assert new.parent_experiment == eid and new.params == {"a": 1}
    assert new.status is ExperimentStatus.RUNNING and not t.is_orphaned(new)
    _ok(coral("experiment", "log", "x", "2"))
    _ok(coral("experiment", "end"))


def test_list_when_empty(coral: Invoke) -> None:
    assert "No experiments yet" in _ok(coral("experiment", "list")).stdout

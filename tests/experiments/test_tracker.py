"""ExperimentTracker: lifecycle, storage, queries and links to commits (one process)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from coral.experiments import (
    AmbiguousExperimentError,
    ExperimentError,
    ExperimentNotFoundError,
    ExperimentRunningError,
    ExperimentStatus,
    ExperimentTracker,
    NoActiveExperimentError,
    active_experiment,
    experiment_for_commit,
    experiments_for_commits,
)
from coral.version_control.repository import Repository
from tests.experiments.conftest import weights


def test_lifecycle_and_persistence_across_restarts(
    repo: Repository, tracker: ExperimentTracker
) -> None:
    exp = tracker.start(
        "mlp", description="d", params={"lr": 0.1, "sizes": (4, 8)}, tags=["a", "b", "a"]
    )
    assert exp.status is ExperimentStatus.RUNNING and exp.started_at is not None
    assert exp.tags == ["a", "b"] and exp.params == {"lr": 0.1, "sizes": [4, 8]}
    for i in range(5):
        tracker.log("loss", 1.0 / (i + 1))  # auto steps 0..4
    tracker.log("loss", 0.1, step=10, metadata={"lr": np.float32(0.5)})
    tracker.log("loss", 0.05)  # continues after the last explicit step
    tracker.log_metrics({"acc": np.float64(0.5), "f1": 0.25}, step=3)
    tracker.log_params({"epochs": 3})
    tracker.add_tags(["c", "a"])
    tracker.set_notes("first")
    tracker.set_notes("second")
    ended = tracker.end()
    assert ended.status is ExperimentStatus.COMPLETED and ended.ended_at is not None
    assert tracker.current_id is None

    # a new tracker (a restarted process) sees everything
    again = ExperimentTracker(Repository(repo.path))
    got = again.get(exp.experiment_id)
    assert [m.step for m in got.get_metric("loss")] == [0, 1, 2, 3, 4, 10, 11]
    assert got.get_metric("loss")[5].metadata == {"lr": 0.5}
    assert got.latest("acc") == 0.5 and got.best("loss") == 0.05 and got.best("loss", "max") == 1.0
    assert got.params == {"lr": 0.1, "sizes": [4, 8], "epochs": 3}
    assert got.tags == ["a", "b", "c"] and got.notes == "second" and got.description == "d"
    assert got.summary["loss"]["count"] == 7 and got.summary["loss"]["min_step"] == 11
    assert got.duration is not None and got.duration >= 0
    assert got.branch == "main"
    again.close()


def test_nan_inf_and_bad_values(tracker: ExperimentTracker) -> None:
    exp = tracker.start("nan")
    tracker.log("loss", float("nan"))
    tracker.log("loss", float("inf"))
    tracker.log("loss", 2.0)
    tracker.log("loss", float("-inf"))
    tracker.log("loss", float("nan"))
    with pytest.raises(ExperimentError, match="not a number"):
        tracker.log("loss", "high")  # type: ignore[arg-type]
    tracker.end()
    got = tracker.get(exp.experiment_id)
    values = [m.value for m in got.metrics]
    assert (
        math.isnan(values[0])
        and values[1:4] == [math.inf, 2.0, -math.inf]
        and math.isnan(values[4])
    )
    s = got.summary["loss"]
    assert (
        s["min"] == -math.inf and s["max"] == math.inf and math.isnan(s["last"]) and s["count"] == 5
    )
    assert tracker.find_best("loss", "min")[0]["best_value"] == -math.inf


def test_state_errors(tracker: ExperimentTracker) -> None:
    with pytest.raises(NoActiveExperimentError):
        tracker.log("loss", 1.0)
    with pytest.raises(NoActiveExperimentError):
        tracker.end()
    tracker.start("a")
    with pytest.raises(ExperimentRunningError):
        tracker.start("b")
    with pytest.raises(ExperimentError, match="cannot end"):
        tracker.end(ExperimentStatus.RUNNING)
    tracker.end("cancelled")
    with pytest.raises(ExperimentError):
        tracker.start("")


def test_ids_resolve_from_unique_prefixes(tracker: ExperimentTracker) -> None:
    ids = []
    for i in range(40):
        ids.append(tracker.start(f"e{i}").experiment_id)
        tracker.end()
    for eid in ids:
        prefix = next(eid[:n] for n in range(1, 13) if sum(o.startswith(eid[:n]) for o in ids) == 1)
        assert tracker.get(prefix).experiment_id == eid
    first_chars = [i[0] for i in ids]
    shared = max(set(first_chars), key=first_chars.count)
    with pytest.raises(AmbiguousExperimentError):
        tracker.get(shared)
    with pytest.raises(ExperimentNotFoundError):
        tracker.get("zzzz")


def test_list_filters(tracker: ExperimentTracker) -> None:
    made = {}
    for name, status, tags in [
        ("bert-a", "completed", ["nlp", "prod"]),
        ("bert-b", "failed", ["nlp"]),
        ("gpt", "completed", ["nlp", "prod"]),
        ("cnn", "cancelled", []),
    ]:
        made[name] = tracker.start(name, tags=tags).experiment_id
        tracker.end(status)
    pending = tracker.create("later", tags=["prod"])
    assert pending.status is ExperimentStatus.PENDING and tracker.current_id is None

    def names(**kw: object) -> list[str]:
        return [e.name for e in tracker.list(**kw)]  # type: ignore[arg-type]

    assert names() == ["later", "cnn", "gpt", "bert-b", "bert-a"]  # newest first
    assert names(status=ExperimentStatus.COMPLETED) == ["gpt", "bert-a"]
    assert names(status=["failed", "cancelled"]) == ["cnn", "bert-b"]
    assert names(tags=["prod"]) == ["later", "gpt", "bert-a"]
    assert names(tags=["prod", "nlp"], status="completed") == ["gpt", "bert-a"]
    assert names(name="bert-*") == ["bert-b", "bert-a"]
    assert names(name="gpt") == ["gpt"]
    assert names(limit=2) == ["later", "cnn"]
    # a PENDING experiment starts when attached
    att = tracker.attach(pending.experiment_id[:8])
    assert att.status is ExperimentStatus.RUNNING and att.started_at is not None
    tracker.end()


def _fifty(tracker: ExperimentTracker) -> dict[str, float]:
    """50 experiments: val_loss curves with known minima; some failed, some never log val_loss."""
    rng = np.random.default_rng(0)
    best: dict[str, float] = {}
    for i in range(50):
        tracker.start(
            f"sweep-{i % 7}", params={"lr": 10.0 ** -(i % 5), "seed": i}, tags=[f"g{i % 3}"]
        )
        if i % 10 != 9:
            floor = float(rng.uniform(0.1, 1.0))
            curve = [floor + 1.0 / (s + 1) for s in range(20)] + [floor + 0.2]
            for s, v in enumerate(curve):
                tracker.log("val_loss", v, step=s)
            tracker.log("val_acc", 1 - min(curve) / 2, step=0)
            best[tracker.current_id] = min(curve)  # type: ignore[index]
        tracker.end("failed" if i % 4 == 3 else "completed")
    return best


def test_find_best_on_fifty_experiments(tracker: ExperimentTracker) -> None:
    best = _fifty(tracker)
    ranked = sorted(best, key=best.get)  # type: ignore[arg-type]
    results = tracker.find_best("val_loss", mode="min", limit=5)
    assert [r["experiment_id"] for r in results] == ranked[:5]
    top = results[0]
    assert top["best_value"] == pytest.approx(best[ranked[0]]) and top["step"] == 19
    assert set(top) >= {"name", "best_value", "commit_hash", "params", "experiment_id"}
    exp = tracker.get(top["experiment_id"], include_metrics=False)
    assert top["params"] == exp.params and top["name"] == exp.name

    completed = tracker.find_best("val_loss", status=ExperimentStatus.COMPLETED, limit=None)
    statuses = {e.experiment_id: e.status for e in tracker.list(include_metrics=False)}
    expected = [i for i in ranked if statuses[i] is ExperimentStatus.COMPLETED]
    assert [r["experiment_id"] for r in completed] == expected
    worst = tracker.find_best("val_loss", mode="max", limit=1)[0]
    assert worst["best_value"] == pytest.approx(
        max(b - 0.05 + 1.0 for b in best.values())
    )  # step 0
    assert worst["step"] == 0
    assert tracker.find_best("nope") == []
    with pytest.raises(ExperimentError):
        tracker.find_best("val_loss", mode="median")


def test_compare_and_summary_on_fifty_experiments(tracker: ExperimentTracker) -> None:
    best = _fifty(tracker)
    all_ids = [e.experiment_id for e in tracker.list(include_metrics=False)]
    ids = all_ids[:12]
    result = tracker.compare([i[:8] for i in ids])
    assert [e["experiment_id"] for e in result["experiments"]] == ids
    assert set(result["metrics"]) == {"val_loss", "val_acc"}
    for eid in ids:
        cell = result["metrics"]["val_loss"][eid]
        if eid in best:
            assert cell["min"] == pytest.approx(best[eid]) and cell["count"] == 21
        else:
            assert cell is None
    assert set(result["params"]) == {"lr", "seed"}
    assert result["differing_params"] == ["lr", "seed"]
    only = tracker.compare(ids[:3], metrics=["val_acc"])
    assert list(only["metrics"]) == ["val_acc"]

    summary = tracker.get_summary()
    assert summary["total_experiments"] == 50
    assert summary["by_status"] == {
        "pending": 0,
        "running": 0,
        "completed": 38,
        "failed": 12,
        "cancelled": 0,
    }
    assert summary["unique_names"] == 7
    assert summary["branches"] == ["main"]
    assert summary["total_metrics_logged"] == len(best) * 22


def test_resume_copies_and_links(tracker: ExperimentTracker) -> None:
    orig = tracker.start("long", description="x", params={"lr": 0.1}, tags=["t"])
    tracker.log("loss", 1.0)
    tracker.fail(error_message="OOM")
    failed = tracker.get(orig.experiment_id)
    assert failed.status is ExperimentStatus.FAILED and failed.error_message == "OOM"
    resumed = tracker.resume(orig.experiment_id[:6])
    assert resumed.parent_experiment == orig.experiment_id
    assert resumed.status is ExperimentStatus.RUNNING
    assert (resumed.name, resumed.description, resumed.params, resumed.tags) == (
        "long",
        "x",
        {"lr": 0.1},
        ["t"],
    )
    assert resumed.metrics == [] and tracker.current_id == resumed.experiment_id
    tracker.end()


def test_commits_are_linked(repo: Repository, tracker: ExperimentTracker) -> None:
    repo.add_all_weights(weights(0))
    before = repo.commit("before the experiment")
    exp = tracker.start("train")
    made = []
    for step in range(1, 4):
        repo.add_all_weights(weights(step))
        made.append(repo.commit(f"epoch {step}"))
        tracker.log("loss", 1.0 / step)
    tracker.log_params({"best_checkpoint": made[1][:12], "not_a_commit": "abcdef123456"})
    # a commit on another branch while it runs is not the experiment's
    repo.create_branch("other")
    repo.checkout("other")
    repo.add_all_weights(weights(9))
    elsewhere = repo.commit("unrelated")
    repo.checkout("main")
    ended = tracker.end()
    assert ended.commits == made
    assert ended.commit_hash == made[-1]  # no explicit commit: the newest one made while it ran
    assert tracker.commits(exp.experiment_id) == made
    links = {k["commit_hash"]: k["source"] for k in tracker.commit_links(exp.experiment_id)}
    assert links[made[1]] == "param:best_checkpoint" and links[made[0]] == "log"
    assert experiment_for_commit(repo, made[0][:10])[0].experiment_id == exp.experiment_id
    assert experiment_for_commit(repo, before) == []
    assert experiment_for_commit(repo, elsewhere) == []
    assert experiment_for_commit(repo, "main")[0].experiment_id == exp.experiment_id  # any ref
    many = experiments_for_commits(repo, [before, *made, elsewhere])
    assert set(many) == set(made)
    assert all([e.experiment_id for e in v] == [exp.experiment_id] for v in many.values())

    # an explicit commit at end, made after the experiment started on another branch
    exp2 = tracker.start("on-other", branch="other")
    ended2 = tracker.end(commit_hash="other")  # any ref the repository resolves
    assert ended2.commit_hash == elsewhere and ended2.branch == "other"
    assert [e.experiment_id for e in experiment_for_commit(repo, elsewhere)] == [exp2.experiment_id]
    assert tracker.commit_links(exp2.experiment_id)[0]["source"] == "end"


def test_active_experiment_across_trackers(repo: Repository) -> None:
    a = ExperimentTracker(repo)
    exp = a.start("shared")
    assert active_experiment(repo).experiment_id == exp.experiment_id  # type: ignore[union-attr]
    b = ExperimentTracker(Repository(repo.path))
    attached = b.attach()
    assert attached.experiment_id == exp.experiment_id
    b.log("from_b", 1.0)
    b.close()  # flushes, leaves it running
    a.log("from_a", 2.0)
    got = a.get(exp.experiment_id)
    assert {m.name for m in got.metrics} == {"from_a", "from_b"}
    assert got.status is ExperimentStatus.RUNNING
    a.end()
    assert active_experiment(repo) is None
    with pytest.raises(NoActiveExperimentError):
        ExperimentTracker(repo).attach()
    with pytest.raises(ExperimentError, match="already ended"):
        ExperimentTracker(repo).attach(exp.experiment_id)
    a.close()


def test_run_context_manager(tracker: ExperimentTracker) -> None:
    with tracker.run("ok", params={"a": 1}) as exp:
        tracker.log("x", 1.0)
    assert tracker.get(exp.experiment_id).status is ExperimentStatus.COMPLETED
    with pytest.raises(ZeroDivisionError), tracker.run("bad") as bad:
        tracker.log("x", 1.0)
        _ = 1 / 0
    got = tracker.get(bad.experiment_id)
    assert got.status is ExperimentStatus.FAILED and "ZeroDivisionError" in (
        got.error_message or ""
    )


def test_batching_keeps_log_in_memory(repo: Repository) -> None:
    t = ExperimentTracker(repo, flush_every=1000, flush_interval=3600)
    exp = t.start("batched")
    for i in range(999):
        t.log("x", i)
    other = ExperimentTracker(Repository(repo.path))
    assert other.get(exp.experiment_id).metrics == []  # still in memory
    t.log("x", 999)  # the 1000th point wakes the writer
    t.flush()
    assert len(other.get(exp.experiment_id).metrics) == 1000
    t.end()


@pytest.mark.slow
def test_a_million_points(repo: Repository) -> None:
    t = ExperimentTracker(repo)
    exp = t.start("million")
    for i in range(1_000_000):
        t.log("loss", 1.0 / (i + 1), step=i)
    t.end()
    got = t.get(exp.experiment_id, include_metrics=False)
    assert got.summary["loss"]["count"] == 1_000_000
    assert got.summary["loss"]["min_step"] == 999_999
    history = t.metric_history(exp.experiment_id, "loss")
    assert len(history) == 1_000_000 and history[-1] == (999_999, 1e-6)
    assert t.find_best("loss")[0]["step"] == 999_999


def test_commit_lookup_without_any_experiment_tables(tmp_path: Path) -> None:
    fresh = Repository.init(tmp_path / "fresh")
    fresh.add_all_weights(weights(0))
    commit = fresh.commit("c")
    assert experiment_for_commit(fresh, commit) == []
    assert experiments_for_commits(fresh, [commit]) == {}
    import sqlite3

    with sqlite3.connect(fresh.db_path) as conn:  # nothing was created by the lookups
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(n.startswith("experiment") for n in names)
    fresh.close()


def test_tracker_accepts_a_path(repo: Repository, tmp_path: Path) -> None:
    t = ExperimentTracker(str(repo.path))
    t.start("by-path")
    t.end()
    assert [e.name for e in ExperimentTracker(repo).list()] == ["by-path"]

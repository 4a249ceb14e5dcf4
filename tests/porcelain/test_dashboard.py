"""What the dashboard reads: the history in pages with its graph, a commit's tensors in pages,
the activity feed, remotes and publishes, metrics series, storage analytics, diffs — on a real
repository (`tests/web/sample_repo.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral.porcelain.dashboard import (
    ALL_REFS,
    HistoryIndex,
    activity_feed,
    diff_commits,
    history_key,
    page_of,
    publish_history,
    remotes,
    tensor_page,
)
from coral.porcelain.history import graph_rows
from coral.porcelain.metric_series import commit_metrics, experiment_curves, experiments
from coral.porcelain.storage_report import storage_report
from coral.version_control.repository import Repository
from tests.web.sample_repo import BIG_TENSORS, Built, build


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("dashboard-porcelain"))


@pytest.fixture
def repo(sample: Built) -> Repository:
    r = Repository(sample.path, shared_staging=True)
    yield r
    r.close()


def test_page_of_clamps_and_counts() -> None:
    assert page_of(0, 10, 0).count == 1 and page_of(0, 10, 0).stop == 0
    p = page_of(99, 10, 25)
    assert (p.number, p.start, p.stop, p.count) == (2, 20, 25, 3)
    assert page_of(-3, 10, 25).number == 0


def test_history_pages_partition_the_log_with_its_graph(repo: Repository, sample: Built) -> None:
    index = HistoryIndex(repo, ALL_REFS)
    assert len(index) == len(sample.main) + 2  # + the branch commit + the 1 000-tensor commit
    seen, graph = [], []
    for n in range(index.page(repo, 0, 3).page.count):
        page = index.page(repo, n, 3)
        commits = [r.entry.commit.commit_hash for r in page.rows if r.entry]
        assert 1 <= len(commits) <= 3
        seen += commits
        graph += [r.graph for r in page.rows]
    assert seen == [c.commit_hash for c in index.commits]  # every commit once, in log order
    assert graph == [g for g, _ in graph_rows(index.commits)]  # the graph `coral log` draws
    assert any("/" in g or "\\" in g for g in graph)  # the merge shows as a fork and a join
    first = index.page(repo, 0, 50).rows
    labels = {r.entry.commit.commit_hash: r.entry.refs for r in first if r.entry}
    assert "HEAD -> main" in labels[sample.merge] and "tag: v1" in labels[sample.merge]
    experiments_shown = [r.entry.experiments for r in first if r.entry and r.entry.experiments]
    assert experiments_shown and experiments_shown[0][0][1] == "baseline"


def test_history_key_moves_with_a_commit(tmp_path: Path) -> None:
    import numpy as np

    r = Repository.init(tmp_path / "r")
    assert HistoryIndex(r).commits == []
    r.add_all_weights({"w": np.zeros(2, np.float32)})
    r.commit("one")
    before = history_key(r, None), history_key(r, ALL_REFS)
    r.add_all_weights({"w": np.ones(2, np.float32)})
    r.commit("two")
    assert history_key(r, None) != before[0] and history_key(r, ALL_REFS) != before[1]
    assert [c.message for c in HistoryIndex(r).commits] == ["two", "one"]
    r.close()


def test_tensor_page_of_a_thousand_tensors(repo: Repository, sample: Built) -> None:
    first = tensor_page(repo, "big", 0, 100, pattern="block.*")
    assert first.matching == BIG_TENSORS and first.total_tensors > BIG_TENSORS  # + the model
    assert first.page.count == 10 and len(first.rows) == 100
    pages = [tensor_page(repo, "big", n, 100, pattern="block.*").rows for n in range(10)]
    names = [t.name for rows in pages for t in rows]
    assert len(set(names)) == BIG_TENSORS and names == sorted(names)
    row = first.rows[0]
    assert row.change == "added" and row.stored is not None and row.stored.stored_bytes > 0
    glob = tensor_page(repo, "big", 0, 100, pattern="block.99*")
    expected = ["block.99.weight", *(f"block.99{i}.weight" for i in range(10))]
    assert [t.name for t in glob.rows] == expected
    assert tensor_page(repo, "big", 0, 100, pattern="7.w").matching == 100  # a substring
    last = tensor_page(repo, "big", 99, 100, pattern="block.*")
    assert last.page.number == 9  # clamped to the last page


def test_tensor_page_training_state_and_changes(repo: Repository, sample: Built) -> None:
    page = tensor_page(repo, "HEAD", 0, 500)
    assert page.training_state == 1
    assert not any(t.name.startswith("__optim__") for t in page.rows)
    assert [f.path for f in page.files] == ["config.json"]
    every = tensor_page(repo, "HEAD", 0, 500, include_training_state=True)
    assert every.matching == page.matching + 1 and every.training_state == 0
    epoch1 = tensor_page(repo, sample.main[1], 0, 500)
    changes = {t.change for t in epoch1.rows}
    assert changes == {"changed", "identical"}  # a third of the tensors are frozen


def test_activity_feed(repo: Repository, sample: Built) -> None:
    feed = activity_feed(repo, 200)
    kinds = {a.kind for a in feed}
    assert {"commit", "merge", "branch", "tag", "remote", "publish"} <= kinds
    assert [a.timestamp for a in feed] == sorted((a.timestamp for a in feed), reverse=True)
    tag = next(a for a in feed if a.kind == "tag")
    assert tag.ref == "v1" and tag.commit == sample.merge
    remote = next(a for a in feed if a.kind == "remote")
    assert remote.ref == "origin/main" and remote.commit == sample.merge
    publish = next(a for a in feed if a.kind == "publish")
    assert publish.ok and publish.ref.startswith("local:")
    assert not any(a.ref == "HEAD" for a in feed)  # HEAD's entries repeat the branches'
    assert activity_feed(repo, 5, 5) == feed[5:10]


def test_remotes_and_publishes(repo: Repository, sample: Built) -> None:
    (origin,) = remotes(repo)
    assert origin.name == "origin" and origin.url.startswith("file://")
    assert origin.tracking == {"origin/main": sample.merge, "origin/tags/v1": sample.merge}
    (published,) = publish_history(repo)
    assert published.success and published.commit == sample.merge


def test_no_publish_table_is_created_by_reading(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    assert publish_history(r) == [] and experiments(r) == []
    assert "publish_history" not in r.database.tables()
    assert "experiments" not in r.database.tables()
    r.close()


def test_commit_metrics_and_experiment_curves(repo: Repository, sample: Built) -> None:
    data = commit_metrics(repo, "main")
    assert data.names == ["acc", "loss"]
    assert [c.commit_hash for c in data.commits][-1] == sample.merge  # oldest first
    losses = [v for v in data.series["loss"] if v is not None]
    assert losses == [1.0 / (s + 1) for s in range(8)]
    assert commit_metrics(repo, "main", limit=3).commits[-1].commit_hash == sample.merge
    assert len(commit_metrics(repo, "main", limit=3).commits) == 3
    (exp,) = experiments(repo)
    assert exp.name == "baseline" and exp.metrics == ["loss"]
    (curve,) = experiment_curves(repo, [exp.experiment_id])
    assert curve.metric == "loss" and len(curve.points) == 40
    assert curve.points[0] == (0.0, 1.0)
    assert experiment_curves(repo, ["nope"]) == []


def test_storage_report_agrees_with_coral_stats(repo: Repository) -> None:
    report = storage_report(repo)
    history = repo.storage_history()
    assert [c.commit for c in report.commits] == [h["hash"] for h in history]
    assert [c.stored_bytes for c in report.commits] == [h["stored_bytes"] for h in history]
    assert [c.logical_bytes for c in report.commits] == [h["logical_bytes"] for h in history]
    dedup = repo.deduplicator.get_stats()
    assert report.stored_bytes == dedup.stored_bytes
    assert report.unique_bytes == dedup.unique_bytes and report.logical_bytes == dedup.total_bytes
    assert sum(report.chain_depths.values()) == report.distinct
    assert report.largest[0].logical_bytes >= report.largest[-1].logical_bytes
    for c in report.commits:
        assert c.dedup_saved + c.new_logical_bytes == c.logical_bytes


def test_diff_commits_hides_training_state(repo: Repository, sample: Built) -> None:
    d = diff_commits(repo, sample.main[0], "HEAD")
    names = {t.name for t in d.result.tensors}
    assert not any(n.startswith("__optim__") for n in names) and d.training_state == 1
    assert "adapter.weight" in d.result.added
    with_state = diff_commits(repo, sample.main[0], "HEAD", include_training_state=True)
    assert "__optim__/state.0.exp_avg" in {t.name for t in with_state.result.tensors}
    assert d.files == {}  # config.json never changed

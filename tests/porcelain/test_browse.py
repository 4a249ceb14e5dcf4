"""`porcelain.browse`, `search`, `compare`, `staging`: what the terminal browser reads and does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.browse import GraphLanes, LogPager, ancestry, ref_labels, refs_overview
from coral.porcelain.compare import checkout_preview, diff_commits, tensor_versions
from coral.porcelain.history import graph_rows
from coral.porcelain.search import SearchQuery, search_history
from coral.porcelain.staging import (
    checkpoint_candidates,
    commit_staged,
    stage_path,
    stage_removal,
    staging_view,
    unstage,
)
from tests.tui.history import long_history, small_history


class Stop(Exception):
    """What a progress callback raises to cancel."""


def _subjects(rows: list) -> list[str]:
    return [r.commit.message for r in rows if r.commit is not None]


def test_pages_draw_the_graph_graph_rows_draws(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    commits = list(repo.iter_commits())
    whole = [(g, c.commit_hash if c else None) for g, c in graph_rows(commits)]
    lanes = GraphLanes()
    paged = [(g, c.commit_hash if c else None) for c in commits for g, c in lanes.add(c)]
    assert paged == whole
    pager = LogPager(repo)
    rows = []
    while not pager.done:
        rows += pager.next_page(1)  # one commit at a time: lanes carry over
    assert [(r.graph, r.commit.commit_hash if r.commit else None) for r in rows] == whole
    assert any("\\" in r.graph for r in rows) and any("/" in r.graph for r in rows)
    head = rows[0].entry
    assert head is not None and head.refs == ["HEAD -> main"]


def test_the_pager_reads_only_what_is_asked(tmp_path: Path) -> None:
    repo = long_history(tmp_path, 40)
    pager = LogPager(repo, ["main"])
    first = pager.next_page(5)
    assert _subjects(first) == [f"step {i}" for i in range(39, 34, -1)]
    assert pager.commits == 5 and not pager.done
    rest = pager.next_page(100)
    assert pager.done and pager.commits == 40 and _subjects(rest)[-1] == "step 0"
    assert pager.next_page(10) == []


def test_ancestry_of_a_side_branch_leaves_out_main(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    pager = LogPager(repo)
    rows = pager.next_page(100)
    side = next(i for i, r in enumerate(rows) if r.commit and r.commit.message == "add an adapter")
    line = {repo.read_commit(h).message for h in ancestry(rows, side)}
    assert line == {"add an adapter", "base model"}
    assert len(ancestry(rows, 0)) == 4  # the merge reaches everything
    assert ancestry(rows, 1) == set()  # a connector row


def test_refs_overview(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    refs = refs_overview(repo)
    assert [b.name for b in refs.branches] == ["main", "side"]
    assert [b.current for b in refs.branches] == [True, False]
    assert refs.tags[0].name == "v1" and refs.tags[0].note == "first release"
    assert refs.branches[1].note == "add an adapter"
    assert refs.staged == 0 and refs.remotes == [] and refs.branch == "main"
    repo.add_weight("x", np.zeros(2, np.float32))
    assert refs_overview(repo).staged == 1
    repo.remote_refs.record("origin", {"heads/main": repo.resolve_ref("v1")})
    remote = refs_overview(repo).remotes
    assert [(r.kind, r.name, r.note) for r in remote] == [
        ("remote", "origin/main", "fine-tune the head")
    ]
    assert refs_overview(repo).remote_names == ["origin"]
    assert "origin/main" in ref_labels(repo)[repo.resolve_ref("v1")]


def test_search_messages_metrics_and_tensors(tmp_path: Path) -> None:
    repo = small_history(tmp_path)

    def hits(q: str) -> list[tuple[str, str, str]]:
        return [(h.commit.message, h.kind, h.what) for h in search_history(repo, q)]

    assert hits("ADAPTER") == [
        ("merge the adapter", "message", "merge the adapter"),
        ("merge the adapter", "tensor", "adapter.weight"),  # new against the first parent
        ("add an adapter", "message", "add an adapter"),
        ("add an adapter", "tensor", "adapter.weight"),
    ]
    assert hits("val_loss<0.5") == [("fine-tune the head", "metric", "val_loss=0.41")]
    assert hits("acc>=0.9") == [("fine-tune the head", "metric", "acc=0.93")]
    assert [m for m, k, _ in hits("*.bias")] == ["fine-tune the head", "base model"]
    assert hits("nothing like it") == [] and hits("") == []
    assert SearchQuery.parse("loss < 1e-3").value == pytest.approx(1e-3)
    assert SearchQuery.parse("encoder.*").is_glob


def test_diff_commits_hides_training_state_and_can_be_stopped(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    d = diff_commits(repo, "v1~1", "v1")
    assert d.training_state_hidden == 1
    assert {t.name for t in d.rows} == {"encoder.layer.1.mlp.weight", "head.bias"}
    full = diff_commits(repo, "v1~1", "v1", include_training_state=True)
    assert full.training_state_hidden == 0
    assert "__optim__/state.0.exp_avg" in {t.name for t in full.rows}
    calls = []

    def stop(phase: str, done: int, total: int | None) -> None:
        calls.append(done)
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        diff_commits(repo, "v1~1", "v1", progress=stop)
    assert calls == [1, 2]  # no tensor compared after the stop


def test_tensor_versions_share_bins(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    v = tensor_versions(repo, "encoder.layer.1.mlp.weight", ["v1", "v1~1"], bins=10)
    assert len(v.edges) == 11
    a, b = v.versions
    assert a is not None and b is not None
    assert a.histogram[1] == b.histogram[1] == v.edges
    assert sum(a.histogram[0]) == sum(b.histogram[0]) == 64
    assert a.values["std"] == pytest.approx(1.5 * b.values["std"])
    missing = tensor_versions(repo, "adapter.weight", ["side", "v1"])
    assert missing.versions[0] is not None and missing.versions[1] is None


def test_checkout_preview_changes_nothing(tmp_path: Path) -> None:
    repo = small_history(tmp_path)
    head = repo.head_commit()
    p = checkout_preview(repo, "side")
    assert p.branch == "side" and p.head == head and p.moves
    assert {t.name: t.category for t in p.changes} == {
        "encoder.layer.1.mlp.weight": "changed",
        "head.bias": "changed",
    }
    assert p.files == {"config.json": "changed"} and p.staged == []
    assert p.training_state_hidden == 1
    detached = checkout_preview(repo, repo.resolve_ref("v1"))
    assert detached.branch is None
    assert {t.name: t.category for t in detached.changes} == {"adapter.weight": "removed"}
    repo.add_weight("extra", np.zeros(3, np.float32))
    assert checkout_preview(repo, "side").staged == [("new", "extra")]
    assert repo.head_commit() == head and repo.current_branch == "main"


def test_staging_operations(tmp_path: Path) -> None:
    repo = small_history(tmp_path / "repo")
    ckpt = tmp_path / "repo" / "runs" / "epoch3.safetensors"
    ckpt.parent.mkdir()
    save_file({"head.bias": np.full(4, 2.0, np.float32)}, str(ckpt))
    (tmp_path / "repo" / "notes.txt").write_text("not a checkpoint")
    assert checkpoint_candidates(tmp_path / "repo") == [ckpt]
    view = staging_view(repo)
    assert view.candidates == [ckpt] and view.staged == []
    assert stage_path(repo, ckpt).counts["modified"] == 1
    assert stage_removal(repo, ["adapter.weight"]) == 1
    view = staging_view(repo)
    assert {(s.kind, s.name) for s in view.tensors} == {
        ("modified", "head.bias"),
        ("deleted", "adapter.weight"),
    }
    assert unstage(repo, ["adapter.weight"]) == 1
    with pytest.raises(CoralError):
        commit_staged(repo, "  ")
    commit = commit_staged(repo, "epoch 3", {"loss": 0.3})
    assert repo.get_commit(commit).metrics == {"loss": 0.3}
    assert "adapter.weight" in repo.get_tree(commit).entries
    with pytest.raises(NothingToCommitError):
        commit_staged(repo, "again")

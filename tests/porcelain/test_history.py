"""`porcelain.history`: the log, a commit and a tensor as every front end reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coral.porcelain.history import commit_detail, graph_rows, log_entries, tensor_detail
from coral.version_control.repository import Repository


def _repo(tmp_path: Path) -> Repository:
    repo = Repository.init(tmp_path)
    repo.add_all_weights({"a": np.zeros(4, np.float32), "b": np.ones(4, np.float32)})
    repo.commit("one")
    repo.create_branch("side")
    repo.checkout("side")
    repo.add_weight("c", np.full(3, 2.0, np.float32))
    repo.commit("side work")
    repo.checkout("main")
    repo.add_all_weights(
        {"a": np.arange(4, dtype=np.float32), "__optim__/state.0.exp_avg": np.ones(4, np.float32)}
    )
    repo.remove_weight("b")
    repo.commit("two", metadata={"metrics": {"loss": 0.5}})
    repo.tag_version("v1", "first release")
    repo.merge("side")
    return repo


def test_log_entries_decorate_and_graph_merges(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    entries = log_entries(repo)
    assert [e.commit.message.split("\n")[0] for e in entries][-1] == "one"
    assert entries[0].refs == ["HEAD -> main"]
    tagged = next(e for e in entries if e.commit.message == "two")
    assert tagged.refs == ["tag: v1"]
    assert len(entries[0].commit.parent_hashes) == 2
    rows = graph_rows([e.commit for e in entries])
    assert any(c is None and "\\" in prefix for prefix, c in rows)  # the merge forks lanes
    assert any(c is None and "/" in prefix for prefix, c in rows)  # and they join again
    assert log_entries(repo, max_count=2)[1].commit.commit_hash == entries[1].commit.commit_hash
    assert entries[0].to_dict()["refs"] == ["HEAD -> main"]


def test_commit_detail_changes_against_the_parent(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    detail = commit_detail(repo, "v1", storage=True)
    changes = {t.name: t.change for t in detail.tensors}
    assert changes == {"a": "changed"}  # training state left out by default
    assert detail.training_state == ["__optim__/state.0.exp_avg"]
    assert detail.removed == ["b"]
    assert detail.tensors[0].stored is not None and detail.tensors[0].stored.stored_bytes > 0
    full = commit_detail(repo, "v1", include_training_state=True)
    assert {t.name: t.change for t in full.tensors}["__optim__/state.0.exp_avg"] == "added"
    root = commit_detail(repo, "v1~1")
    assert {t.change for t in root.tensors} == {"added"}
    assert "tag: v1" in detail.to_dict()["refs"]


def test_tensor_detail_counts_every_finite_value(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path)
    values = np.array([1.0, 2.0, np.nan, np.inf, 3.0, 0.0], np.float32)
    repo.add_weight("w", values)
    repo.commit("c")
    detail = tensor_detail(repo, "HEAD", "w", bins=5)
    counts, edges = detail.histogram
    assert sum(counts) == 4 and len(edges) == 6
    assert detail.values["nonfinite"] == 2 and detail.values["zeros"] == 1
    assert detail.to_dict()["storage"]["stored_bytes"] > 0

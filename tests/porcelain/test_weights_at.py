"""`weights_at`: the tensors a diff side names, `staged` included (what `diff --visual` draws)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coral.porcelain.weights import STAGED, weights_at
from coral.version_control.repository import Repository


def test_staged_side_holds_the_staged_values_not_heads(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path)
    repo.add_weight("a", np.zeros(8, np.float32))
    repo.add_weight("gone", np.ones(3, np.float32))
    repo.commit("base")
    repo.add_weight("a", np.full(8, 2.0, np.float32))
    repo.add_weight("new", np.arange(4, dtype=np.float32))
    repo.remove_weight("gone")

    staged = weights_at(repo, STAGED)
    assert set(staged) == {"a", "new"}
    np.testing.assert_array_equal(staged["a"].data, np.full(8, 2.0, np.float32))
    head = weights_at(repo, "HEAD", select=lambda n: n != "gone")
    assert set(head) == {"a"}
    np.testing.assert_array_equal(head["a"].data, np.zeros(8, np.float32))

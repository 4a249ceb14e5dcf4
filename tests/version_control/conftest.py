"""Fixtures for version-control tests: a fresh repository and deterministic weights."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coral.version_control.repository import Repository


def make_weights(seed: int, n: int = 3, shape: tuple[int, ...] = (16, 8)) -> dict[str, np.ndarray]:
    """`n` float32 tensors named layer{i}.weight plus an int64 step counter, all from `seed`."""
    rng = np.random.default_rng(seed)
    out = {f"layer{i}.weight": rng.standard_normal(shape).astype(np.float32) for i in range(n)}
    out["step"] = np.array([seed], dtype=np.int64)
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(tmp_path / "repo")
    yield r
    r.close()


def commit_weights(repo: Repository, weights: Mapping[str, Any], message: str) -> str:
    repo.add_all_weights(weights)
    return repo.commit(message)

"""Fixtures: a real redis-server on loopback, a namespace per test, fine-tuned checkpoints."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers.redis_server import redis_server

DIM = int(os.environ.get("CORAL_TEST_SHARED_INDEX_DIM", "256"))


@pytest.fixture(scope="package")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("redis")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"t-{request.node.name}"[:100].replace("[", "-").replace("]", "")


def base_model(dim: int = DIM) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(19)
    return {
        "encoder.weight": rng.standard_normal((dim, dim)).astype(np.float32),
        "decoder.weight": rng.standard_normal((dim, dim)).astype(np.float32),
        "head.weight": rng.standard_normal((8, dim)).astype(np.float32),
    }


def fine_tune(model: dict[str, np.ndarray], seed: int, prefix: str) -> dict[str, np.ndarray]:
    """A fine-tune under other names (`prefix` + name): 2% of each tensor's values moved."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in model.items():
        tuned = value.copy()
        mask = rng.random(value.shape) < 0.02
        tuned[mask] += np.float32(0.01) * rng.standard_normal(int(mask.sum())).astype(np.float32)
        out[prefix + name] = tuned
    return out


def save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
    return path


def stored_bytes(repo: Path) -> int:
    """Bytes of the repository's object store (packs and their indexes)."""
    objects = repo / ".coral" / "objects"
    return sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())

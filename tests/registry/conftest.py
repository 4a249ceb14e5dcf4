"""Registry test fixtures: a repository with history, the fake Hub, a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.version_control.repository import Repository
from tests.servers.hub_server import HubServer, running_hub
from tests.servers.mlflow_server import mlflow_server

HUB_TOKEN = "hf_coral_test_token"
HUB_USER = "coral-tester"
HUB_ORG = "my-org"


def special_weights(seed: int) -> dict[str, np.ndarray]:
    """Tensors that catch lossy exports: NaN payloads, -0.0, inf, subnormals, bfloat16 and
    float8 bit patterns, 0-d and empty tensors, ints and bools."""
    rng = np.random.default_rng(seed)
    f32 = rng.standard_normal((8, 16)).astype(np.float32)
    f32.reshape(-1)[:5] = np.array(
        [0x7FC00001, 0xFFA00000, 0x80000000, 0x00000001, 0x7F800000], dtype=np.uint32
    ).view(np.float32)  # NaN payloads, -0.0, subnormal, inf
    return {
        "encoder.weight": f32,
        "encoder.bias": rng.standard_normal(16).astype(np.float16),
        "decoder.weight": rng.integers(0, 2**16, (4, 8), dtype=np.uint16).view(ml_dtypes.bfloat16),
        "decoder.scale": rng.integers(0, 2**8, (3, 5), dtype=np.uint8).view(
            ml_dtypes.float8_e4m3fn
        ),
        "decoder.scale_e5m2": rng.integers(0, 2**8, (7,), dtype=np.uint8).view(
            ml_dtypes.float8_e5m2
        ),
        "head.weight": rng.standard_normal((2, 3)).astype(np.float64),
        "step": np.array(seed, dtype=np.int64),
        "mask": rng.integers(0, 2, (6,)).astype(bool),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "ids": rng.integers(-100, 100, (5,), dtype=np.int32),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """Three commits on main (metrics in the last two); `v1.0` tags the third."""
    r = Repository.init(tmp_path / "repo")
    for i in range(3):
        r.add_all_weights(special_weights(i))
        r.commit(
            f"training step {i}",
            author="trainer@example.com",
            metadata={"metrics": {"loss": 1.0 / (i + 1)}} if i else None,
        )
    r.tag_version("v1.0", description="first release", metrics={"val_accuracy": 0.91})
    yield r
    r.close()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """The fake Hub on loopback; HF_ENDPOINT and HF_TOKEN point at it, no saved login is read."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with running_hub({HUB_TOKEN: HUB_USER}, orgs={HUB_ORG: {HUB_USER}}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
        yield server


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `mlflow server` for the whole session (it takes 10-15 s to start)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def assert_bit_exact(actual: dict, expected: dict) -> None:
    """Same names, dtypes, shapes and bytes."""
    assert sorted(actual) == sorted(expected)
    for name, want in expected.items():
        got = np.asarray(actual[name])
        want = np.asarray(want)
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), name

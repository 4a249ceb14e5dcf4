"""Fixtures for the training tests: a fresh repository and a small deterministic torch model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def repo(tmp_path: Path):
    from coral.version_control.repository import Repository

    r = Repository.init(tmp_path / "repo")
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models train faster on one thread, and results do not depend on the core count."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

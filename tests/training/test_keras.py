"""Keras 3 with the TensorFlow and the PyTorch backend, each in its own subprocess (the backend
is fixed when Keras is first imported): see keras_worker.py for the checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]


def _run_worker(backend: str, work: Path) -> str:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.training.keras_worker", str(work)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout


@pytest.mark.slow
def test_keras_tensorflow_backend_fit_resume_and_tf_imports(tmp_path):
    pytest.importorskip("tensorflow")
    assert "KERAS-OK tensorflow" in _run_worker("tensorflow", tmp_path)


@pytest.mark.slow
def test_keras_torch_backend_fit_resume_and_keras_file(tmp_path):
    pytest.importorskip("torch")
    assert "KERAS-OK torch" in _run_worker("torch", tmp_path)

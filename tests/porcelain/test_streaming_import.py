"""Imports stream: a checkpoint is read tensor by tensor and staged in bounded batches, so a
checkpoint bigger than memory never has to be held whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import coral.porcelain.add as add_module
from coral.integrations.formats._common import LazyTensors
from coral.porcelain import import_checkpoint
from coral.porcelain.add import load_paths
from coral.version_control.repository import Repository


def test_safetensors_checkpoint_is_read_lazily_and_staged_in_bounded_batches(
    tmp_path: Path, monkeypatch
) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        f"layer{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(12)
    }
    path = tmp_path / "model.safetensors"
    save_file(arrays, str(path))
    (ckpt,) = load_paths([path])
    assert isinstance(ckpt.weights, LazyTensors)
    assert ckpt.weights.nbytes("layer0.weight") == 64 * 64 * 4

    batches: list[int] = []
    repo = Repository.init(tmp_path / "repo")
    original = repo.add_all_weights

    def recording(weights, **kw):
        batches.append(sum(int(a.nbytes) for a in weights.values()))
        return original(weights, **kw)

    monkeypatch.setattr(repo, "add_all_weights", recording)
    monkeypatch.setattr(add_module, "BATCH_BYTES", 3 * 64 * 64 * 4)
    ticks: list[int] = []
    result = import_checkpoint(repo, path, progress=ticks.append)
    assert len(batches) == 4 and max(batches) <= 3 * 64 * 64 * 4
    assert sum(ticks) == 12  # one progress tick per tensor
    got = repo.get_all_weights(result.commit_hash)
    assert all(got[n].data.tobytes() == a.tobytes() for n, a in arrays.items())
    repo.close()

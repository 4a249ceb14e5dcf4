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


def test_export_reads_each_tensor_when_the_writer_reaches_it(tmp_path: Path, monkeypatch) -> None:
    """A safetensors export holds a few chunks at a time: every tensor is read from the store
    exactly once, chunk by chunk, as the writer reaches it (never all before the file opens)."""
    from safetensors.numpy import load_file

    from coral.porcelain import export_commit

    rng = np.random.default_rng(1)
    arrays = {f"w{i}": rng.standard_normal((32, 32)).astype(np.float32) for i in range(6)}
    repo = Repository.init(tmp_path / "repo")
    repo.add_all_weights(arrays)
    repo.commit("six")
    events: list[str] = []
    iter_chunks = repo.store.iter_chunks

    def counting_chunks(tid):
        events.append("open")
        for chunk in iter_chunks(tid):
            events.append("chunk")
            yield chunk

    monkeypatch.setattr(repo.store, "iter_chunks", counting_chunks)
    result = export_commit(repo, "HEAD", tmp_path / "out.safetensors")
    assert events == ["open", "chunk"] * 6  # each read as the writer reaches it
    back = load_file(str(result.files[0]))
    assert all(back[n].tobytes() == a.tobytes() for n, a in arrays.items())
    repo.close()

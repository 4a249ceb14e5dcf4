"""Streaming stores the same bytes as the whole-tensor path, and reads back bit-exact.

A checkpoint imported from a safetensors file (memory-mapped, encoded chunk by chunk) and the
same tensors given whole to `Repository.add_all_weights` must give identical tensor ids,
manifests and chunk records, for a first version and for a second one stored as deltas;
chunks are 4 KiB here so every tensor has many.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.integrations.formats.safetensors_format import read_safetensors, write_safetensors
from coral.storage.base import CHUNK, TENSOR
from coral.version_control.repository import Repository

runner = CliRunner()


def coral(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def arrays(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((96, 200)) * 0.02).astype(np.float32)
    w += np.float32(1e-4 * step) * rng.standard_normal(w.shape).astype(np.float32)
    return {
        "encoder.weight": w,  # 75 KiB: 19 chunks of 4 KiB
        "encoder.bias": np.full(200, 0.5 + step, np.float32),
        "embed.bf16": (rng.standard_normal((64, 130)) + step).astype(ml_dtypes.bfloat16),
        "quant.int8": rng.integers(-128, 128, 3000, dtype=np.int8),  # one raw FULL chunk
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(3.5 + step, np.float64),
    }


def new_repo(path: Path) -> Path:
    coral("init", str(path))
    coral("-C", str(path), "config", "set", "storage.chunk_bytes", "4096")
    return path


def records(repo_path: Path) -> dict[str, tuple[dict[str, str], dict[str, bytes], dict]]:
    """Per commit (oldest first): tensor ids by name, every chunk record, manifests."""
    out = {}
    with Repository(repo_path) as repo:
        store = repo.store
        for i, commit in enumerate(reversed(repo.log())):
            tree = repo.get_tree(commit.commit_hash)
            ids = {n: e.tensor_id for n, e in tree.entries.items()}
            manifests = {t: store.read_record(TENSOR, t) for t in ids.values()}
            chunks = {
                c: store.read_record(CHUNK, c)
                for t in ids.values()
                for c in store.manifest(t).chunks
            }
            out[str(i)] = (ids, chunks, manifests)
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """The same two versions committed streamed (files) and whole (in memory)."""
    streamed, whole = new_repo(tmp_path / "streamed"), new_repo(tmp_path / "whole")
    for step in (0, 1):
        src = write_safetensors(arrays(step), tmp_path / f"v{step}.safetensors")
        coral("-C", str(streamed), "import", str(src), "-m", f"v{step}")
        with Repository(whole) as repo:
            repo.add_all_weights({n: a.copy() for n, a in arrays(step).items()})
            repo.commit(f"v{step}")
    return streamed, whole


def test_same_ids_chunks_and_records(pair: tuple[Path, Path]) -> None:
    streamed, whole = pair
    a, b = records(streamed), records(whole)
    for step in ("0", "1"):
        ids_a, chunks_a, manifests_a = a[step]
        ids_b, chunks_b, manifests_b = b[step]
        assert ids_a == ids_b
        assert manifests_a == manifests_b
        assert chunks_a.keys() == chunks_b.keys()
        assert chunks_a == chunks_b
    assert len(a["0"][1]) > 20  # many chunks per tensor


def test_export_is_bit_exact_and_lazy_reads(pair: tuple[Path, Path], tmp_path: Path) -> None:
    streamed, _ = pair
    out = tmp_path / "out.safetensors"
    coral("-C", str(streamed), "export", "HEAD", str(out))
    back = read_safetensors(out).weights
    for name, arr in arrays(1).items():
        got = np.asarray(back[name])
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert got.tobytes() == arr.tobytes(), name
    with Repository(streamed) as repo:
        lazy = repo.get_all_weights("HEAD", lazy=True)
        assert not any(w.is_loaded for w in lazy.values())
        for name, arr in arrays(1).items():
            assert lazy[name].data.tobytes() == arr.tobytes(), name
        quant = lazy["quant.int8"].data  # one FULL raw chunk: mapped from the pack
        assert not quant.flags.writeable
        tid = repo.get_tree("HEAD").entries["quant.int8"].tensor_id
        assert repo.store.mapped(tid) is not None
        bias = repo.get_tree("HEAD").entries["encoder.weight"].tensor_id
        assert repo.store.mapped(bias) is None  # several compressed chunks: decoded
        chunks = list(repo.store.iter_chunks(bias))
        assert len(chunks) > 1
        assert b"".join(c.tobytes() for c in chunks) == arrays(1)["encoder.weight"].tobytes()


def test_damaged_chunk_fails_export_and_writes_nothing(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    streamed, _ = pair
    with Repository(streamed) as repo:
        tid = repo.get_tree("HEAD").entries["quant.int8"].tensor_id
        chunk = repo.store.manifest(tid).chunks[0]
        where = repo.store.where(CHUNK, chunk)
    assert where is not None
    pack, offset = where.rsplit(" @ ", 1)
    path = Path(pack.split("://", 1)[-1]) if "://" in pack else Path(pack)
    data = bytearray(path.read_bytes())
    data[int(offset) + 200] ^= 0xFF  # inside the raw plane
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    out = tmp_path / "bad.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(streamed), "export", "HEAD", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    with Repository(streamed) as repo:
        assert repo.store.mapped(tid) is None  # the map is checked, and refused

"""Writing safetensors checkpoints piece by piece (never whole in memory), for the tests."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

Pieces = Callable[[], Iterator[bytes]]


def write_checkpoint(path: Path, tensors: dict[str, tuple[str, list[int], int, Pieces]]) -> Path:
    """name -> (safetensors dtype code, shape, byte size, a function yielding its bytes)."""
    header: dict[str, object] = {}
    offset = 0
    for name, (code, shape, nbytes, _) in tensors.items():
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, (_, _, nbytes, pieces) in tensors.items():
            written = 0
            for piece in pieces():
                f.write(piece)
                written += len(piece)
            assert written == nbytes
    return path


def low_entropy(nbytes: int, seed: int, piece: int = 4 << 20) -> Pieces:
    """float32 bytes from a small alphabet that drifts per piece: compressible, not constant,
    and no two pieces alike (so nothing deduplicates)."""

    def pieces() -> Iterator[bytes]:
        rng = np.random.default_rng(seed)
        alphabet = (rng.standard_normal(256) * 0.02).astype(np.float32)
        done = 0
        while done < nbytes:
            size = min(piece, nbytes - done)
            idx = rng.integers(0, 16, size // 4, dtype=np.uint8)
            values = alphabet[idx] + np.float32(done / (1 << 40))
            yield values.tobytes()
            done += size

    return pieces


def model(nbytes: int, tensor_bytes: int = 64 << 20, seed: int = 0) -> dict:
    """A checkpoint of `nbytes` in float32 tensors of `tensor_bytes` each."""
    count = max(1, nbytes // tensor_bytes)
    size = nbytes // count // 4096 * 4096
    return {
        f"layers.{i}.weight": ("F32", [size // 4096, 1024], size, low_entropy(size, seed + i))
        for i in range(count)
    }

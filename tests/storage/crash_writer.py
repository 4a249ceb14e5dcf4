"""Writes tensors into a store forever, printing `STORED <id> <seed>` after each durable store.

Run by test_crash_safety.py, which kills it with SIGKILL at random moments.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore


def tensor_for(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(rng.integers(1, 300_000))) * 0.05).astype(np.float32)


def main() -> None:
    store = PackStore(Path(sys.argv[1]), StoreConfig(chunk_bytes=64 << 10))
    seed = int(sys.argv[2])
    previous: str | None = None
    while True:
        arr = tensor_for(seed)
        tid = store.store(WeightTensor(arr), reference=previous)
        print(f"STORED {tid} {seed}", flush=True)
        previous = tid
        seed += 1


if __name__ == "__main__":
    main()

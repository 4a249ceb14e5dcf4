"""Stores versions of a few tensors with references and repacks after each, forever.

Prints `STORED <tensor id> <seed>` after each durable store (`version_array(seed)` rebuilds
the values). Run by test_crash_repack.py, which kills it with SIGKILL at random moments:

    python -m tests.storage.crash_repacker STORE_ROOT RUN
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore

STREAMS = 3  # tensors evolving side by side
VERSIONS = 300  # versions of each stream per run (a run is killed long before)
CONFIG = StoreConfig(chunk_bytes=4096, max_chain_depth=4, fsync=True)


def seed_for(run: int, stream: int, version: int) -> int:
    return run * 1000 + version * STREAMS + stream


def version_array(seed: int) -> np.ndarray:
    """Values for a seed from `seed_for`: the stream's base values (the same in every run)
    plus a sparse update of this version, so versions share most of their chunks."""
    run, rest = divmod(seed, 1000)
    version, stream = divmod(rest, STREAMS)
    base = np.random.default_rng(stream)
    size = (6000, 9000, 15000)[stream]
    arr = (base.standard_normal(size) * 0.05).astype(np.float32)
    upd = np.random.default_rng([run, stream, version])
    arr[upd.integers(0, size, 40)] += np.float32(1e-3 * (1 + version % 7))
    if version % 5 == 4:  # now and then a version touches every chunk
        arr[::997] += np.float32(1e-4)
    return arr


def main() -> None:
    store = PackStore(Path(sys.argv[1]), CONFIG)
    run = int(sys.argv[2])
    previous: list[str | None] = [None] * STREAMS
    for version in range(VERSIONS):
        for stream in range(STREAMS):
            seed = seed_for(run, stream, version)
            tid = store.store(WeightTensor(version_array(seed)), reference=previous[stream])
            print(f"STORED {tid} {seed}", flush=True)
            previous[stream] = tid
        store.repack()
    store.close()


if __name__ == "__main__":
    main()

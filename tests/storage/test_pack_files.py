"""`PackFiles`: reading many packs keeps a bounded number of descriptors open."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from coral.core.weight_tensor import WeightTensor
from coral.storage.pack_files import PackFiles
from coral.storage.pack_store import PackStore


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_store_reading_more_packs_than_the_limit_does_not_leak_descriptors(
    tmp_path: Path,
) -> None:
    store = PackStore(tmp_path / "objects")
    ids = [store.store(WeightTensor(np.full(8, i, np.float32))) for i in range(300)]  # 300 packs
    before = _open_fds()
    for _ in range(2):
        for i, tid in enumerate(ids):
            assert store.load(tid).data[0] == i
    assert store._packs.open_count() <= 256
    assert _open_fds() - before <= 256
    store.close()
    assert store._packs.open_count() == 0


def test_a_descriptor_leaves_the_cache_only_after_its_last_reader(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 4)
    files = PackFiles(lambda pack_id: tmp_path / pack_id, limit=1)
    assert files.pread("a", 2, 0) == b"aa"
    assert files.open_count() == 1
    assert files.pread("b", 4, 0) == b"bbbb"  # "a" leaves the cache, closed: nobody reads it
    assert files.open_count() == 1
    files.forget("b")
    assert files.open_count() == 0
    # many threads at once: every read returns its bytes, nothing stays open after forget
    errors: list[BaseException] = []

    def read(name: str) -> None:
        try:
            for _ in range(200):
                assert files.pread(name, 1, 0) == name.encode()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in "abab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files.forget("a")
    files.forget("b")
    assert files.open_count() == 0

"""The API under `--cluster`: `EncodePool` (local threads) and `DaskPool` run the same pure
tasks to the same bytes; the choice of scheduler (flag > CORAL_DASK_SCHEDULER > config);
decoding on a worker falls back to a local read whose error names the damaged pack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError, CorruptObjectError
from coral.storage.chunk_encoder import Reference, encode_best, encode_full
from coral.storage.chunk_tasks import decode_records, gather_records
from coral.storage.cluster import ENV_VAR, ClusterError, ClusterSettings, cluster_settings
from coral.storage.config import StoreConfig
from coral.storage.encode_pool import DaskPool, EncodePool, open_pool
from coral.storage.pack_store import PackStore
from tests.servers.dask import DaskCluster
from tests.servers.process import free_port
from tests.storage.damage import flip_record_byte


def test_local_pool_runs_tasks_in_the_caller_and_closures_on_threads() -> None:
    pool = open_pool(ClusterSettings(), 3)
    assert type(pool) is EncodePool and not pool.remote and pool.workers == 3
    assert pool.run(sum, [1, 2, 3]) == 6
    assert list(pool.map(lambda x: x * x, range(10))) == [x * x for x in range(10)]
    assert pool.submit(pow, 2, 10).result() == 1024
    assert pool.describe() == "3 local threads"
    pool.shutdown()


def test_scheduler_choice_flag_then_environment_then_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = {"cluster": {"scheduler": "10.0.0.5:8786", "timeout": 4, "retries": 0}}
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert cluster_settings({}) == ClusterSettings()
    assert cluster_settings(config) == ClusterSettings("tcp://10.0.0.5:8786", 4, 0)
    monkeypatch.setenv(ENV_VAR, "tls://sched:9000")
    assert cluster_settings(config).scheduler == "tls://sched:9000"
    assert cluster_settings(config, "tcp://h:1").scheduler == "tcp://h:1"
    assert cluster_settings(config, "local").scheduler is None
    monkeypatch.setenv(ENV_VAR, "")  # set but empty: local threads
    assert cluster_settings(config).scheduler is None
    for bad in ("http://h:1", "tcp://h", "tcp://:80", "tcp://h:1/path"):
        with pytest.raises(CoralError, match="not a Dask scheduler address") as exc:
            cluster_settings({}, bad)
        assert exc.value.hint and "tcp://" in exc.value.hint
    with pytest.raises(CoralError, match=r"bad \[cluster\] settings"):
        cluster_settings({"cluster": {"retries": -1}})


def test_unreachable_scheduler_fails_at_once() -> None:
    dead = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterError, match=f"cannot reach Dask scheduler {dead}") as exc:
        open_pool(ClusterSettings(dead, timeout=30), 2)
    assert exc.value.hint and "--cluster local" in exc.value.hint


def test_dask_pool_encodes_to_the_same_bytes(cluster: DaskCluster) -> None:
    config = StoreConfig(chunk_bytes=4096, fsync=False)
    rng = np.random.default_rng(1)
    raw = rng.standard_normal(1024).astype(np.float32).view(np.uint8)
    ref = Reference("0" * 64, (raw.view(np.float32) + np.float32(1e-3)).view(np.uint8), 0)
    pool = open_pool(ClusterSettings(cluster.address), 1)
    try:
        assert isinstance(pool, DaskPool) and pool.remote and pool.workers >= 2
        assert pool.describe().endswith("(2 workers, 2 threads)")
        for task, args in (
            (encode_full, ("a" * 64, raw, 4, "float32", config)),
            (encode_best, ("a" * 64, raw, 4, "float32", ref, config)),
        ):
            assert pool.run(task, *args) == task(*args)  # type: ignore[operator]
    finally:
        pool.shutdown()


def test_decoding_on_a_worker_falls_back_to_a_local_error_naming_the_pack(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    store = PackStore(tmp_path / "store", StoreConfig(chunk_bytes=4096, fsync=False))
    data = np.random.default_rng(2).standard_normal(4096).astype(np.float32)
    tid = store.store(WeightTensor(data))
    newer = store.store(WeightTensor(data + np.float32(1e-4)), reference=tid)
    store.close()
    store.use_cluster(ClusterSettings(cluster.address))
    try:
        assert np.array_equal(store.load(tid).data, data)  # decoded on the workers
        chunk = store.manifest(newer).chunks[1]
        records = gather_records(store, chunk)
        remote = store.pool.run(decode_records, chunk, records)
        assert np.array_equal(decode_records(chunk, records), remote)
        pack = flip_record_byte(store, chunk, offset=40)
        with pytest.raises(CorruptObjectError) as exc:
            store.load(newer)
        assert str(pack.name) in (exc.value.message + str(exc.value))
    finally:
        store.close()

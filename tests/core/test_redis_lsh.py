"""RedisLSHIndex against a real redis-server: same answers as LSHIndex, shared between clients."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from coral.core.lsh_index import LSHConfig, LSHIndex
from tests.servers.redis_server import redis_server

redis = pytest.importorskip("redis")

pytestmark = pytest.mark.server
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"test-{request.node.name}"


def test_same_answers_as_in_memory_index(redis_url: str, namespace: str) -> None:
    from coral.core.redis_lsh import RedisLSHIndex

    rng = np.random.default_rng(0)
    dim, n = 2048, 600
    data = rng.standard_normal((n, dim)).astype(np.float32)
    keys = [f"w{i}" for i in range(n)]
    config = LSHConfig(num_hyperplanes=8, num_tables=4, max_candidates=25)
    local = LSHIndex(dim, config)
    shared = RedisLSHIndex(dim, config, redis_url=redis_url, namespace=namespace)
    local.insert_batch(data, keys)
    shared.insert_batch(data[:300], keys[:300])
    for i in range(300, n):  # one at a time too
        shared.insert(data[i], keys[i])

    assert len(shared) == len(local) == n
    for i in (0, 123, 450, 599):
        near = data[i] + 0.05 * rng.standard_normal(dim).astype(np.float32)
        got = shared.query(near)
        assert got[0] == f"w{i}"
        assert got == local.query(near)
    q = rng.standard_normal(dim).astype(np.float32)
    assert shared.query(q, max_candidates=60) == local.query(q, max_candidates=60)

    stats, local_stats = shared.get_stats(), local.get_stats()
    for key in ("num_vectors", "num_tables", "total_buckets", "avg_bucket_size"):
        assert stats[key] == local_stats[key]


def test_remove_reinsert_and_bucket_counts(redis_url: str, namespace: str) -> None:
    from coral.core.redis_lsh import RedisLSHIndex

    rng = np.random.default_rng(1)
    index = RedisLSHIndex(256, LSHConfig(), redis_url=redis_url, namespace=namespace)
    x = rng.standard_normal(256)
    index.insert(x, "a")
    index.insert(x, "a")
    index.insert(rng.standard_normal(256), "b")
    assert len(index) == 2 and "a" in index
    assert index.query(x, 1) == ["a"]
    assert index.remove("a") and not index.remove("a")
    assert "a" not in index and "a" not in index.query(x)
    assert index.get_stats()["total_buckets"] == 4  # b alone: one bucket per table
    index.remove("b")
    assert index.get_stats()["total_buckets"] == 0 and len(index) == 0
    with pytest.raises(TypeError):
        index.insert(x, 7)


def test_two_clients_share_one_index(redis_url: str, namespace: str) -> None:
    """Two clients (as on two machines) see each other's inserts; namespaces stay apart."""
    from coral.core.redis_lsh import RedisLSHIndex

    rng = np.random.default_rng(2)
    machine_a = RedisLSHIndex(512, LSHConfig(), redis_url=redis_url, namespace=namespace)
    machine_b = RedisLSHIndex(512, LSHConfig(), redis_url=redis_url, namespace=namespace)
    elsewhere = RedisLSHIndex(512, LSHConfig(), redis_url=redis_url, namespace=namespace + "-other")
    x = rng.standard_normal(512)
    machine_a.insert(x, "from-a")
    assert machine_b.query(x + 0.01 * rng.standard_normal(512))[0] == "from-a"
    assert len(elsewhere) == 0 and elsewhere.query(x) == []
    machine_a.clear()
    assert len(machine_b) == 0


def test_concurrent_writers(redis_url: str, namespace: str) -> None:
    from coral.core.redis_lsh import RedisLSHIndex

    rng = np.random.default_rng(3)
    data = rng.standard_normal((400, 300)).astype(np.float32)

    def writer(part: int) -> None:
        index = RedisLSHIndex(300, LSHConfig(), redis_url=redis_url, namespace=namespace)
        for i in range(part, 400, 4):
            index.insert(data[i], f"k{i % 200}")  # overlapping keys: replacements race too

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    index = RedisLSHIndex(300, LSHConfig(), redis_url=redis_url, namespace=namespace)
    assert len(index) == 200
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    members = 0
    buckets = 0
    for name in client.scan_iter(match=f"{index.prefix}:b:*"):
        members += client.scard(name)
        buckets += 1
    assert members == 200 * 4  # every key in exactly one bucket per table
    assert index.get_stats()["total_buckets"] == buckets


_CHILD = """
import sys
import numpy as np
from coral.core.lsh_index import LSHConfig
from coral.core.redis_lsh import RedisLSHIndex
url, ns = sys.argv[1], sys.argv[2]
x = np.random.default_rng(11).standard_normal(1000)
RedisLSHIndex(1000, LSHConfig(), redis_url=url, namespace=ns).insert(x, "child")
"""


def test_other_process_inserts_are_found(redis_url: str, namespace: str) -> None:
    from coral.core.redis_lsh import RedisLSHIndex

    subprocess.run(
        [sys.executable, "-c", _CHILD, redis_url, namespace], cwd=REPO_ROOT, check=True, timeout=300
    )
    index = RedisLSHIndex(1000, LSHConfig(), redis_url=redis_url, namespace=namespace)
    x = np.random.default_rng(11).standard_normal(1000)
    assert index.query(x + 0.02 * np.random.default_rng(0).standard_normal(1000)) == ["child"]

"""SimHash fingerprints and indexes (spec §8.5): examples run unchanged, answers make sense."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.core.projection import BLOCK_ELEMENTS, RandomProjector
from coral.core.simhash import MultiDimSimHashIndex, SimHash, SimHashConfig, SimHashIndex
from coral.core.weight_tensor import WeightTensor

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(1234)


# -- the spec's examples ------------------------------------------------------------------------
def test_spec_simhash_fundamentals(capsys: pytest.CaptureFixture[str]) -> None:
    config = SimHashConfig(
        num_bits=64,  # 64 or 128 bits
        num_hyperplanes=64,  # Match num_bits for standard SimHash
        seed=42,
        similarity_threshold=0.1,  # 10% of bits can differ
    )

    hasher = SimHash(config)

    weight_a = np.random.randn(1000, 1000).astype(np.float32)
    weight_b = weight_a + np.random.randn(1000, 1000).astype(np.float32) * 0.01

    fp_a = hasher.compute_fingerprint(weight_a)
    fp_b = hasher.compute_fingerprint(weight_b)

    distance = SimHash.hamming_distance(fp_a, fp_b)
    print(f"Hamming distance: {distance} bits")

    is_similar = hasher.are_similar(fp_a, fp_b)
    print(f"Similar: {is_similar}")

    estimated_sim = hasher.estimated_similarity(fp_a, fp_b)
    print(f"Estimated similarity: {estimated_sim:.4f}")

    assert is_similar
    assert distance <= 2
    assert estimated_sim > 0.99
    out = capsys.readouterr().out
    assert "Similar: True" in out

    unrelated = hasher.compute_fingerprint(np.random.randn(1000, 1000).astype(np.float32))
    assert not hasher.are_similar(fp_a, unrelated)
    assert 16 <= SimHash.hamming_distance(fp_a, unrelated) <= 48
    assert abs(hasher.estimated_similarity(fp_a, unrelated)) < 0.6


def test_spec_batch_processing_and_index() -> None:
    config = SimHashConfig(num_bits=64, num_hyperplanes=64, seed=42, similarity_threshold=0.1)
    hasher = SimHash(config)
    weights = [np.random.randn(100, 100) for _ in range(60)]
    weights[7] = weights[3] + np.random.randn(100, 100) * 0.01  # a planted near-duplicate

    fingerprints = hasher.compute_fingerprint_batch(weights)

    pairs = []
    for i, fp_i in enumerate(fingerprints):
        for j in range(i + 1, len(fingerprints)):
            if hasher.are_similar(fp_i, fingerprints[j]):
                print(f"Weights {i} and {j} are similar")
                pairs.append((i, j))
    assert pairs == [(3, 7)]
    # batch == one at a time
    assert fingerprints == [hasher.compute_fingerprint(w) for w in weights]

    index = SimHashIndex(config)
    for i, weight in enumerate(weights):
        index.insert(weight, vector_id=f"weight_{i}")

    query = np.random.randn(100, 100)
    candidates = index.query(query, max_candidates=10, threshold=0.15)
    print(f"Found {len(candidates)} similar weights:")
    for weight_id, hamming_dist in candidates:
        print(f"  {weight_id}: distance={hamming_dist}")
    assert candidates == []  # an unrelated random matrix matches nothing

    near = weights[3] + np.random.randn(100, 100) * 0.001
    found = index.query(near, max_candidates=10, threshold=0.15)
    assert [wid for wid, _ in found][:2] == ["weight_3", "weight_7"]
    assert found[0][1] <= found[1][1] <= 9

    stats = index.get_stats()
    print(f"Index size: {stats['num_vectors']}")
    print(f"Unique fingerprints: {stats['num_unique_fingerprints']}")
    print(f"Avg vectors per fingerprint: {stats['avg_vectors_per_fingerprint']:.2f}")
    assert stats["num_vectors"] == 60
    assert stats["num_unique_fingerprints"] == 60
    assert stats["avg_vectors_per_fingerprint"] == pytest.approx(1.0)


def test_spec_multidim_index() -> None:
    config = SimHashConfig()
    multi_index = MultiDimSimHashIndex(config)

    conv2 = np.random.randn(512, 512)
    multi_index.insert(np.random.randn(100, 100), "conv1")
    multi_index.insert(conv2, "conv2")
    multi_index.insert(np.random.randn(10, 10), "bias")

    similar = multi_index.query(np.random.randn(512, 512))
    print(f"Similar weights: {similar}")
    assert similar == []
    assert [wid for wid, _ in multi_index.query(conv2 * 1.5)] == ["conv2"]
    assert multi_index.query(np.random.randn(7, 7)) == []

    stats = multi_index.get_stats()
    print(f"Dimensions indexed: {stats['num_dimensions']}")
    print(f"Per-dimension stats: {stats['dimension_stats']}")
    assert stats["num_dimensions"] == 3
    assert stats["dimension_stats"][(512, 512)]["num_vectors"] == 1


def test_spec_fingerprint_size_tradeoffs(capsys: pytest.CaptureFixture[str]) -> None:
    configs = [
        SimHashConfig(num_bits=32, num_hyperplanes=32),
        SimHashConfig(num_bits=64, num_hyperplanes=64),
        SimHashConfig(num_bits=128, num_hyperplanes=128),
    ]

    weights = [np.random.randn(200, 200) for _ in range(20)]  # spec: 100 of 1000x1000

    for config in configs:
        hasher = SimHash(config)

        start = time.time()
        fingerprints = hasher.compute_fingerprint_batch(weights)
        elapsed = time.time() - start

        unique_fps = len(set(map(str, fingerprints)))
        collision_rate = 1 - (unique_fps / len(fingerprints))

        print(f"{config.num_bits}-bit SimHash:")
        print(f"  Computation time: {elapsed:.3f}s")
        print(f"  Unique fingerprints: {unique_fps}/{len(fingerprints)}")
        print(f"  Collision rate: {collision_rate:.2%}")
        print(f"  Memory per fingerprint: {config.num_bits // 8} bytes")
        assert all(0 <= fp < (1 << config.num_bits) for fp in fingerprints)
        if config.num_bits >= 64:
            assert unique_fps == len(weights)
    assert "128-bit SimHash:" in capsys.readouterr().out


# -- determinism --------------------------------------------------------------------------------
_CHILD = """
import json, sys
import numpy as np
from coral.core.simhash import SimHash, SimHashConfig
order = json.loads(sys.argv[1])
rng = np.random.default_rng(7)
shapes = [(300, 300), (70000,), (3, 5), (200000,)]
tensors = [rng.standard_normal(s).astype(np.float32) for s in shapes]
h = SimHash(SimHashConfig(num_bits=128, num_hyperplanes=128, seed=9))
fps = {i: h.compute_fingerprint(tensors[i]) for i in order}
print(json.dumps({str(i): str(fps[i]) for i in sorted(fps)}))
"""


def _child_fingerprints(order: list[int]) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(order)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_fingerprints_identical_across_processes_and_orders() -> None:
    first = _child_fingerprints([0, 1, 2, 3])
    second = _child_fingerprints([3, 2, 1, 0])
    assert first == second
    rng = np.random.default_rng(7)
    tensors = [
        rng.standard_normal(s).astype(np.float32) for s in [(300, 300), (70000,), (3, 5), (200000,)]
    ]
    h = SimHash(SimHashConfig(num_bits=128, num_hyperplanes=128, seed=9))
    assert {str(i): str(h.compute_fingerprint(t)) for i, t in enumerate(tensors)} == first


def test_fingerprint_depends_on_seed_not_history() -> None:
    x = np.random.randn(5000).astype(np.float32)
    a = SimHash(SimHashConfig(seed=1)).compute_fingerprint(x)
    SimHash(SimHashConfig(seed=1)).compute_fingerprint(np.random.randn(123456))
    assert SimHash(SimHashConfig(seed=1)).compute_fingerprint(x) == a
    assert SimHash(SimHashConfig(seed=2)).compute_fingerprint(x) != a


# -- robustness ---------------------------------------------------------------------------------
def test_streamed_projection_of_large_tensor_has_bounded_memory() -> None:
    big = np.random.randn(2048, 2048).astype(np.float32)  # 16 MiB, 64 blocks
    hasher = SimHash(SimHashConfig(seed=77))
    tracemalloc.start()
    try:
        fp = hasher.compute_fingerprint(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a dense projection matrix would be 4M x 64 floats = 1 GiB; one chunk plus the cached
    # 65536 x 64 plane matrix is a few tens of MiB
    assert peak < 64 << 20
    noisy = big + np.random.randn(2048, 2048).astype(np.float32) * 0.01
    assert SimHash.hamming_distance(fp, hasher.compute_fingerprint(noisy)) <= 2


def test_projection_blocks_cover_whole_tensor() -> None:
    # a change confined to the last (partial) block still moves the projection
    p = RandomProjector(64, 3)
    x = np.zeros(3 * BLOCK_ELEMENTS + 10, dtype=np.float32)
    x[-5:] = 1.0
    y = x.copy()
    y[-5:] = -1.0
    assert (p.project(x) > 0).tolist() != (p.project(y) > 0).tolist()
    assert np.allclose(p.project(x), -p.project(y))


def test_nan_inf_and_scale() -> None:
    hasher = SimHash()
    x = np.random.randn(400, 300)
    clean = hasher.compute_fingerprint(x)
    dirty = x.copy()
    dirty[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
    zeroed = x.copy()
    zeroed[0, :5] = 0.0
    assert hasher.compute_fingerprint(dirty) == hasher.compute_fingerprint(zeroed)
    assert SimHash.hamming_distance(clean, hasher.compute_fingerprint(dirty)) <= 3
    # scale invariance, also far outside float32's range (exact powers of two)
    assert hasher.compute_fingerprint(x * 2.0**900) == clean
    assert hasher.compute_fingerprint(x * 2.0**-1000) == clean
    assert hasher.compute_fingerprint(x.astype(np.float32)) == hasher.compute_fingerprint(
        x.astype(np.float32).astype(np.float64)
    )


@pytest.mark.parametrize(
    "dtype",
    [
        np.float16,
        ml_dtypes.bfloat16,
        ml_dtypes.float8_e4m3fn,
        np.int8,
        np.int64,
        np.uint16,
        np.complex64,
    ],
)
def test_every_dtype_fingerprints(dtype: object) -> None:
    hasher = SimHash()
    base = np.random.randn(64, 64) * 10
    arr = base.astype(dtype)  # type: ignore[call-overload]
    fp = hasher.compute_fingerprint(arr)
    assert fp == hasher.compute_fingerprint(WeightTensor(arr))
    assert 0 <= fp < 1 << 64
    assert SimHash.hamming_distance(fp, hasher.compute_fingerprint(arr)) == 0


def test_degenerate_tensors() -> None:
    hasher = SimHash()
    assert hasher.compute_fingerprint(np.zeros((0, 4), np.float32)) == 0
    assert hasher.compute_fingerprint(np.zeros((3, 3))) == 0
    assert hasher.compute_fingerprint(np.float32(2.5)) == hasher.compute_fingerprint(
        np.array([7.0])
    )
    assert hasher.compute_fingerprint(np.array([True, False, True])) >= 0


def test_hamming_accepts_other_representations() -> None:
    a, b = 0b1011, 0b0010
    assert SimHash.hamming_distance(a, b) == 2
    assert SimHash.hamming_distance(np.uint64(a), b) == 2
    assert SimHash.hamming_distance(np.array([a], dtype=np.uint64), b.to_bytes(8, "little")) == 2


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_hyperplanes"):
        SimHashConfig(num_bits=128)
    with pytest.raises(ValueError):
        SimHashConfig(similarity_threshold=1.5)


def test_index_remove_reinsert_and_radius() -> None:
    index = SimHashIndex(SimHashConfig(similarity_threshold=0.1))
    base = np.random.randn(50, 50)
    index.insert(base, "a")
    index.insert(base * 2, "b")  # same fingerprint
    assert index.get_stats()["num_unique_fingerprints"] == 1
    assert [i for i, _ in index.query(base)] == ["a", "b"]
    assert index.remove("a") and not index.remove("a")
    assert [i for i, _ in index.query(base)] == ["b"]
    index.insert(np.random.randn(50, 50), "b")  # re-insert replaces
    assert index.query(base) == []
    assert len(index) == 1
    # a radius so large that probing would cost more than comparing everything still works
    assert [i for i, _ in index.query(base, threshold=1.0)] == ["b"]


def test_index_query_is_exact_within_radius() -> None:
    rng = np.random.default_rng(5)
    config = SimHashConfig(similarity_threshold=0.2)
    index = SimHashIndex(config)
    fps = [int(v) for v in rng.integers(0, 2**63, size=3000, dtype=np.int64)]
    for i, fp in enumerate(fps):
        index.insert_fingerprint(fp, i)
    for q in fps[:40]:
        probe = q ^ (1 << 3) ^ (1 << 40) ^ (1 << 61)
        got = index.query_fingerprint(probe, max_candidates=10_000, threshold=0.2)
        want = sorted(
            (
                (i, (fp ^ probe).bit_count())
                for i, fp in enumerate(fps)
                if (fp ^ probe).bit_count() <= 12
            ),
            key=lambda t: (t[1], t[0]),
        )
        assert got == want

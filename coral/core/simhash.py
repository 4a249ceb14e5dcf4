"""SimHash fingerprints of weight tensors and an index for near-duplicate lookup (chapter 8.5).

A fingerprint is a Python `int` of `num_bits` bits: bit p is set when the tensor's dot product
with seeded random hyperplane p is positive (random-hyperplane LSH for cosine similarity, see
`coral.core.projection`). The fraction of differing bits between two fingerprints estimates
angle / pi, so `estimated_similarity = cos(pi * hamming / num_bits)`.

`SimHashIndex` finds every stored fingerprint within a Hamming radius without scanning, by
multi-index hashing: the fingerprint is cut into bands of at most 16 bits; if two fingerprints
differ in at most r bits, then by pigeonhole some band differs in at most r // num_bands bits,
so probing each band's buckets within that radius finds all of them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from coral.core.projection import RandomProjector, as_numpy, pack_bits, pack_bits_rows

Fingerprint = int

_BAND_BITS = 16
_MAX_PROBES_PER_BAND = 4096  # beyond this, a query compares against every stored fingerprint


@dataclass
class SimHashConfig:
    """SimHash settings.

    num_bits: fingerprint length (64 or 128 usual); num_hyperplanes: hyperplanes projected,
    one per bit, so it must equal num_bits; seed: hyperplane seed (fingerprints are comparable
    only under one seed); similarity_threshold: fraction of bits that may differ for two
    fingerprints to count as similar (0.1 = 10%).
    """

    num_bits: int = 64
    num_hyperplanes: int = 64
    seed: int = 42
    similarity_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.num_bits < 1:
            raise ValueError(f"num_bits must be positive, got {self.num_bits}")
        if self.num_hyperplanes != self.num_bits:
            raise ValueError(
                f"num_hyperplanes ({self.num_hyperplanes}) must equal num_bits ({self.num_bits}):"
                " each bit is the sign of one hyperplane projection"
            )
        if not 0.0 <= self.similarity_threshold <= 1.0:
            raise ValueError("similarity_threshold is a fraction of bits, in [0, 1]")

    @property
    def max_hamming(self) -> int:
        """Largest Hamming distance that counts as similar."""
        return max_hamming(self.num_bits, self.similarity_threshold)


def max_hamming(num_bits: int, fraction: float) -> int:
    # a small epsilon so that e.g. 0.1 * 70 = 7.000000000000001 still gives 7
    return math.floor(fraction * num_bits + 1e-9)


def to_int(fp: Any) -> int:
    """A fingerprint as an int (accepts int, numpy integers, bytes, numpy uint arrays)."""
    if isinstance(fp, int):
        return fp
    if isinstance(fp, np.integer):
        return int(fp)
    if isinstance(fp, (bytes, bytearray, memoryview)):
        return int.from_bytes(bytes(fp), "little")
    if isinstance(fp, np.ndarray) and fp.dtype.kind == "u":
        return int.from_bytes(fp.astype(fp.dtype.newbyteorder("<")).tobytes(), "little")
    raise TypeError(f"not a fingerprint: {type(fp).__name__}")


class SimHash:
    """Computes and compares SimHash fingerprints under one `SimHashConfig`."""

    def __init__(self, config: SimHashConfig | None = None) -> None:
        self.config = config or SimHashConfig()
        self._projector = RandomProjector(self.config.num_bits, self.config.seed)

    def compute_fingerprint(self, weight: Any) -> Fingerprint:
        """Fingerprint of an array, WeightTensor or torch tensor of any shape."""
        return pack_bits(self._projector.project(weight) > 0)

    def compute_fingerprint_batch(self, weights: Iterable[Any]) -> list[Fingerprint]:
        """Fingerprints of several tensors (same-size small ones share one matrix product)."""
        weights = list(weights)
        if not weights:
            return []
        return pack_bits_rows(self._projector.project_many(weights) > 0)

    @staticmethod
    def hamming_distance(fp_a: Any, fp_b: Any) -> int:
        """Number of differing bits."""
        return (to_int(fp_a) ^ to_int(fp_b)).bit_count()

    def are_similar(self, fp_a: Any, fp_b: Any, threshold: float | None = None) -> bool:
        """Whether at most `threshold` (default: config.similarity_threshold) of the bits differ."""
        frac = self.config.similarity_threshold if threshold is None else threshold
        return self.hamming_distance(fp_a, fp_b) <= max_hamming(self.config.num_bits, frac)

    def estimated_similarity(self, fp_a: Any, fp_b: Any) -> float:
        """Cosine similarity estimated from the fingerprints: cos(pi * hamming / num_bits)."""
        return math.cos(math.pi * self.hamming_distance(fp_a, fp_b) / self.config.num_bits)


@lru_cache(maxsize=64)
def _flip_masks(width: int, radius: int) -> tuple[int, ...]:
    """Every `width`-bit mask with at most `radius` bits set, fewest bits first."""
    masks = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(width), r):
            m = 0
            for b in bits:
                m |= 1 << b
            masks.append(m)
    return tuple(masks)


def _probe_count(width: int, radius: int) -> int:
    return sum(math.comb(width, r) for r in range(radius + 1))


class SimHashIndex:
    """Fingerprints of many tensors, queried by Hamming radius (multi-index hashing).

    Keeps only fingerprints, never the tensors. Inserting an id again replaces its entry.
    """

    def __init__(self, config: SimHashConfig | None = None) -> None:
        self.config = config or SimHashConfig()
        self.hasher = SimHash(self.config)
        nbits = self.config.num_bits
        self._bands = [
            (start, min(_BAND_BITS, nbits - start)) for start in range(0, nbits, _BAND_BITS)
        ]
        self._band_tables: list[dict[int, set[int]]] = [{} for _ in self._bands]
        self._ids_by_fp: dict[int, dict[Hashable, None]] = {}  # fingerprint -> ids, insertion order
        self._fp_by_id: dict[Hashable, int] = {}
        self._order: dict[Hashable, int] = {}
        self._counter = 0

    # -- writing ------------------------------------------------------------------------------
    def insert(self, vector: Any, vector_id: Hashable) -> Fingerprint:
        """Fingerprint `vector` and store it under `vector_id`; returns the fingerprint."""
        fp = self.hasher.compute_fingerprint(vector)
        self.insert_fingerprint(fp, vector_id)
        return fp

    def insert_batch(
        self, vectors: Sequence[Any], vector_ids: Sequence[Hashable]
    ) -> list[Fingerprint]:
        """Insert several tensors (fingerprinted together)."""
        if len(vectors) != len(vector_ids):
            raise ValueError("vectors and vector_ids differ in length")
        fps = self.hasher.compute_fingerprint_batch(vectors)
        for fp, vid in zip(fps, vector_ids, strict=True):
            self.insert_fingerprint(fp, vid)
        return fps

    def insert_fingerprint(self, fingerprint: Any, vector_id: Hashable) -> None:
        fp = to_int(fingerprint)
        if vector_id in self._fp_by_id:
            self.remove(vector_id)
        self._fp_by_id[vector_id] = fp
        self._order[vector_id] = self._counter
        self._counter += 1
        ids = self._ids_by_fp.get(fp)
        if ids is None:
            self._ids_by_fp[fp] = {vector_id: None}
            for table, value in zip(self._band_tables, self._band_values(fp), strict=True):
                table.setdefault(value, set()).add(fp)
        else:
            ids[vector_id] = None

    def remove(self, vector_id: Hashable) -> bool:
        """Forget `vector_id`; False when it was not stored."""
        fp = self._fp_by_id.pop(vector_id, None)
        if fp is None:
            return False
        del self._order[vector_id]
        ids = self._ids_by_fp[fp]
        del ids[vector_id]
        if not ids:
            del self._ids_by_fp[fp]
            for table, value in zip(self._band_tables, self._band_values(fp), strict=True):
                bucket = table[value]
                bucket.discard(fp)
                if not bucket:
                    del table[value]
        return True

    # -- reading ------------------------------------------------------------------------------
    def query(
        self, vector: Any, max_candidates: int = 10, threshold: float | None = None
    ) -> list[tuple[Hashable, int]]:
        """Ids whose fingerprints differ from `vector`'s in at most `threshold` (a fraction of
        bits; default config.similarity_threshold) of the bits, as (id, hamming), nearest first
        (ties: earliest inserted first), at most `max_candidates`."""
        return self.query_fingerprint(
            self.hasher.compute_fingerprint(vector),
            max_candidates=max_candidates,
            threshold=threshold,
        )

    def query_fingerprint(
        self, fingerprint: Any, max_candidates: int = 10, threshold: float | None = None
    ) -> list[tuple[Hashable, int]]:
        fp = to_int(fingerprint)
        frac = self.config.similarity_threshold if threshold is None else threshold
        radius = max_hamming(self.config.num_bits, frac)
        if max_candidates <= 0 or not self._ids_by_fp:
            return []
        band_radius = radius // len(self._bands)
        widest = max(w for _, w in self._bands)
        candidates: Iterable[int]
        if _probe_count(widest, band_radius) > _MAX_PROBES_PER_BAND:
            candidates = (
                self._ids_by_fp.keys()
            )  # radius so large that probing costs more than a scan
        else:
            found: set[int] = set()
            for (_, width), table, value in zip(
                self._bands, self._band_tables, self._band_values(fp), strict=True
            ):
                for mask in _flip_masks(width, band_radius):
                    bucket = table.get(value ^ mask)
                    if bucket:
                        found |= bucket
            candidates = found
        hits: list[tuple[int, int, Hashable]] = []
        for cand in candidates:
            dist = (cand ^ fp).bit_count()
            if dist <= radius:
                for vid in self._ids_by_fp[cand]:
                    hits.append((dist, self._order[vid], vid))
        hits.sort(key=lambda h: (h[0], h[1]))
        return [(vid, dist) for dist, _, vid in hits[:max_candidates]]

    def get_fingerprint(self, vector_id: Hashable) -> Fingerprint | None:
        return self._fp_by_id.get(vector_id)

    def __len__(self) -> int:
        return len(self._fp_by_id)

    def __contains__(self, vector_id: object) -> bool:
        return vector_id in self._fp_by_id

    def get_stats(self) -> dict[str, Any]:
        n = len(self._fp_by_id)
        unique = len(self._ids_by_fp)
        return {
            "num_vectors": n,
            "num_unique_fingerprints": unique,
            "avg_vectors_per_fingerprint": n / unique if unique else 0.0,
            "num_bits": self.config.num_bits,
            "num_bands": len(self._bands),
        }

    def _band_values(self, fp: int) -> list[int]:
        return [(fp >> start) & ((1 << width) - 1) for start, width in self._bands]


def shape_key(vector: Any) -> tuple[int, ...]:
    """The shape a multi-dimensional index files a tensor under."""
    shape = getattr(vector, "shape", None)
    if shape is None:
        shape = as_numpy(vector).shape
    return tuple(int(d) for d in shape)


class MultiDimSimHashIndex:
    """One `SimHashIndex` per tensor shape: a query only meets tensors of its own shape."""

    def __init__(self, config: SimHashConfig | None = None) -> None:
        self.config = config or SimHashConfig()
        self._indexes: dict[tuple[int, ...], SimHashIndex] = {}
        self._shape_of: dict[Hashable, tuple[int, ...]] = {}

    def insert(self, vector: Any, vector_id: Hashable) -> Fingerprint:
        shape = shape_key(vector)
        old = self._shape_of.get(vector_id)
        if old is not None and old != shape:
            self._indexes[old].remove(vector_id)
        self._shape_of[vector_id] = shape
        index = self._indexes.get(shape)
        if index is None:
            index = self._indexes[shape] = SimHashIndex(self.config)
        return index.insert(vector, vector_id)

    def query(
        self, vector: Any, max_candidates: int = 10, threshold: float | None = None
    ) -> list[tuple[Hashable, int]]:
        """Like `SimHashIndex.query`, among stored tensors of the same shape only."""
        index = self._indexes.get(shape_key(vector))
        if index is None:
            return []
        return index.query(vector, max_candidates=max_candidates, threshold=threshold)

    def remove(self, vector_id: Hashable) -> bool:
        shape = self._shape_of.pop(vector_id, None)
        if shape is None:
            return False
        index = self._indexes[shape]
        index.remove(vector_id)
        if not len(index):
            del self._indexes[shape]
        return True

    def __len__(self) -> int:
        return len(self._shape_of)

    def __contains__(self, vector_id: object) -> bool:
        return vector_id in self._shape_of

    def get_stats(self) -> dict[str, Any]:
        return {
            "num_vectors": len(self._shape_of),
            "num_dimensions": len(self._indexes),
            "dimension_stats": {shape: idx.get_stats() for shape, idx in self._indexes.items()},
        }

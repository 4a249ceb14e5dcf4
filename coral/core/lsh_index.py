"""Locality-sensitive hashing index for approximate nearest-neighbour search by cosine (8.6).

Each of `num_tables` hash tables files a vector under a `num_hyperplanes`-bit code: bit j of
table t is the sign of the vector's projection on seeded random hyperplane t*k + j (see
`coral.core.projection`: streamed, deterministic, independent of insertion order). A query
reads the query's own bucket in every table and then, query-directed multi-probe, the buckets
one bit away in the bits whose projections were closest to zero (those most likely to differ
for a near neighbour). It never touches vectors outside the probed buckets: the work is the
probed buckets' size, not the index's. Candidates are ranked by the Hamming distance of their
full code (all tables) to the query's, an estimate of their angle to it.

The index keeps codes and keys only, never the vectors: callers verify candidates themselves.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coral.core.projection import RandomProjector, as_numpy, flat_real
from coral.core.simhash import shape_key
from coral.errors import ShapeMismatchError


@dataclass
class LSHConfig:
    """LSH settings: `num_hyperplanes` bits per table code (1..64), `num_tables` tables,
    `seed` for the hyperplanes, `max_candidates` returned by a query unless it says otherwise."""

    num_hyperplanes: int = 8
    num_tables: int = 4
    seed: int = 42
    max_candidates: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.num_hyperplanes <= 64:
            raise ValueError(f"num_hyperplanes must be in [1, 64], got {self.num_hyperplanes}")
        if self.num_tables < 1:
            raise ValueError(f"num_tables must be at least 1, got {self.num_tables}")
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates must be at least 1, got {self.max_candidates}")


class _LSHBase(ABC):
    """Hashing, probing and ranking shared by the in-memory and the Redis index."""

    def __init__(self, vector_dim: int, config: LSHConfig | None = None) -> None:
        if int(vector_dim) < 0:
            raise ValueError(f"vector_dim must not be negative, got {vector_dim}")
        self.vector_dim = int(vector_dim)
        self.config = config or LSHConfig()
        k, tables = self.config.num_hyperplanes, self.config.num_tables
        self._projector = RandomProjector(k * tables, self.config.seed)
        self._bit_weights = np.left_shift(np.uint64(1), np.arange(k, dtype=np.uint64))

    # -- hashing ------------------------------------------------------------------------------
    def _check(self, vector: Any) -> np.ndarray:
        arr = as_numpy(vector)
        if arr.size != self.vector_dim:
            raise ShapeMismatchError(
                f"vector has {arr.size} elements, this index holds {self.vector_dim}"
            )
        return flat_real(arr)

    def _codes_from_projections(self, proj: np.ndarray) -> np.ndarray:
        k, tables = self.config.num_hyperplanes, self.config.num_tables
        bits = (proj > 0).reshape(len(proj), tables, k).astype(np.uint64)
        return (bits * self._bit_weights).sum(axis=2, dtype=np.uint64)

    def signature(self, vector: Any) -> tuple[np.ndarray, np.ndarray]:
        """(codes: uint64 per table, projections: float64 (tables, hyperplanes))."""
        proj = self._projector.project(self._check(vector))
        codes = self._codes_from_projections(proj[None, :])[0]
        return codes, proj.reshape(self.config.num_tables, self.config.num_hyperplanes)

    def codes_many(self, vectors: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Table codes (n, num_tables) of several vectors; a 2-D array means one per row."""
        if isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind not in "cb":
            if vectors.shape[1] != self.vector_dim:
                raise ShapeMismatchError(
                    f"rows have {vectors.shape[1]} elements, this index holds {self.vector_dim}"
                )
            proj = self._projector.project_rows(vectors)
        else:
            proj = self._projector.project_many([self._check(v) for v in vectors])
        return self._codes_from_projections(proj)

    def _probe_order(self, codes: np.ndarray, proj: np.ndarray) -> list[tuple[int, int]]:
        """Single-bit flips (table, code), most promising (smallest |projection|) first."""
        k = self.config.num_hyperplanes
        order = np.argsort(np.abs(proj).reshape(-1), kind="stable")
        tables = order // k
        flipped = codes[tables] ^ self._bit_weights[order % k]
        return list(zip(tables.tolist(), flipped.tolist(), strict=True))

    # -- querying -----------------------------------------------------------------------------
    def query(self, vector: Any, max_candidates: int | None = None) -> list[Hashable]:
        """Keys of up to `max_candidates` (default config.max_candidates) stored vectors likely
        to be close in cosine to `vector`, most likely first."""
        return [key for key, _ in self.query_scored(vector, max_candidates)]

    def query_scored(
        self, vector: Any, max_candidates: int | None = None
    ) -> list[tuple[Hashable, int]]:
        """Like `query`, with each key's Hamming distance over all table codes."""
        limit = self.config.max_candidates if max_candidates is None else int(max_candidates)
        if limit <= 0:
            return []
        codes, proj = self.signature(vector)
        tables = self.config.num_tables
        flips = self._probe_order(codes, proj)
        # own bucket in every table, plus one flip per table's worth of the best flips
        probes = [(t, int(codes[t])) for t in range(tables)] + flips[:tables]
        found = self._gather(probes, set())
        pos = tables
        while len(found) < limit and pos < len(flips):
            found = self._gather(flips[pos : pos + tables], found)
            pos += tables
        if not found:
            return []
        return self._rank(found, codes, limit)

    def _rank(self, members: set[Any], codes: np.ndarray, limit: int) -> list[tuple[Hashable, int]]:
        handles, cand_codes, order = self._candidate_codes(members)
        if not len(handles):
            return []
        dist = np.bitwise_count(cand_codes ^ codes[None, :]).sum(axis=1)
        ranked = np.lexsort((order, dist))[:limit]
        keys = self._keys_of([handles[i] for i in ranked.tolist()])
        return list(zip(keys, dist[ranked].tolist(), strict=True))

    @abstractmethod
    def _gather(self, probes: list[tuple[int, int]], found: set[Any]) -> set[Any]:
        """Add the members of the probed buckets (table, code) to `found`."""

    @abstractmethod
    def _candidate_codes(self, members: set[Any]) -> tuple[Any, np.ndarray, np.ndarray]:
        """(handles, codes (m, tables), insertion order) of the members still stored."""

    @abstractmethod
    def _keys_of(self, handles: list[Any]) -> list[Hashable]:
        """The keys of some handles returned by `_candidate_codes`."""


class LSHIndex(_LSHBase):
    """In-memory LSH index of vectors of one dimension (any shape with `vector_dim` elements).

    Inserting a key again replaces its entry.
    """

    def __init__(self, vector_dim: int, config: LSHConfig | None = None) -> None:
        super().__init__(vector_dim, config)
        self._tables: list[dict[int, set[int]]] = [{} for _ in range(self.config.num_tables)]
        self._slot_of: dict[Hashable, int] = {}
        self._keys: list[Hashable | None] = []
        self._codes = np.zeros((16, self.config.num_tables), dtype=np.uint64)

    # -- writing ------------------------------------------------------------------------------
    def insert(self, vec: Any, key: Hashable) -> None:
        """Hash `vec` and file it under `key`."""
        codes, _ = self.signature(vec)
        self._insert_codes(key, codes)

    def insert_batch(self, vectors: Sequence[Any] | np.ndarray, keys: Sequence[Hashable]) -> None:
        """Insert several vectors (a list, or a 2-D array of one vector per row) at once."""
        if len(vectors) != len(keys):
            raise ValueError("vectors and keys differ in length")
        for key, codes in zip(keys, self.codes_many(vectors), strict=True):
            self._insert_codes(key, codes)

    def _insert_codes(self, key: Hashable, codes: np.ndarray) -> None:
        if key in self._slot_of:
            self.remove(key)
        slot = len(self._keys)
        if slot == len(self._codes):
            grown = np.zeros((2 * len(self._codes), self.config.num_tables), dtype=np.uint64)
            grown[:slot] = self._codes
            self._codes = grown
        self._codes[slot] = codes
        self._keys.append(key)
        self._slot_of[key] = slot
        for table, code in zip(self._tables, codes.tolist(), strict=True):
            bucket = table.get(code)
            if bucket is None:
                table[code] = {slot}
            else:
                bucket.add(slot)

    def remove(self, key: Hashable) -> bool:
        """Forget `key`; False when it was not stored."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return False
        self._keys[slot] = None
        for table, code in zip(self._tables, self._codes[slot].tolist(), strict=True):
            bucket = table[code]
            bucket.discard(slot)
            if not bucket:
                del table[code]
        return True

    # -- reading ------------------------------------------------------------------------------
    def _gather(self, probes: list[tuple[int, int]], found: set[Any]) -> set[Any]:
        for t, code in probes:
            bucket = self._tables[t].get(code)
            if bucket:
                found |= bucket
        return found

    def _candidate_codes(self, members: set[Any]) -> tuple[Any, np.ndarray, np.ndarray]:
        slots = np.fromiter(members, dtype=np.int64, count=len(members))
        return slots, self._codes[slots], slots

    def _keys_of(self, handles: list[Any]) -> list[Hashable]:
        return [self._keys[s] for s in handles]

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def keys(self) -> list[Hashable]:
        """Stored keys, in insertion order."""
        return [k for k in self._keys if k is not None]

    def get_stats(self) -> dict[str, Any]:
        n = len(self._slot_of)
        buckets = sum(len(t) for t in self._tables)
        largest = max((len(b) for t in self._tables for b in t.values()), default=0)
        return {
            "num_vectors": n,
            "num_tables": self.config.num_tables,
            "num_hyperplanes": self.config.num_hyperplanes,
            "vector_dim": self.vector_dim,
            "total_buckets": buckets,
            "avg_bucket_size": n * self.config.num_tables / buckets if buckets else 0.0,
            "max_bucket_size": largest,
        }


class MultiDimLSHIndex:
    """One `LSHIndex` per tensor shape: a query only meets vectors of its own shape."""

    def __init__(self, config: LSHConfig | None = None) -> None:
        self.config = config or LSHConfig()
        self._indexes: dict[tuple[int, ...], LSHIndex] = {}
        self._shape_of: dict[Hashable, tuple[int, ...]] = {}

    def insert(self, vec: Any, key: Hashable) -> None:
        shape = shape_key(vec)
        old = self._shape_of.get(key)
        if old is not None and old != shape:
            self.remove(key)
        index = self._indexes.get(shape)
        if index is None:
            index = self._indexes[shape] = LSHIndex(math.prod(shape), self.config)
        index.insert(vec, key)
        self._shape_of[key] = shape

    def query(self, vec: Any, max_candidates: int | None = None) -> list[Hashable]:
        """Like `LSHIndex.query`, among stored vectors of the same shape only."""
        index = self._indexes.get(shape_key(vec))
        if index is None:
            return []
        return index.query(vec, max_candidates=max_candidates)

    def remove(self, key: Hashable) -> bool:
        shape = self._shape_of.pop(key, None)
        if shape is None:
            return False
        index = self._indexes[shape]
        index.remove(key)
        if not len(index):
            del self._indexes[shape]
        return True

    def index_for(self, shape: Iterable[int]) -> LSHIndex | None:
        return self._indexes.get(tuple(int(d) for d in shape))

    def __len__(self) -> int:
        return len(self._shape_of)

    def __contains__(self, key: object) -> bool:
        return key in self._shape_of

    def get_stats(self) -> dict[str, Any]:
        return {
            "total_vectors": len(self._shape_of),
            "num_dimensions": len(self._indexes),
            "per_dimension": {shape: idx.get_stats() for shape, idx in self._indexes.items()},
        }

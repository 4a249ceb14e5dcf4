"""`Deduplicator`: groups identical weights and finds near-identical ones (chapters 8.4–8.6).

Each weight added is, in order of arrival:
- a *duplicate* when its content hash (dtype, shape, bytes) equals an earlier weight's;
- *similar* when its cosine similarity to an earlier unique weight of the same shape and dtype
  is at least `similarity_threshold` (the most similar one becomes its reference). Candidates
  come from an LSH index per (shape, dtype) when `use_lsh`, otherwise from a scan of every
  earlier unique weight of that shape and dtype; either way the cosine is computed exactly;
- *unique* otherwise.

The counts of `get_stats()` partition the weights added: total_weights = unique_weights (distinct
contents kept in full) + similar_weights (distinct contents kept as a delta) + duplicate_weights;
`distinct_weights` is unique + similar. Bytes: `total_bytes` sums every weight added;
`unique_bytes` the distinct contents; `stored_bytes` what keeping them would cost: raw size for
a unique weight, and for a similar one an *estimate* of its delta, namely the zstd-compressed
size (level 3, 4 MiB frames) of the XOR of its bit patterns with its reference's, capped at its
raw size. The repository's store may encode differently; these numbers are the deduplicator's
own estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

from coral.core.dedup_stats import DeduplicationStats
from coral.core.lsh_index import LSHConfig, LSHIndex
from coral.core.projection import cosine_similarity
from coral.core.weight_tensor import WeightTensor, as_weight_tensor

__all__ = ["DeduplicationStats", "Deduplicator", "WeightEntry", "xor_delta_size"]

_XOR_FRAME = 4 << 20
_UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True)
class WeightEntry:
    """What the deduplicator decided for one named weight."""

    name: str
    hash: str
    kind: str  # "unique", "duplicate" or "similar"
    canonical: str  # first name added with this content (the name itself for unique/similar)
    reference: str | None = None  # for "similar": the name of the weight it is a delta against
    similarity: float | None = None  # for "similar": cosine similarity to the reference
    stored_bytes: int = 0  # estimated bytes to keep this content (0 for duplicates)


@dataclass
class _Content:
    """One distinct content (hash) and its fate."""

    hash: str
    weight: WeightTensor
    first_name: str
    reference: str | None = None  # hash of the reference, when similar
    similarity: float | None = None
    stored_bytes: int = 0


def _raw_uint(weight: WeightTensor) -> np.ndarray:
    data = weight.data
    itemsize = data.dtype.itemsize
    flat = data.reshape(-1)
    if itemsize in _UINT_OF_SIZE:
        return flat.view(_UINT_OF_SIZE[itemsize])
    return flat.view(np.uint64)  # complex128: two 64-bit words per element


def xor_delta_size(weight: WeightTensor, reference: WeightTensor, level: int = 3) -> int:
    """Estimated size of `weight` stored as a delta against `reference` (same shape and dtype):
    the zstd-compressed size of the XOR of their bit patterns, in 4 MiB frames."""
    a, b = _raw_uint(weight), _raw_uint(reference)
    if a.shape != b.shape:
        raise ValueError("xor_delta_size needs tensors of the same shape and dtype")
    cctx = zstandard.ZstdCompressor(level=level)
    step = max(1, _XOR_FRAME // max(1, a.itemsize))
    total = 0
    for start in range(0, a.size, step):
        total += len(
            cctx.compress(
                np.bitwise_xor(a[start : start + step], b[start : start + step]).tobytes()
            )
        )
    return total


class Deduplicator:
    """Finds exact duplicates (content hash) and similar weights (cosine >= threshold).

    Decisions are made as weights are added (`add_weight`); `deduplicate()` and `get_stats()`
    return the resulting `DeduplicationStats`. Adding a name again replaces what it pointed to;
    the statistics are over the current names. It keeps a reference to every distinct weight
    (to compute exact cosines and delta sizes), so it holds what it was given in memory.
    """

    def __init__(
        self,
        similarity_threshold: float = 0.98,
        use_lsh: bool = False,
        lsh_config: LSHConfig | None = None,
    ) -> None:
        if not -1.0 <= similarity_threshold <= 1.0:
            raise ValueError("similarity_threshold is a cosine similarity, in [-1, 1]")
        self.similarity_threshold = float(similarity_threshold)
        self.use_lsh = bool(use_lsh)
        self.lsh_config = lsh_config or LSHConfig()
        self._names: dict[str, str] = {}  # name -> content hash
        self._contents: dict[str, _Content] = {}  # hash -> content, in order of arrival
        self._by_group: dict[
            tuple[tuple[int, ...], str], list[str]
        ] = {}  # (shape, dtype) -> hashes
        self._lsh: dict[tuple[tuple[int, ...], str], LSHIndex] = {}

    # -- adding -------------------------------------------------------------------------------
    def add_weight(self, weight: WeightTensor | Any, name: str) -> str:
        """Register `weight` under `name`; returns its content hash."""
        weight = as_weight_tensor(weight, name)
        digest = weight.compute_hash()
        self._names[name] = digest
        if digest in self._contents:
            return digest
        content = _Content(hash=digest, weight=weight, first_name=name)
        group = (weight.shape, weight.metadata.dtype_name)
        match = self._most_similar(weight, group, exclude=None)
        if match is not None:
            ref_hash, similarity = match
            ref = self._contents[ref_hash]
            content.reference = ref_hash
            content.similarity = similarity
            content.stored_bytes = min(weight.nbytes, xor_delta_size(weight, ref.weight))
        else:
            content.stored_bytes = weight.nbytes
        self._contents[digest] = content
        self._by_group.setdefault(group, []).append(digest)
        if self.use_lsh and weight.size > 0:
            index = self._lsh.get(group)
            if index is None:
                index = self._lsh[group] = LSHIndex(weight.size, self.lsh_config)
            index.insert(weight.data, digest)
        return digest

    def _candidates(self, weight: WeightTensor, group: tuple[tuple[int, ...], str]) -> list[str]:
        if self.use_lsh:
            index = self._lsh.get(group)
            return [] if index is None else [str(k) for k in index.query(weight.data)]
        return list(self._by_group.get(group, ()))

    def _most_similar(
        self,
        weight: WeightTensor,
        group: tuple[tuple[int, ...], str],
        exclude: str | None,
        threshold: float | None = None,
    ) -> tuple[str, float] | None:
        limit = self.similarity_threshold if threshold is None else threshold
        best: tuple[str, float] | None = None
        for cand in self._candidates(weight, group):
            if cand == exclude:
                continue
            sim = cosine_similarity(weight.data, self._contents[cand].weight.data)
            if sim >= limit and (best is None or sim > best[1]):
                best = (cand, sim)
        return best

    # -- results ------------------------------------------------------------------------------
    def deduplicate(self) -> DeduplicationStats:
        """The statistics of everything added so far (decisions are made on `add_weight`)."""
        return self.get_stats()

    def get_stats(self) -> DeduplicationStats:
        stats = DeduplicationStats()
        for digest in self._names.values():
            stats.total_weights += 1
            stats.total_bytes += self._contents[digest].weight.nbytes
        distinct = set(self._names.values())
        for digest in distinct:
            content = self._contents[digest]
            stats.unique_bytes += content.weight.nbytes
            stats.stored_bytes += content.stored_bytes
            if content.reference is not None:
                stats.similar_weights += 1
            else:
                stats.unique_weights += 1
        stats.duplicate_weights = stats.total_weights - len(distinct)
        return stats

    def describe(self, name: str) -> WeightEntry:
        """What was decided for `name` (KeyError when unknown)."""
        digest = self._names[name]
        content = self._contents[digest]
        canonical = self._canonical_name(digest)
        if canonical != name:
            return WeightEntry(name, digest, "duplicate", canonical)
        if content.reference is not None:
            return WeightEntry(
                name,
                digest,
                "similar",
                canonical,
                reference=self._canonical_name(content.reference),
                similarity=content.similarity,
                stored_bytes=content.stored_bytes,
            )
        return WeightEntry(name, digest, "unique", canonical, stored_bytes=content.stored_bytes)

    def get_weight_group(self, name: str) -> list[str]:
        """Every name whose content is identical to `name`'s, canonical (first added) first."""
        digest = self._names[name]
        names = [n for n, d in self._names.items() if d == digest]
        canonical = self._canonical_name(digest)
        return [canonical] + [n for n in names if n != canonical]

    def get_reference(self, name: str) -> str | None:
        """For a similar weight, the name of the weight it is a delta against; else None."""
        content = self._contents[self._names[name]]
        return None if content.reference is None else self._canonical_name(content.reference)

    def get_weight(self, name: str) -> WeightTensor:
        return self._contents[self._names[name]].weight

    def find_similar(
        self, weight: WeightTensor | Any, threshold: float | None = None, max_results: int = 10
    ) -> list[tuple[str, float]]:
        """Names of stored unique weights of `weight`'s shape and dtype with cosine similarity
        >= threshold (default: the deduplicator's), most similar first, as (name, similarity)."""
        weight = as_weight_tensor(weight, getattr(weight, "name", "") or "query")
        group = (weight.shape, weight.metadata.dtype_name)
        limit = self.similarity_threshold if threshold is None else threshold
        live = set(self._names.values())
        out: list[tuple[str, float]] = []
        for cand in self._candidates(weight, group):
            if cand not in live:
                continue
            sim = cosine_similarity(weight.data, self._contents[cand].weight.data)
            if sim >= limit:
                out.append((self._canonical_name(cand), sim))
        out.sort(key=lambda item: -item[1])
        return out[:max_results]

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def clear(self) -> None:
        self._names.clear()
        self._contents.clear()
        self._by_group.clear()
        self._lsh.clear()

    def _canonical_name(self, digest: str) -> str:
        first = self._contents[digest].first_name
        if self._names.get(first) == digest:
            return first
        for n, d in self._names.items():  # the first name was re-pointed elsewhere
            if d == digest:
                return n
        return first

"""`DeduplicationStats`: how much deduplication and delta encoding saved."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DeduplicationStats:
    """Counts and bytes over a set of weights (a Deduplicator's, or a repository's history).

    The three counts partition the total: total_weights = unique_weights (distinct contents
    stored in full) + similar_weights (distinct contents stored as a delta against a similar
    one) + duplicate_weights (names whose content is stored already). `distinct_weights` is
    unique + similar. unique_bytes are the logical bytes of every distinct content;
    bytes_saved = total_bytes - stored_bytes.
    """

    total_weights: int = 0
    unique_weights: int = 0
    duplicate_weights: int = 0
    similar_weights: int = 0
    total_bytes: int = 0
    unique_bytes: int = 0
    stored_bytes: int = 0

    @property
    def distinct_weights(self) -> int:
        return self.unique_weights + self.similar_weights

    @property
    def bytes_saved(self) -> int:
        return max(0, self.total_bytes - self.stored_bytes)

    @property
    def compression_ratio(self) -> float:
        return self.total_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bytes_saved"] = self.bytes_saved
        d["distinct_weights"] = self.distinct_weights
        d["compression_ratio"] = self.compression_ratio
        return d

"""Tensor manifests: dtype, shape and the ordered chunk ids of a stored tensor.

A decoded manifest is checked before anything is sized from it: at most 64 dimensions, none
negative, a chunk size between one byte and the largest chunk a record holds, and exactly the
chunk ids its size needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from coral.core.dtypes import numpy_dtype
from coral.core.hashing import is_hash
from coral.storage.chunk_format import MAX_RAW_LEN

MANIFEST_VERSION = 1
MAX_NDIM = 64  # numpy's own limit


@dataclass(frozen=True)
class TensorManifest:
    dtype: str
    shape: tuple[int, ...]
    chunk_bytes: int
    chunks: tuple[str, ...]

    @property
    def nbytes(self) -> int:
        n = numpy_dtype(self.dtype).itemsize
        for d in self.shape:
            n *= d
        return n

    def chunk_span(self, index: int) -> tuple[int, int]:
        """Byte offsets [start, end) of chunk `index` in the tensor's raw bytes."""
        start = index * self.chunk_bytes
        return start, min(start + self.chunk_bytes, self.nbytes)

    def encode(self) -> bytes:
        doc = {
            "format": MANIFEST_VERSION,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "chunk_bytes": self.chunk_bytes,
            "chunks": list(self.chunks),
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> TensorManifest:
        """Parse a manifest; ValueError when it is malformed."""
        try:
            doc = json.loads(data)
            if doc["format"] != MANIFEST_VERSION:
                raise ValueError(f"unknown manifest format {doc['format']}")
            m = cls(
                doc["dtype"],
                tuple(int(d) for d in doc["shape"]),
                int(doc["chunk_bytes"]),
                tuple(doc["chunks"]),
            )
            numpy_dtype(m.dtype)
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed manifest: {exc}") from exc
        except Exception as exc:
            raise ValueError(f"malformed manifest: {exc}") from exc
        if len(m.shape) > MAX_NDIM or any(d < 0 for d in m.shape):
            raise ValueError(f"manifest shape {list(m.shape)[:MAX_NDIM]} is not a tensor shape")
        if not 0 < m.chunk_bytes <= MAX_RAW_LEN:
            raise ValueError(f"manifest chunk size {m.chunk_bytes} is out of range")
        expected = -(-m.nbytes // m.chunk_bytes) if m.nbytes else 0
        if len(m.chunks) != expected:
            raise ValueError(
                f"manifest lists {len(m.chunks)} chunks where its size ({m.nbytes} bytes) needs "
                f"{expected}"
            )
        if not all(isinstance(c, str) and is_hash(c) for c in m.chunks):
            raise ValueError("manifest lists a chunk id that is not an object name")
        return m

"""BLAKE3-256 content hashing, domain-separated per object kind."""

from __future__ import annotations

from collections.abc import Iterable

import blake3

HASH_HEX_LEN = 64
_PARALLEL_MIN_BYTES = 1 << 22  # below this, hashing on one thread is faster


def _hasher(prefix: bytes, size_hint: int = 0) -> blake3.blake3:
    threads = blake3.blake3.AUTO if size_hint >= _PARALLEL_MIN_BYTES else 1
    h = blake3.blake3(max_threads=threads)
    h.update(prefix)
    return h


def tensor_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The canonical header hashed before a tensor's bytes."""
    dims = ",".join(str(int(d)) for d in shape)
    return f"coral.tensor.v1\0{dtype}\0{dims}\0".encode()


def hash_tensor_bytes(
    dtype: str, shape: tuple[int, ...], parts: Iterable[memoryview | bytes]
) -> str:
    """Hash of a tensor given its canonical dtype name, shape and raw little-endian bytes."""
    parts = list(parts) if not isinstance(parts, list) else parts
    size = sum(memoryview(p).nbytes for p in parts)
    h = _hasher(tensor_header(dtype, shape), size)
    for part in parts:
        h.update(part)
    return h.hexdigest()


class TensorHasher:
    """Incremental tensor hash, fed chunk by chunk in order."""

    def __init__(self, dtype: str, shape: tuple[int, ...]) -> None:
        self._h = _hasher(tensor_header(dtype, shape), _PARALLEL_MIN_BYTES)

    def update(self, data: memoryview | bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_chunk(data: memoryview | bytes) -> str:
    """Name of a chunk: hash of its raw (decoded) bytes."""
    return _hasher(b"coral.chunk.v1\0", memoryview(data).nbytes).update(data).hexdigest()


def hash_blob(kind: str, data: bytes) -> str:
    """Name of a small canonical object (tree, commit, ...)."""
    return _hasher(f"coral.{kind}.v1\0".encode(), len(data)).update(data).hexdigest()


def is_hash(value: str) -> bool:
    """Whether `value` looks like a full object name."""
    return len(value) == HASH_HEX_LEN and all(c in "0123456789abcdef" for c in value)

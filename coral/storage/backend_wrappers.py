"""Wrappers around any `Backend`: retries with backoff, a byte-bounded read cache.

Each wraps another backend and keeps its contract (tests/storage/backend_contract.py runs on
them too); `unwrap()` reaches the innermost one.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
    TransientBackendError,
)

T = TypeVar("T")


# -- wrappers ------------------------------------------------------------------------------------
class BackendWrapper(Backend):
    """Delegates everything to `inner`; subclasses override what they add."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return self.inner.put(key, data, mode, if_match)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def path(self, key: str) -> Path:
        return self.inner.path(key)

    def describe(self) -> str:
        return self.inner.describe()

    def unwrap(self) -> Backend:
        return self.inner.unwrap()


class RetryingBackend(BackendWrapper):
    """Retries transient failures with exponential backoff and jitter.

    Missing keys and failed preconditions are answers, not failures: they are never retried.
    A CREATE or IF_MATCH put whose first attempt may have landed is retried once more and a
    PreconditionFailedError then is checked against what is stored.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        retry_on: tuple[type[BaseException], ...] = (TransientBackendError, ConnectionError),
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.retry_on = retry_on

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except (KeyNotFoundError, PreconditionFailedError):
                raise
            except self.retry_on as exc:
                if attempt == self.attempts - 1:
                    last = exc.message if isinstance(exc, BackendError) else exc  # not its hint
                    raise BackendError(
                        f"{self.describe()}: giving up after {self.attempts} attempts: {last}",
                        hint="check that the endpoint is reachable and the credentials valid",
                    ) from exc
                delay = min(self.max_delay, self.base_delay * 2**attempt)
                time.sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")  # pragma: no cover

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        if mode is PutMode.OVERWRITE:
            return self._call(lambda: self.inner.put(key, data, mode, if_match))
        failed = False  # an attempt failed transiently: it may have landed all the same

        def attempt() -> ObjectInfo:
            nonlocal failed
            try:
                return self.inner.put(key, data, mode, if_match)
            except PreconditionFailedError:
                if failed and self._holds(key, data):
                    return self.inner.stat(key)  # our earlier attempt is what is stored
                raise
            except self.retry_on:
                failed = True
                raise

        return self._call(attempt)

    def _holds(self, key: str, data: bytes | memoryview) -> bool:
        try:
            return self.inner.get(key) == bytes(data)
        except KeyNotFoundError:
            return False

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(lambda: self.inner.get(key, offset, length))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> bool:
        return self._call(lambda: self.inner.delete(key))


class CachingBackend(BackendWrapper):
    """Keeps whole objects read with `get` in a byte-bounded LRU (for immutable keys only).

    `cacheable(key)` says which keys never change (packs, indexes); refs are always read through.
    Writes through this wrapper stay visible at once: while a put or delete of a key is in
    flight its reads go through, and a read that began before it is not remembered. Changes
    made by other writers are not seen for cached keys.
    """

    def __init__(
        self, inner: Backend, capacity: int, cacheable: Callable[[str], bool] = lambda k: True
    ) -> None:
        super().__init__(inner)
        self.capacity = capacity
        self.cacheable = cacheable
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._loading: dict[str, object] = {}  # key -> token of the latest read in flight
        self._writing: dict[str, int] = {}  # key -> puts and deletes in flight

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if not self.cacheable(key):
            return self.inner.get(key, offset, length)
        token = None
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            elif not offset and length is None and key not in self._writing:
                token = self._loading[key] = object()
        if data is None:
            if token is None:  # a range of an uncached object, or a write in flight
                return self.inner.get(key, offset, length)
            try:
                data = self.inner.get(key)
                self._remember(key, data, token)
            finally:
                with self._lock:
                    if self._loading.get(key) is token:
                        del self._loading[key]
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def _remember(self, key: str, data: bytes, token: object) -> None:
        if len(data) > self.capacity:
            return
        with self._lock:
            if key in self._items or self._loading.get(key) is not token:
                return  # a put or delete since the read began: the bytes may be old
            self._items[key] = data
            self._size += len(data)
            while self._size > self.capacity:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)

    def _forget(self, key: str) -> None:
        """Drop the cached copy (call with the lock held)."""
        self._loading.pop(key, None)
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= len(old)

    def _write(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            self._writing[key] = self._writing.get(key, 0) + 1
            self._forget(key)
        try:
            return fn()
        finally:
            with self._lock:
                self._writing[key] -= 1
                if not self._writing[key]:
                    del self._writing[key]
                self._forget(key)

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return self._write(key, lambda: self.inner.put(key, data, mode, if_match))

    def delete(self, key: str) -> bool:
        return self._write(key, lambda: self.inner.delete(key))


class ShardedBackend(Backend):
    """Spreads immutable objects (keys under `spread_prefix`) over several backends by a hash
    of their name; everything else (refs, the format file) lives on the first one."""

    def __init__(self, backends: list[Backend], spread_prefix: str = "packs/") -> None:
        if not backends:
            raise ValueError("ShardedBackend needs at least one backend")
        self.backends = backends
        self.spread_prefix = spread_prefix
        self.capabilities = backends[0].capabilities

    def _for(self, key: str) -> Backend:
        if not key.startswith(self.spread_prefix) or len(self.backends) == 1:
            return self.backends[0]
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return self.backends[int.from_bytes(digest, "little") % len(self.backends)]

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return self._for(key).put(key, data, mode, if_match)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._for(key).get(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        return self._for(key).stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        spread = prefix.startswith(self.spread_prefix) or self.spread_prefix.startswith(prefix)
        sources = self.backends if spread else self.backends[:1]
        seen: dict[str, ObjectInfo] = {}
        for backend in sources:
            for info in backend.list(prefix):
                if backend is self._for(info.key):  # each key is listed from its home only
                    seen.setdefault(info.key, info)
        yield from (seen[k] for k in sorted(seen))

    def delete(self, key: str) -> bool:
        return self._for(key).delete(key)

    def path(self, key: str) -> Path:
        return self._for(key).path(key)

    def describe(self) -> str:
        return " + ".join(b.describe() for b in self.backends)

"""The byte backends: the contract on LocalBackend and on the wrappers, then what is specific to
each (temporaries and permissions of LocalBackend, retries, the read cache)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from coral.storage import backend as backend_module
from coral.storage.backend import (
    Backend,
    BackendError,
    KeyNotFoundError,
    LocalBackend,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
    TransientBackendError,
)
from coral.storage.backend_wrappers import BackendWrapper, CachingBackend, RetryingBackend

pytest.register_assert_rewrite("tests.storage.backend_contract")  # readable contract failures

from .backend_contract import BackendContract, run_threads  # noqa: E402


# -- the contract ------------------------------------------------------------------------------
class TestLocalBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "store")


class TestRetryingBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return RetryingBackend(LocalBackend(tmp_path / "store"), base_delay=0.0)


class TestCachingBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return CachingBackend(LocalBackend(tmp_path / "store"), capacity=1 << 20)


class TestRetryingCachingBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        local = LocalBackend(tmp_path / "store", fsync=False)
        return RetryingBackend(CachingBackend(local, capacity=1 << 20), base_delay=0.0)


# -- helpers -----------------------------------------------------------------------------------
class CountingBackend(BackendWrapper):
    """Counts the calls that reach the wrapped backend, per method."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        self.calls["put"] += 1
        return super().put(key, data, mode, if_match)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.calls["get"] += 1
        return super().get(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        self.calls["stat"] += 1
        return super().stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.calls["list"] += 1
        return super().list(prefix)

    def delete(self, key: str) -> bool:
        self.calls["delete"] += 1
        return super().delete(key)


class FlakyBackend(CountingBackend):
    """Raises `error` on the first `failures` calls of each of `methods`, then behaves.

    With `lose_reply`, a failing put is carried out before the error is raised (the request
    landed, the answer was lost: a timeout after the server wrote the object).
    """

    def __init__(
        self,
        inner: Backend,
        failures: int,
        error: type[Exception] = TransientBackendError,
        lose_reply: bool = False,
        methods: tuple[str, ...] = ("put", "get", "stat", "list", "delete"),
    ) -> None:
        super().__init__(inner)
        self.failures = failures
        self.error = error
        self.lose_reply = lose_reply
        self.methods = methods

    def _maybe_fail(self, method: str) -> None:
        if method in self.methods and self.calls[method] <= self.failures:
            raise self.error(f"flaky {method} #{self.calls[method]}")

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        self.calls["put"] += 1
        if "put" in self.methods and self.calls["put"] <= self.failures:
            if self.lose_reply:
                self.inner.put(key, data, mode, if_match)
            raise self.error(f"flaky put #{self.calls['put']}")
        return self.inner.put(key, data, mode, if_match)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.calls["get"] += 1
        self._maybe_fail("get")
        return self.inner.get(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        self.calls["stat"] += 1
        self._maybe_fail("stat")
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.calls["list"] += 1
        self._maybe_fail("list")
        return self.inner.list(prefix)

    def delete(self, key: str) -> bool:
        self.calls["delete"] += 1
        self._maybe_fail("delete")
        return self.inner.delete(key)


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "store")


def temporaries(backend: LocalBackend) -> list[Path]:
    return sorted(backend.tmp_dir.glob("*.tmp")) if backend.tmp_dir.is_dir() else []


# -- LocalBackend ------------------------------------------------------------------------------
def test_local_put_leaves_no_temporary(local: LocalBackend) -> None:
    local.put("a/b", b"overwrite")
    local.put("a/c", b"create", PutMode.CREATE)
    local.put("a/c", b"swap", PutMode.IF_MATCH, if_match=local.stat("a/c").etag)
    local.put("a/d", b"absent", PutMode.IF_MATCH, if_match=None)
    with pytest.raises(PreconditionFailedError):
        local.put("a/b", b"exists", PutMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        local.put("a/b", b"stale", PutMode.IF_MATCH, if_match="stale")
    assert temporaries(local) == []
    assert sorted(p.name for p in local.tmp_dir.iterdir() if p.name.endswith(".tmp")) == []


def test_local_crashed_write_is_invisible_and_removed(local: LocalBackend) -> None:
    local.put("packs/real.pack", b"real")
    # A writer killed between writing its temporary file and renaming it leaves this behind.
    stale = local.tmp_dir / f"crashed.pack.{'0' * 32}.tmp"
    stale.write_bytes(b"half a pack")
    fresh = local.tmp_dir / f"inflight.pack.{'1' * 32}.tmp"
    fresh.write_bytes(b"still being written")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))

    assert [i.key for i in local.list()] == ["packs/real.pack"]
    assert [i.key for i in local.list("tmp")] == []
    with pytest.raises(KeyNotFoundError):
        local.get("packs/crashed.pack")
    assert local.exists("packs/crashed.pack") is False

    assert local.remove_stale_temporaries(older_than=600) == 1  # the in-flight one is kept
    assert not stale.exists() and fresh.exists()
    assert local.remove_stale_temporaries() == 1
    assert temporaries(local) == []
    assert local.get("packs/real.pack") == b"real"


def test_local_remove_stale_temporaries_without_tmp_dir(tmp_path: Path) -> None:
    assert LocalBackend(tmp_path / "never-written").remove_stale_temporaries() == 0


def test_local_path_names_the_real_file(local: LocalBackend) -> None:
    local.put("objects/ab/cd", b"on disk")
    path = local.path("objects/ab/cd")
    assert path == local.root / "objects" / "ab" / "cd"
    assert path.is_file() and path.read_bytes() == b"on disk"
    assert local.capabilities.local_path
    assert local.describe() == str(local.root)


def test_local_without_fsync_round_trips(tmp_path: Path) -> None:
    fast = LocalBackend(tmp_path / "fast", fsync=False)
    fast.put("k", b"v", PutMode.CREATE)
    assert fast.get("k") == b"v"


def test_local_etag_survives_reopening(local: LocalBackend) -> None:
    info = local.put("refs/main", b"c1")
    again = LocalBackend(local.root)
    assert again.stat("refs/main").etag == info.etag
    again.put("refs/main", b"c2", PutMode.IF_MATCH, if_match=info.etag)
    assert local.get("refs/main") == b"c2"


def test_local_compare_and_swap_across_instances(tmp_path: Path) -> None:
    # Two LocalBackends on one folder share no thread lock (like two processes): the file lock
    # alone must keep their compare-and-swaps apart.
    root = tmp_path / "shared"
    backends = [LocalBackend(root, fsync=False), LocalBackend(root, fsync=False)]
    backends[0].put("n", b"0")

    def bump(i: int) -> None:
        b = backends[i % 2]
        done = 0
        while done < 15:
            etag = b.stat("n").etag
            value = int(b.get("n"))
            if b.stat("n").etag != etag:
                continue
            try:
                b.put("n", b"%d" % (value + 1), PutMode.IF_MATCH, if_match=etag)
            except PreconditionFailedError:
                continue
            done += 1

    run_threads(4, bump)
    assert int(backends[1].get("n")) == 60


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_local_read_only_directory_gives_backend_error(tmp_path: Path) -> None:
    fresh = LocalBackend(tmp_path / "ro-fresh")
    fresh.root.mkdir()
    used = LocalBackend(tmp_path / "ro-used")
    used.put("kept", b"before")
    (used.root / "sub").mkdir()
    fresh.root.chmod(0o500)
    (used.root / "sub").chmod(0o500)
    try:
        with pytest.raises(BackendError) as info:  # cannot even create the temporary folder
            fresh.put("x", b"data")
        assert str(fresh.root) in str(info.value)
        assert "permission denied" in str(info.value)

        with pytest.raises(BackendError) as info:  # the temporary is written, the rename fails
            used.put("sub/x", b"data")
        assert str(used.root / "sub" / "x") in str(info.value)
        assert "permission denied" in str(info.value)
        assert temporaries(used) == []
        assert used.get("kept") == b"before"
    finally:
        fresh.root.chmod(0o700)
        (used.root / "sub").chmod(0o700)


def test_local_unusable_tmp_folder_gives_backend_error(local: LocalBackend) -> None:
    # Works as root too: a file where the temporary folder belongs cannot be written into.
    local.root.mkdir(parents=True)
    local.tmp_dir.write_bytes(b"not a folder")
    with pytest.raises(BackendError) as info:
        local.put("x", b"data")
    assert str(local.root) in str(info.value)


def test_local_lock_is_released_after_a_failure(local: LocalBackend) -> None:
    local.put("k", b"1")
    with pytest.raises(PreconditionFailedError):
        local.put("k", b"2", PutMode.IF_MATCH, if_match="stale")
    lock_file = local.tmp_dir / ".cas-lock"
    lock_file.unlink()
    lock_file.mkdir()  # the lock cannot be opened now
    with pytest.raises(BackendError):
        local.put("k", b"3")
    lock_file.rmdir()
    # A leaked thread lock would hang the next write: run it where a hang is noticed.
    done = threading.Event()

    def write() -> None:
        local.put("k", b"4", PutMode.IF_MATCH, if_match=local.stat("k").etag)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(timeout=10), "the lock was not released"
    assert local.get("k") == b"4"


def test_local_etags_never_repeat_when_the_clock_stands_still(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replacing a file frees its inode for the next write, so inode, size and a coarse mtime
    # could all repeat (ABA): the mtime of a key's successive objects must strictly increase.
    monkeypatch.setattr(backend_module.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    info = local.put("refs/main", b"c0")
    seen = [info]
    for i in range(1, 30):
        mode = PutMode.IF_MATCH if i % 2 else PutMode.OVERWRITE
        seen.append(local.put("refs/main", b"c%d" % (i % 10), mode, if_match=seen[-1].etag))
    assert len({i.etag for i in seen}) == len(seen)
    mtimes = [i.mtime for i in seen]
    assert mtimes == sorted(mtimes)
    assert local.stat("refs/main").etag == seen[-1].etag


# -- RetryingBackend ---------------------------------------------------------------------------
def retrying(inner: Backend, attempts: int = 5) -> RetryingBackend:
    return RetryingBackend(inner, attempts=attempts, base_delay=0.0)


def test_retry_succeeds_after_transient_failures(local: LocalBackend) -> None:
    local.put("k", b"value")
    flaky = FlakyBackend(local, failures=2)
    backend = retrying(flaky)
    assert backend.get("k") == b"value"
    assert flaky.calls["get"] == 3
    assert backend.stat("k").size == 5
    assert [i.key for i in backend.list()] == ["k"]
    assert backend.delete("k") is True
    assert flaky.calls == Counter(get=3, stat=3, list=3, delete=3)


def test_retry_retries_connection_errors(local: LocalBackend) -> None:
    flaky = FlakyBackend(local, failures=1, error=ConnectionResetError)
    backend = retrying(flaky)
    backend.put("k", b"v")
    assert flaky.calls["put"] == 2
    assert local.get("k") == b"v"


def test_retry_gives_up_after_attempts(local: LocalBackend) -> None:
    local.put("k", b"value")
    flaky = FlakyBackend(local, failures=100)
    backend = retrying(flaky, attempts=3)
    with pytest.raises(BackendError) as info:
        backend.get("k")
    assert not isinstance(info.value, TransientBackendError)
    assert "3 attempts" in str(info.value)
    assert isinstance(info.value.__cause__, TransientBackendError)
    assert flaky.calls["get"] == 3


def test_retry_does_not_retry_other_errors(local: LocalBackend) -> None:
    flaky = FlakyBackend(local, failures=100, error=BackendError)
    with pytest.raises(BackendError):
        retrying(flaky).get("k")
    assert flaky.calls["get"] == 1


def test_retry_does_not_retry_missing_keys(local: LocalBackend) -> None:
    counting = CountingBackend(local)
    backend = retrying(counting)
    with pytest.raises(KeyNotFoundError):
        backend.get("missing")
    with pytest.raises(KeyNotFoundError):
        backend.stat("missing")
    assert backend.exists("missing") is False
    assert counting.calls == Counter(get=1, stat=2)


def test_retry_does_not_retry_failed_preconditions(local: LocalBackend) -> None:
    counting = CountingBackend(local)
    backend = retrying(counting)
    backend.put("k", b"1")
    with pytest.raises(PreconditionFailedError):
        backend.put("k", b"2", PutMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        backend.put("k", b"2", PutMode.IF_MATCH, if_match="stale")
    assert counting.calls["put"] == 3
    assert local.get("k") == b"1"


def test_retry_recognises_its_own_landed_create(local: LocalBackend) -> None:
    # The first CREATE landed but its answer was lost; the retry then finds the key taken. It
    # holds what this put wrote, so the put succeeded.
    flaky = FlakyBackend(local, failures=1, lose_reply=True, methods=("put",))
    info = retrying(flaky).put("packs/p", b"pack bytes", PutMode.CREATE)
    assert flaky.calls["put"] == 2
    assert info.etag == local.stat("packs/p").etag
    assert local.get("packs/p") == b"pack bytes"


def test_retry_recognises_its_own_landed_compare_and_swap(local: LocalBackend) -> None:
    old = local.put("refs/main", b"c1")
    flaky = FlakyBackend(local, failures=1, lose_reply=True, methods=("put",))
    info = retrying(flaky).put("refs/main", b"c2", PutMode.IF_MATCH, if_match=old.etag)
    assert flaky.calls["put"] == 2
    assert info.etag == local.stat("refs/main").etag
    assert local.get("refs/main") == b"c2"


def test_retry_reports_a_lost_race_after_a_transient_failure(local: LocalBackend) -> None:
    local.put("packs/p", b"someone else's")
    flaky = FlakyBackend(local, failures=1)  # the first attempt fails without landing
    with pytest.raises(PreconditionFailedError):
        retrying(flaky).put("packs/p", b"mine", PutMode.CREATE)
    assert local.get("packs/p") == b"someone else's"


def test_retry_backs_off_exponentially(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float] = []
    monkeypatch.setattr(backend_module.time, "sleep", delays.append)
    local.put("k", b"v")
    flaky = FlakyBackend(local, failures=4)
    backend = RetryingBackend(flaky, attempts=5, base_delay=0.1, max_delay=0.3)
    assert backend.get("k") == b"v"
    caps = [0.1, 0.2, 0.3, 0.3]
    assert len(delays) == len(caps)
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap


def test_wrappers_delegate_description(local: LocalBackend) -> None:
    wrapped = CachingBackend(retrying(local), capacity=10)
    assert wrapped.describe() == local.describe()
    assert wrapped.unwrap() is local
    assert wrapped.capabilities == local.capabilities
    wrapped.put("k", b"v")
    assert wrapped.path("k") == local.path("k")


# -- CachingBackend ----------------------------------------------------------------------------
def caching(
    local: LocalBackend, capacity: int = 1 << 20, **kw: object
) -> tuple[CachingBackend, CountingBackend]:
    counting = CountingBackend(local)
    return CachingBackend(counting, capacity=capacity, **kw), counting  # type: ignore[arg-type]


def test_cache_second_get_does_not_reach_the_backend(local: LocalBackend) -> None:
    cache, counting = caching(local)
    cache.put("packs/a", b"pack a")
    assert cache.get("packs/a") == b"pack a"
    assert cache.get("packs/a") == b"pack a"
    assert cache.get("packs/a") == b"pack a"
    assert counting.calls["get"] == 1


def test_cache_serves_ranges_from_a_cached_object(local: LocalBackend) -> None:
    data = bytes(range(64))
    cache, counting = caching(local)
    local.put("packs/a", data)
    assert cache.get("packs/a", 8, 4) == data[8:12]  # not cached: a range read goes through
    assert counting.calls["get"] == 1
    assert cache.get("packs/a") == data  # the whole object is cached
    assert counting.calls["get"] == 2
    assert cache.get("packs/a", 8, 4) == data[8:12]
    assert cache.get("packs/a", 60) == data[60:]
    assert cache.get("packs/a", 60, 100) == data[60:]
    assert cache.get("packs/a", 64) == b""
    assert cache.get("packs/a", 70, 5) == b""
    assert cache.get("packs/a", 3, 0) == b""
    assert counting.calls["get"] == 2


def test_cache_put_and_delete_invalidate(local: LocalBackend) -> None:
    cache, counting = caching(local)
    cache.put("k", b"one")
    assert cache.get("k") == b"one"
    cache.put("k", b"two")
    assert cache.get("k") == b"two"
    cache.put("k", b"three", PutMode.IF_MATCH, if_match=cache.stat("k").etag)
    assert cache.get("k") == b"three"
    assert counting.calls["get"] == 3
    assert cache.delete("k") is True
    with pytest.raises(KeyNotFoundError):
        cache.get("k")
    cache.put("k", b"four", PutMode.CREATE)
    assert cache.get("k") == b"four"


def test_cache_failed_put_still_reads_what_is_stored(local: LocalBackend) -> None:
    cache, _ = caching(local)
    cache.put("k", b"one")
    assert cache.get("k") == b"one"
    with pytest.raises(PreconditionFailedError):
        cache.put("k", b"two", PutMode.CREATE)
    assert cache.get("k") == b"one"


def test_cache_predicate_excludes_keys(local: LocalBackend) -> None:
    cache, counting = caching(local, cacheable=lambda key: key.startswith("packs/"))
    local.put("packs/a", b"immutable")
    local.put("refs/main", b"c1")
    assert cache.get("packs/a") == b"immutable"
    assert cache.get("packs/a") == b"immutable"
    assert cache.get("refs/main") == b"c1"
    local.put("refs/main", b"c2")  # changed behind the cache's back: always read through
    assert cache.get("refs/main") == b"c2"
    assert cache.get("refs/main", 1) == b"2"
    assert counting.calls["get"] == 4


def test_cache_respects_capacity_with_lru_eviction(local: LocalBackend) -> None:
    cache, counting = caching(local, capacity=10)
    for key in ("a", "b", "c"):
        local.put(key, key.encode() * 4)  # 4 bytes each: two fit
    cache.get("a")
    cache.get("b")
    assert counting.calls["get"] == 2
    cache.get("a")  # a is now the most recently used
    assert counting.calls["get"] == 2
    cache.get("c")  # evicts b, the least recently used
    assert counting.calls["get"] == 3
    cache.get("a")
    cache.get("c")
    assert counting.calls["get"] == 3
    assert cache.get("b") == b"bbbb"  # evicted: read again (and evicts a)
    assert counting.calls["get"] == 4
    cache.get("a")
    assert counting.calls["get"] == 5


def test_cache_does_not_keep_objects_larger_than_capacity(local: LocalBackend) -> None:
    cache, counting = caching(local, capacity=10)
    local.put("small", b"12345")
    local.put("large", b"x" * 11)
    cache.get("small")
    cache.get("large")
    cache.get("large")
    cache.get("small")
    assert counting.calls["get"] == 3  # large twice, small once


def test_cache_does_not_remember_a_read_that_raced_a_put(local: LocalBackend) -> None:
    # A get that read the old bytes before a concurrent put must not cache them afterwards.
    class SlowGet(BackendWrapper):
        def __init__(self, inner: Backend) -> None:
            super().__init__(inner)
            self.read = threading.Event()
            self.release = threading.Event()

        def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            data = super().get(key, offset, length)
            if not self.release.is_set():
                self.read.set()
                assert self.release.wait(timeout=10)
            return data

    slow = SlowGet(local)
    cache = CachingBackend(slow, capacity=1 << 20)
    local.put("k", b"old")
    reader = threading.Thread(target=cache.get, args=("k",))
    reader.start()
    assert slow.read.wait(timeout=10)
    cache.put("k", b"new")
    slow.release.set()
    reader.join(timeout=10)
    assert cache.get("k") == b"new"


def test_retry_landed_check_survives_flaky_reads(local: LocalBackend) -> None:
    # Every method fails once: the check of what is stored is retried like the put itself.
    flaky = FlakyBackend(local, failures=1, lose_reply=True)
    retrying(flaky).put("packs/q", b"q", PutMode.CREATE)
    assert local.get("packs/q") == b"q"

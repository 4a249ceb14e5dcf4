"""The byte backend contract: what every `Backend` must do, as tests (docs/FORMAT.md, "Byte
backend contract", states the same in prose).

Use it by subclassing `BackendContract` in a test module and providing a `backend` fixture that
yields a fresh, empty backend for every test:

    class TestS3Backend(BackendContract):
        @pytest.fixture
        def backend(self, seaweedfs) -> Iterator[Backend]:
            yield S3Backend(seaweedfs.bucket(uuid.uuid4().hex))

The class name does not start with `Test`, so pytest collects its tests only in subclasses.
Every test here holds for the local filesystem, the wrappers and the object stores alike (S3,
GCS, Azure): nothing depends on local paths, timing or on how an etag is spelled.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from coral.errors import InvalidNameError
from coral.storage.backend import (
    Backend,
    BackendError,
    Capabilities,
    KeyNotFoundError,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
)

INVALID_KEYS = [
    "",
    "/abs",
    "../x",
    "a/../b",
    "..",
    ".",
    "a//b",
    "a/./b",
    "a/",
    "with space",
    "nul\x00byte",
    "back\\slash",
    "new\nline",
]

FIVE_MIB = 5 << 20


def keys(backend: Backend, prefix: str = "") -> list[str]:
    return [info.key for info in backend.list(prefix)]


def run_threads(n: int, fn: Callable[[int], object]) -> list[object]:
    """Run fn(0..n-1) in n threads started together; re-raises the first unexpected error."""
    barrier = threading.Barrier(n)

    def start(i: int) -> object:
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(start, i) for i in range(n)]
        return [f.result(timeout=60) for f in futures]


class BackendContract:
    """Tests every backend passes. Subclasses provide the `backend` fixture (fresh and empty)."""

    @pytest.fixture
    def backend(self) -> Backend:
        pytest.fail(f"{type(self).__name__} must provide the `backend` fixture (BackendContract)")

    # -- put / get -----------------------------------------------------------------------------
    def test_put_get_round_trip_bytes(self, backend: Backend) -> None:
        info = backend.put("objects/ab/cdef", b"hello weights")
        assert isinstance(info, ObjectInfo)
        assert info.key == "objects/ab/cdef"
        assert info.size == len(b"hello weights")
        assert backend.get("objects/ab/cdef") == b"hello weights"
        assert isinstance(backend.get("objects/ab/cdef"), bytes)

    def test_put_accepts_memoryview(self, backend: Backend) -> None:
        buf = bytearray(range(256)) * 4
        backend.put("mv/whole", memoryview(buf))
        backend.put("mv/slice", memoryview(buf)[10:20])
        assert backend.get("mv/whole") == bytes(buf)
        assert backend.get("mv/slice") == bytes(buf[10:20])
        assert backend.stat("mv/slice").size == 10

    def test_empty_object(self, backend: Backend) -> None:
        info = backend.put("empty", b"")
        assert info.size == 0
        assert backend.get("empty") == b""
        assert backend.stat("empty").size == 0
        assert backend.exists("empty")
        assert keys(backend) == ["empty"]

    def test_five_mib_object(self, backend: Backend) -> None:
        data = random.Random(5).randbytes(FIVE_MIB)
        info = backend.put("packs/big.pack", data)
        assert info.size == FIVE_MIB
        assert backend.stat("packs/big.pack").size == FIVE_MIB
        assert backend.get("packs/big.pack") == data
        mid = FIVE_MIB // 2 + 7
        assert backend.get("packs/big.pack", mid, 4096) == data[mid : mid + 4096]

    def test_overwrite_replaces_content(self, backend: Backend) -> None:
        backend.put("k", b"first version")
        info = backend.put("k", b"second", PutMode.OVERWRITE)
        assert backend.get("k") == b"second"
        assert info.size == 6
        assert keys(backend) == ["k"]

    def test_put_returns_what_stat_reports(self, backend: Backend) -> None:
        for mode in (PutMode.OVERWRITE, PutMode.CREATE):
            key = f"returned/{mode.value}"
            info = backend.put(key, b"12345", mode)
            st = backend.stat(key)
            assert (info.key, info.size, info.etag) == (st.key, st.size, st.etag)
        info = backend.put("returned/create", b"123", PutMode.IF_MATCH, if_match=st.etag)
        assert info.etag == backend.stat("returned/create").etag

    # -- range get -----------------------------------------------------------------------------
    def test_range_get(self, backend: Backend) -> None:
        data = bytes(range(100))
        backend.put("r", data)
        assert backend.get("r", 0) == data
        assert backend.get("r", 10) == data[10:]  # offset only: to the end
        assert backend.get("r", 10, 5) == data[10:15]  # offset and length
        assert backend.get("r", 0, 1) == data[:1]
        assert backend.get("r", 0, 100) == data
        assert backend.get("r", 99, 1) == data[99:]

    def test_range_get_past_end_returns_what_exists(self, backend: Backend) -> None:
        data = bytes(range(100))
        backend.put("r", data)
        assert backend.get("r", 90, 50) == data[90:]  # length past the end
        assert backend.get("r", 0, 1000) == data
        assert backend.get("r", 100) == b""  # offset at the end
        assert backend.get("r", 150, 10) == b""  # offset past the end
        assert backend.get("r", 5, 0) == b""  # zero length

    def test_range_get_of_missing_key_raises(self, backend: Backend) -> None:
        with pytest.raises(KeyNotFoundError):
            backend.get("missing", 10, 5)

    # -- stat and etags ------------------------------------------------------------------------
    def test_stat_size_and_etag(self, backend: Backend) -> None:
        backend.put("s/one", b"abc")
        st = backend.stat("s/one")
        assert st.key == "s/one"
        assert st.size == 3
        assert isinstance(st.etag, str) and st.etag
        assert isinstance(st.mtime, float) and st.mtime > 0
        assert backend.stat("s/one").etag == st.etag  # stable while the object is unchanged
        backend.get("s/one")
        assert backend.stat("s/one").etag == st.etag  # reads do not change it

    def test_etag_changes_when_content_is_overwritten(self, backend: Backend) -> None:
        # Same size each time, so a size-based etag would not do; every etag must be new (an
        # etag seen before reappearing would let a stale compare-and-swap through: ABA).
        etags = []
        for i in range(20):
            etags.append(backend.put("counter", b"%08d" % i).etag)
            assert backend.stat("counter").etag == etags[-1]
        assert len(set(etags)) == len(etags)

    def test_etags_of_different_objects_differ(self, backend: Backend) -> None:
        a = backend.put("e/a", b"content a").etag
        b = backend.put("e/b", b"content b").etag
        assert a != b

    # -- list ----------------------------------------------------------------------------------
    def test_list_nested_keys_by_prefix(self, backend: Backend) -> None:
        for key in ("a/b/c", "a/b/d", "a/e", "f", "ab/x"):
            backend.put(key, key.encode())
        assert keys(backend, "a/") == ["a/b/c", "a/b/d", "a/e"]
        assert keys(backend, "a/b/") == ["a/b/c", "a/b/d"]
        assert keys(backend, "a/b") == ["a/b/c", "a/b/d"]
        assert keys(backend, "a/b/c") == ["a/b/c"]
        assert keys(backend, "a") == ["a/b/c", "a/b/d", "a/e", "ab/x"]
        assert keys(backend, "f") == ["f"]
        assert keys(backend, "nothing") == []
        assert keys(backend, "a/b/c/") == []

    def test_list_prefix_that_is_a_partial_name(self, backend: Backend) -> None:
        for key in ("packs/ab12.pack", "packs/ab34.pack", "packs/cd56.pack", "packsx"):
            backend.put(key, b"p")
        assert keys(backend, "packs/ab") == ["packs/ab12.pack", "packs/ab34.pack"]
        assert keys(backend, "packs/ab1") == ["packs/ab12.pack"]
        assert keys(backend, "packs/c") == ["packs/cd56.pack"]
        assert keys(backend, "pack") == [
            "packs/ab12.pack",
            "packs/ab34.pack",
            "packs/cd56.pack",
            "packsx",
        ]

    def test_list_is_in_key_order(self, backend: Backend) -> None:
        # '-' and '.' sort before '/', '0' and 'A' after it: a directory walk that yields a
        # folder's files before its subfolders, or sorts folder names, gets this wrong.
        names = ["b", "a/b", "a-x", "a.b/c", "a0", "A", "a/a/z", "a/a.z", "a/a-z", "_", "z/9/9"]
        for key in reversed(names):
            backend.put(key, b"x")
        assert keys(backend) == sorted(names)
        assert keys(backend, "a") == sorted(n for n in names if n.startswith("a"))
        assert keys(backend, "a/a") == ["a/a-z", "a/a.z", "a/a/z"]

    def test_list_empty_prefix_lists_everything(self, backend: Backend) -> None:
        assert keys(backend) == []
        stored = {f"d{i % 3}/k{i}": bytes([i]) * i for i in range(12)}
        for key, data in stored.items():
            backend.put(key, data)
        listed = list(backend.list())
        assert [i.key for i in listed] == sorted(stored)
        for info in listed:
            assert info.size == len(stored[info.key])
            assert info.etag == backend.stat(info.key).etag

    def test_list_never_shows_temporaries(self, backend: Backend) -> None:
        backend.put("x", b"1")
        backend.put("y/z", b"2", PutMode.CREATE)
        backend.put("y/z", b"3", PutMode.IF_MATCH, if_match=backend.stat("y/z").etag)
        backend.put("notes.tmp", b"a key may end in .tmp")
        with pytest.raises(PreconditionFailedError):
            backend.put("x", b"9", PutMode.CREATE)
        with pytest.raises(PreconditionFailedError):
            backend.put("x", b"9", PutMode.IF_MATCH, if_match="stale")
        backend.put("big", bytes(FIVE_MIB))
        assert keys(backend) == ["big", "notes.tmp", "x", "y/z"]

    def test_list_skips_deleted_objects(self, backend: Backend) -> None:
        for key in ("l/1", "l/2", "l/3"):
            backend.put(key, b"x")
        backend.delete("l/2")
        assert keys(backend, "l/") == ["l/1", "l/3"]
        backend.delete("l/1")
        backend.delete("l/3")
        assert keys(backend) == []

    # -- delete / exists / missing keys --------------------------------------------------------
    def test_delete_returns_whether_there_was_an_object(self, backend: Backend) -> None:
        backend.put("d/x", b"x")
        assert backend.delete("d/x") is True
        assert backend.delete("d/x") is False
        assert backend.delete("never/was") is False
        with pytest.raises(KeyNotFoundError):
            backend.get("d/x")

    def test_exists(self, backend: Backend) -> None:
        assert backend.exists("e") is False
        backend.put("e", b"")
        assert backend.exists("e") is True
        backend.delete("e")
        assert backend.exists("e") is False

    def test_missing_key_raises_key_not_found(self, backend: Backend) -> None:
        with pytest.raises(KeyNotFoundError):
            backend.get("no/such/key")
        with pytest.raises(KeyNotFoundError):
            backend.stat("no/such/key")
        assert issubclass(KeyNotFoundError, BackendError)

    def test_a_prefix_of_other_keys_is_not_an_object(self, backend: Backend) -> None:
        backend.put("dir/sub/leaf", b"x")
        for key in ("dir", "dir/sub"):
            with pytest.raises(KeyNotFoundError):
                backend.get(key)
            with pytest.raises(KeyNotFoundError):
                backend.stat(key)
            assert backend.exists(key) is False
            assert backend.delete(key) is False
        assert backend.get("dir/sub/leaf") == b"x"

    def test_a_key_below_an_object_is_missing(self, backend: Backend) -> None:
        backend.put("obj", b"x")
        with pytest.raises(KeyNotFoundError):
            backend.get("obj/below")
        with pytest.raises(KeyNotFoundError):
            backend.stat("obj/below")
        assert backend.exists("obj/below") is False
        assert backend.delete("obj/below") is False

    # -- CREATE --------------------------------------------------------------------------------
    def test_create_new_key(self, backend: Backend) -> None:
        info = backend.put("c/new", b"created", PutMode.CREATE)
        assert backend.get("c/new") == b"created"
        assert info.etag == backend.stat("c/new").etag

    def test_create_existing_key_fails_without_change(self, backend: Backend) -> None:
        before = backend.put("c/old", b"original")
        with pytest.raises(PreconditionFailedError):
            backend.put("c/old", b"intruder", PutMode.CREATE)
        assert backend.get("c/old") == b"original"
        assert backend.stat("c/old").etag == before.etag
        assert issubclass(PreconditionFailedError, BackendError)

    def test_create_after_delete(self, backend: Backend) -> None:
        backend.put("c/k", b"one", PutMode.CREATE)
        backend.delete("c/k")
        backend.put("c/k", b"two", PutMode.CREATE)
        assert backend.get("c/k") == b"two"

    # -- IF_MATCH ------------------------------------------------------------------------------
    def test_if_match_current_etag_replaces(self, backend: Backend) -> None:
        first = backend.put("refs/main", b"commit-1")
        second = backend.put("refs/main", b"commit-2", PutMode.IF_MATCH, if_match=first.etag)
        assert backend.get("refs/main") == b"commit-2"
        assert second.etag != first.etag
        assert second.etag == backend.stat("refs/main").etag
        third = backend.put("refs/main", b"commit-3", PutMode.IF_MATCH, if_match=second.etag)
        assert backend.get("refs/main") == b"commit-3"
        assert third.etag == backend.stat("refs/main").etag

    def test_if_match_stale_etag_fails_without_change(self, backend: Backend) -> None:
        first = backend.put("refs/main", b"commit-1")
        second = backend.put("refs/main", b"commit-2")
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/main", b"lost", PutMode.IF_MATCH, if_match=first.etag)
        assert backend.get("refs/main") == b"commit-2"
        assert backend.stat("refs/main").etag == second.etag
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/main", b"lost", PutMode.IF_MATCH, if_match="not-an-etag")
        assert backend.get("refs/main") == b"commit-2"

    def test_if_match_etag_of_a_missing_key_fails(self, backend: Backend) -> None:
        old = backend.put("refs/gone", b"x")
        backend.delete("refs/gone")
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/gone", b"y", PutMode.IF_MATCH, if_match=old.etag)
        assert backend.exists("refs/gone") is False
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/never", b"y", PutMode.IF_MATCH, if_match="some-etag")
        assert backend.exists("refs/never") is False

    def test_if_match_none_means_must_not_exist(self, backend: Backend) -> None:
        # if_match=None matches "no object": it creates a missing key and fails on an existing
        # one (so a compare-and-swap loop can start from "absent" without a special case).
        info = backend.put("refs/new", b"first", PutMode.IF_MATCH, if_match=None)
        assert backend.get("refs/new") == b"first"
        assert info.etag == backend.stat("refs/new").etag
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/new", b"second", PutMode.IF_MATCH, if_match=None)
        assert backend.get("refs/new") == b"first"
        assert backend.stat("refs/new").etag == info.etag

    def test_if_match_after_recreate_with_other_content_fails(self, backend: Backend) -> None:
        old = backend.put("refs/x", b"aaaa")
        backend.delete("refs/x")
        backend.put("refs/x", b"bbbb")
        with pytest.raises(PreconditionFailedError):
            backend.put("refs/x", b"cccc", PutMode.IF_MATCH, if_match=old.etag)
        assert backend.get("refs/x") == b"bbbb"

    # -- concurrency ---------------------------------------------------------------------------
    def test_concurrent_create_exactly_one_wins(self, backend: Backend) -> None:
        def create(i: int) -> bool:
            try:
                backend.put("race/pack", b"writer-%d" % i, PutMode.CREATE)
            except PreconditionFailedError:
                return False
            return True

        results = run_threads(8, create)
        assert results.count(True) == 1
        winner = results.index(True)
        assert backend.get("race/pack") == b"writer-%d" % winner
        assert keys(backend) == ["race/pack"]

    def test_concurrent_create_and_if_match_none_exactly_one_wins(self, backend: Backend) -> None:
        def create(i: int) -> bool:
            mode = PutMode.CREATE if i % 2 else PutMode.IF_MATCH
            try:
                backend.put("race/ref", b"writer-%d" % i, mode, if_match=None)
            except PreconditionFailedError:
                return False
            return True

        for _round in range(5):
            backend.delete("race/ref")
            results = run_threads(8, create)
            assert results.count(True) == 1
            assert backend.get("race/ref") == b"writer-%d" % results.index(True)

    def test_concurrent_compare_and_swap_loses_no_update(self, backend: Backend) -> None:
        threads, rounds = 4, 10
        backend.put("cas/counter", b"0")

        def increment(_: int) -> int:
            conflicts = 0
            etag = value = None
            for _round in range(rounds):
                while True:
                    if etag is None:  # (re)read: a value and the etag it had
                        etag = backend.stat("cas/counter").etag
                        value = int(backend.get("cas/counter"))
                        if backend.stat("cas/counter").etag != etag:
                            etag = None
                            continue
                    assert value is not None
                    try:
                        info = backend.put(
                            "cas/counter", b"%d" % (value + 1), PutMode.IF_MATCH, if_match=etag
                        )
                    except PreconditionFailedError:
                        conflicts += 1
                        etag = None
                        assert conflicts < 10_000, "no progress"
                        continue
                    # The etag put returns is the one of what this put stored, so it can be
                    # used for the next swap without reading again.
                    etag, value = info.etag, value + 1
                    break
            return conflicts

        run_threads(threads, increment)
        assert int(backend.get("cas/counter")) == threads * rounds

    # -- keys ----------------------------------------------------------------------------------
    @pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
    def test_invalid_keys_are_rejected(self, backend: Backend, key: str) -> None:
        calls: list[Callable[[], object]] = [
            lambda: backend.put(key, b"x"),
            lambda: backend.put(key, b"x", PutMode.CREATE),
            lambda: backend.put(key, b"x", PutMode.IF_MATCH, if_match=None),
            lambda: backend.get(key),
            lambda: backend.get(key, 1, 2),
            lambda: backend.stat(key),
            lambda: backend.exists(key),
            lambda: backend.delete(key),
        ]
        for call in calls:
            with pytest.raises(InvalidNameError):
                call()
        assert keys(backend) == []

    def test_valid_key_characters(self, backend: Backend) -> None:
        names = ["A-Z_a-z.0-9", "x/.hidden", "x/..dots", "trailing.", "v1.2.3/a_b-c"]
        for key in names:
            backend.put(key, key.encode())
        for key in names:
            assert backend.get(key) == key.encode()
        assert keys(backend) == sorted(names)

    # -- description ---------------------------------------------------------------------------
    def test_describe(self, backend: Backend) -> None:
        text = backend.describe()
        assert isinstance(text, str) and text.strip()

    def test_capabilities_and_local_paths(self, backend: Backend) -> None:
        caps = backend.capabilities
        assert isinstance(caps, Capabilities)
        backend.put("p/q", b"local?")
        if caps.local_path:
            assert backend.path("p/q").read_bytes() == b"local?"
        else:
            with pytest.raises(BackendError):
                backend.path("p/q")

    def test_unwrap(self, backend: Backend) -> None:
        inner = backend.unwrap()
        assert isinstance(inner, Backend)
        assert inner.unwrap() is inner
        backend.put("u", b"same store")
        assert inner.get("u") == b"same store"

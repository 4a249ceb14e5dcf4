"""`FsspecBackend`: the byte backend over an fsspec filesystem and a root prefix.

Reads, stats, listings and deletes go through fsspec; each object store's subclass (S3, GCS,
Azure) writes through its own SDK client so that a put returns the etag of what it stored and
CREATE / IF_MATCH are conditional requests the service enforces. Library errors become the
backend's (`Failure` says which): a missing key `KeyNotFoundError`, a failed condition
`PreconditionFailedError`, connection trouble, 5xx and throttling `TransientBackendError`,
everything else (auth, a missing bucket) a one-line `BackendError` with a hint. Messages name
the location (`describe()`) and never contain a secret.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from coral.errors import CoralError
from coral.storage.backend import (
    Backend,
    BackendError,
    Capabilities,
    KeyNotFoundError,
    ObjectInfo,
    PreconditionFailedError,
    PutMode,
    TransientBackendError,
    _is_key_part,
    check_key,
)
from coral.storage.cloud.common import Failure, as_timestamp, plain_etag, reason


class FsspecBackend(Backend):
    """Objects as the files of an fsspec filesystem under `root` (`bucket/prefix`).

    The generic version writes with `pipe_file` and emulates CREATE / IF_MATCH under a lock of
    this instance: atomic among its own threads only, so its capabilities say False. The
    object-store subclasses override `_put` with a conditional request and say True.
    """

    capabilities = Capabilities(atomic_create=False, conditional_put=False, local_path=False)
    container_word = "bucket"

    def __init__(
        self, fs: Any, root: str, *, description: str | None = None, secrets: Iterable[str] = ()
    ) -> None:
        self.fs = fs
        self.root = str(fs._strip_protocol(root)).rstrip("/")
        self.container = self.root.lstrip("/").split("/", 1)[0]
        self._description = description or f"{_protocol(fs)}://{self.root.lstrip('/')}"
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._container_ok = False

    # -- naming ----------------------------------------------------------------------------
    def describe(self) -> str:
        return self._description

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _key_of(self, path: str) -> str | None:
        path = str(self.fs._strip_protocol(path))
        if not path.startswith(self.root + "/"):
            return None
        return path[len(self.root) + 1 :]

    # -- operations ------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        if mode is PutMode.IF_MATCH and if_match is None:
            mode = PutMode.CREATE  # "there is no object": the same request as CREATE
        payload = data if isinstance(data, bytes) else bytes(data)
        with self._errors("put", key, mode):
            return self._put(path, key, payload, mode, if_match)

    def _put(
        self, path: str, key: str, data: bytes, mode: PutMode, if_match: str | None
    ) -> ObjectInfo:
        with self._lock:  # emulated conditions: atomic among this instance's threads only
            if mode is not PutMode.OVERWRITE:
                try:
                    current: ObjectInfo | None = self.stat(key)
                except KeyNotFoundError:
                    current = None
                if mode is PutMode.CREATE and current is not None:
                    self._precondition(key, mode)
                if mode is PutMode.IF_MATCH and (current is None or current.etag != if_match):
                    self._precondition(key, mode)
            self.fs.pipe_file(path, data)
            return self.stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        if length is not None and length <= 0:
            self.stat(key)  # KeyNotFoundError for a missing key, else nothing to read
            return b""
        end = None if length is None else offset + length
        try:
            with self._errors("get", key):
                return bytes(self.fs.cat_file(path, start=offset or None, end=end))
        except _BadRange:
            self.stat(key)  # a range at or past the end of an existing object is empty
            return b""

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._errors("stat", key):
            info = self.fs.info(path)
        if info.get("type") != "file":
            self._missing(key)  # a prefix of other keys ("folder") is not an object
        return self._object_info(key, info)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        head, _, tail = prefix.rpartition("/")
        if head and not all(_is_key_part(p) for p in head.split("/")):
            return iter(())  # no key starts with it
        folder = f"{self.root}/{head}" if head else self.root
        try:
            with self._errors("list", prefix or None):
                found = self.fs.find(folder, prefix=tail, withdirs=False, detail=True)
        except KeyNotFoundError:
            found = {}  # the folder has no objects (the bucket exists: checked)
        if not isinstance(found, dict):  # adlfs answers a file's own path as a plain list
            found = {p: {"type": "unknown"} for p in found}
        infos = []
        for path, info in found.items():
            key = self._key_of(path)
            if key is not None and info.get("type") == "unknown" and key.startswith(prefix):
                with self._errors("list", key):
                    info = self.fs.info(path)
            if key is None or info.get("type") != "file" or not key.startswith(prefix):
                continue
            if all(_is_key_part(p) for p in key.split("/")):
                infos.append(self._object_info(key, info))
        if not infos:
            self._require_container()  # an empty listing of a missing bucket is an error
        infos.sort(key=lambda i: i.key)
        return iter(infos)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            self.stat(key)
        except KeyNotFoundError:
            return False
        try:
            with self._errors("delete", key):
                self.fs.rm_file(path)
        except KeyNotFoundError:
            return False  # deleted meanwhile
        return True

    # -- what each filesystem says differently ---------------------------------------------
    def _object_info(self, key: str, info: dict[str, Any]) -> ObjectInfo:
        """Size, etag and mtime from an fsspec info dict (the same from `info` and `find`)."""
        size = int(info.get("size") or 0)
        mtime = next(
            (
                info[k]
                for k in ("mtime", "LastModified", "last_modified", "updated", "created")
                if info.get(k)
            ),
            None,
        )
        stamp = as_timestamp(mtime)
        etag = info.get("ETag") or info.get("etag") or _token(size, mtime and stamp)
        return ObjectInfo(key, size, plain_etag(etag), stamp)

    def _classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
            return Failure.MISSING
        if isinstance(exc, FileExistsError):
            return Failure.PRECONDITION
        if isinstance(exc, PermissionError):
            return Failure.AUTH
        if isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError):
            return Failure.TRANSIENT
        return Failure.OTHER

    def _container_exists(self) -> bool:
        return True  # a plain filesystem has no buckets

    def endpoint(self) -> str:
        """The service's address, for messages."""
        return self.describe()

    def create_hint(self) -> str:
        return f"create the {self.container_word} '{self.container}' first"

    auth_hint = "check the credentials and that they may read and write this location"

    # -- errors ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self, op: str, key: str | None, mode: PutMode | None = None) -> Iterator[None]:
        try:
            yield
        except CoralError:
            raise
        except Exception as exc:
            failure = self._classify(exc)
            if failure is Failure.BAD_RANGE and op == "get":
                raise _BadRange() from None
            error = self._error(exc, failure, op, key, mode)
            raise error from (None if failure is Failure.AUTH else exc)

    def _error(
        self,
        exc: BaseException,
        failure: Failure,
        op: str,
        key: str | None,
        mode: PutMode | None,
    ) -> BackendError:
        where = self.describe()
        if failure is Failure.NO_CONTAINER or (failure is Failure.MISSING and op == "check"):
            return self._no_container_error()
        if failure is Failure.MISSING:
            self._require_container()  # raises when it is the bucket that is missing
            if op == "put" and mode is PutMode.IF_MATCH:
                return PreconditionFailedError(f"{key} is not in {where} (if-match)")
            if op != "put":
                return KeyNotFoundError(f"{key} is not in {where}")
        if failure is Failure.PRECONDITION and op == "put":
            return _precondition_error(key, mode, where)
        if failure is Failure.AUTH:
            return BackendError(
                f"access denied to {where}: {self._reason(exc)}", hint=self.auth_hint
            )
        what = f"{op} {key}" if key else op
        if failure is Failure.TRANSIENT:
            return TransientBackendError(f"{what} on {where} failed: {self._reason(exc)}")
        return BackendError(f"{what} on {where} failed: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        return reason(exc, self._secrets)

    def _missing(self, key: str) -> NoReturn:
        self._require_container()
        raise KeyNotFoundError(f"{key} is not in {self.describe()}")

    @staticmethod
    def _precondition(key: str, mode: PutMode) -> NoReturn:
        raise _precondition_error(key, mode, "the store")

    def _require_container(self) -> None:
        """Raise a clear error when the bucket does not exist (checked once per instance)."""
        if self._container_ok:
            return
        with self._errors("check", None):
            exists = self._container_exists()
        if not exists:
            raise self._no_container_error()
        self._container_ok = True

    def _no_container_error(self) -> BackendError:
        return BackendError(
            f"{self.container_word} '{self.container}' does not exist at {self.endpoint()}",
            hint=self.create_hint(),
        )


class _BadRange(Exception):
    """A range request past the end of the object (the object may not exist either)."""


def _precondition_error(key: str | None, mode: PutMode | None, where: str) -> BackendError:
    if mode is PutMode.CREATE:
        return PreconditionFailedError(f"{key} already exists in {where}")
    return PreconditionFailedError(f"{key} in {where} changed (etag does not match)")


def _protocol(fs: Any) -> str:
    protocol = getattr(fs, "protocol", "fsspec")
    return str(protocol[0] if isinstance(protocol, tuple | list) else protocol)


def _token(size: int, mtime: Any) -> str:
    """An etag for a filesystem that has none: size and modification time."""
    from fsspec.utils import tokenize

    return str(tokenize(size, mtime))

"""The byte backend: a narrow, bytes-only storage seam (restic's Backend, dulwich's object store).

Every store of Coral — the local repository, a remote on S3 / GCS / Azure / a folder — is a set
of named byte strings ("keys", `/`-separated, e.g. `packs/ab/ab12….pack`). A backend offers:

- `put(key, data, mode=...)`: OVERWRITE, CREATE (fail if the key exists) or IF_MATCH (replace only
  when the stored object still has the given etag: compare-and-swap);
- `get(key, offset, length)`: the whole object or a byte range;
- `stat(key)`, `list(prefix)`, `delete(key)`;
- `capabilities`: what the backend guarantees (atomic create, conditional writes, local paths).

Writes are atomic: a reader sees either nothing or the whole object. Cross-cutting concerns
(retries, caching) are wrappers around any backend. docs/FORMAT.md states the contract and
`tests/storage/backend_contract.py` holds every backend to it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from stat import S_ISREG
from typing import TypeVar

from coral.errors import CoralError, InvalidNameError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")


class PutMode(Enum):
    """How `put` treats an existing key."""

    OVERWRITE = "overwrite"
    CREATE = "create"  # fail with PreconditionFailedError when the key exists
    IF_MATCH = "if-match"  # replace only when the current etag equals `if_match`


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    etag: str
    mtime: float


@dataclass(frozen=True)
class Capabilities:
    """Guarantees a backend declares (callers never probe with getattr)."""

    atomic_create: bool = True  # CREATE is atomic against concurrent writers
    conditional_put: bool = True  # IF_MATCH is a real compare-and-swap
    range_get: bool = True  # get(offset, length) reads only the range
    local_path: bool = False  # path(key) names a local file (mmap, pread)


class BackendError(CoralError):
    """A backend operation failed for a reason other than a missing key or a precondition."""

    default_hint = "check that the storage location exists, is writable and has free space"


class KeyNotFoundError(BackendError):
    default_hint = "the object is not stored there; `coral fsck` reports what is missing"


class PreconditionFailedError(BackendError):
    """CREATE on an existing key, or IF_MATCH against a changed object."""

    default_hint = "another writer changed it first; read it again and retry"


class TransientBackendError(BackendError):
    """A failure worth retrying (timeouts, throttling, connection resets)."""


def check_key(key: str) -> str:
    """A key is `/`-separated non-empty parts of safe characters, without `.` or `..` parts."""
    parts = key.split("/") if isinstance(key, str) else []
    if not parts or not all(_is_key_part(p) for p in parts):
        raise InvalidNameError(f"not a storage key: {key!r}")
    return key


def _is_key_part(part: str) -> bool:
    return bool(part) and part not in (".", "..") and all(c.isalnum() or c in "._-" for c in part)


class Backend(ABC):
    """Bytes-only storage of immutable or compare-and-swapped objects under string keys."""

    capabilities = Capabilities()

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Store `data` under `key` atomically; durable when it returns."""

    @abstractmethod
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes (a range when offset/length are given); KeyNotFoundError."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and etag of an object; KeyNotFoundError."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove an object; False when there was none."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except KeyNotFoundError:
            return False
        return True

    def path(self, key: str) -> Path:
        """The local file of `key` (only when `capabilities.local_path`)."""
        raise BackendError(f"{type(self).__name__} has no local files")

    def describe(self) -> str:
        """Where the objects live, for messages (never contains a secret)."""
        return type(self).__name__

    def unwrap(self) -> Backend:
        """The innermost backend under any wrappers."""
        return self


# -- local filesystem ----------------------------------------------------------------------------
class LocalBackend(Backend):
    """Objects as files under `root`: temp file, fsync, rename (or link, for CREATE)."""

    capabilities = Capabilities(local_path=True)
    TMP = "tmp"

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.tmp_dir = self.root / self.TMP
        self._cas_lock = threading.Lock()

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(
        self,
        key: str,
        data: bytes | memoryview,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> ObjectInfo:
        target = self.path(key)
        tmp = self._write_temp(target.name, data)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode is PutMode.CREATE:
                info = self._describe_temp(tmp, key, None)
                self._link(tmp, target, key)  # atomic: fails if the name exists
            else:
                # OVERWRITE and delete take the lock too, so that no write lands between the
                # etag check of an IF_MATCH and its rename.
                with self._key_lock(target):
                    current = self._stat_or_none(target)
                    if mode is PutMode.IF_MATCH:
                        etag = None if current is None else _etag(current)
                        if etag != if_match:
                            raise PreconditionFailedError(
                                f"{key} changed (etag {etag}, expected {if_match})"
                            )
                    info = self._describe_temp(tmp, key, current)
                    if mode is PutMode.IF_MATCH and current is None:
                        self._link(tmp, target, key)  # "must not exist", against CREATE too
                    else:
                        os.replace(tmp, target)
            if self.fsync:
                fsync_dir(target.parent)
        except OSError as exc:
            raise os_error(exc, target) from None
        finally:
            tmp.unlink(missing_ok=True)
        return info  # what this put stored, even if another writer replaced it since

    @staticmethod
    def _link(tmp: Path, target: Path, key: str) -> None:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise PreconditionFailedError(f"{key} already exists") from None

    @staticmethod
    def _describe_temp(tmp: Path, key: str, replaces: os.stat_result | None) -> ObjectInfo:
        """Stamp the temporary with a fresh mtime and describe it (rename and link keep both).

        The etag is inode, size and mtime; inodes are reused (a replaced file frees its inode
        for the next write), so the mtime must never repeat for a key, even where the file
        system clock is coarse: it is set from the fine clock, after the replaced object's.
        """
        ns = time.time_ns()
        if replaces is not None and ns <= replaces.st_mtime_ns:
            ns = replaces.st_mtime_ns + 1
        os.utime(tmp, ns=(ns, ns))
        st = os.stat(tmp)
        return ObjectInfo(key, st.st_size, _etag(st), st.st_mtime)

    def _write_temp(self, name: str, data: bytes | memoryview) -> Path:
        tmp = self.tmp_dir / f"{name[:40]}.{uuid.uuid4().hex}.tmp"
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):  # e.g. tmp is not a folder: nothing written
                tmp.unlink(missing_ok=True)
            raise os_error(exc, tmp) from None
        return tmp

    def _key_lock(self, target: Path) -> _FileLock:
        return _FileLock(self.tmp_dir / ".cas-lock", self._cas_lock)

    @staticmethod
    def _stat_or_none(target: Path) -> os.stat_result | None:
        try:
            st = target.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st if S_ISREG(st.st_mode) else None

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self.path(key)
        try:
            with open(path, "rb") as fh:
                if offset:
                    fh.seek(offset)
                return fh.read() if length is None else fh.read(length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # a folder is a prefix of other keys, not an object; a file cannot have children
            raise KeyNotFoundError(f"{key} is not in {self.root}") from None
        except OSError as exc:
            raise os_error(exc, path) from None

    def stat(self, key: str) -> ObjectInfo:
        path = self.path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFoundError(f"{key} is not in {self.root}") from None
        except OSError as exc:
            raise os_error(exc, path) from None
        if not S_ISREG(st.st_mode):
            raise KeyNotFoundError(f"{key} is not a file in {self.root}")
        return ObjectInfo(key, st.st_size, _etag(st), st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        head, _, _ = prefix.rpartition("/")
        if head and not all(_is_key_part(p) for p in head.split("/")):
            return  # no key starts with it (and `../` must not walk out of the root)
        yield from self._walk(self.root / head if head else self.root, head, prefix)

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under `folder` (key prefix `rel`) in key order: a subfolder `d` sorts as
        `d/`, so `a-x` < `a/b` < `a0` as the keys do (a plain walk lists a folder's files
        before its subfolders)."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(
                    (e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in it
                )
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise os_error(exc, folder) from None
        for name, entry in entries:
            key = f"{rel}/{name}" if rel else name
            if not _is_key_part(entry.name):
                continue  # not a key (a stray file); never written by a backend
            if name.endswith("/"):
                if not rel and entry.name == self.TMP:
                    continue  # temporaries of writes in progress (or crashed)
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key[:-1], prefix)
            elif key.startswith(prefix):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted meanwhile
                except OSError as exc:
                    raise os_error(exc, Path(entry.path)) from None
                if S_ISREG(st.st_mode):
                    yield ObjectInfo(key, st.st_size, _etag(st), st.st_mtime)

    def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            if self._stat_or_none(path) is None:
                return False
            with self._key_lock(path):
                path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise os_error(exc, path) from None
        return True

    def remove_stale_temporaries(self, older_than: float = 0.0) -> int:
        """Delete temporary files of failed writes older than `older_than` seconds."""
        removed = 0
        if not self.tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than
        for tmp in self.tmp_dir.glob("*.tmp"):
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def os_error(exc: OSError, path: Path) -> BackendError:
    """A BackendError naming the path (and the free space, when the disk is full)."""
    if exc.errno == errno.ENOSPC:
        free = free_bytes(path)
        return BackendError(
            f"no space left on the device writing {path} ({free} bytes free)",
            hint="free disk space (`coral gc` removes unreachable objects), then retry",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BackendError(f"permission denied writing {path}: {exc.strerror}")
    return BackendError(f"I/O error on {path}: {exc.strerror or exc}")


def free_bytes(path: Path) -> int:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


def fsync_dir(path: Path) -> None:
    """Make renames and links in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileLock:
    """An exclusive flock on a file, plus a thread lock (flock is per open file description)."""

    def __init__(self, path: Path, thread_lock: threading.Lock) -> None:
        self.path = path
        self.thread_lock = thread_lock
        self.fd = -1

    def __enter__(self) -> None:
        self.thread_lock.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except BaseException:
            self.thread_lock.release()  # else the next writer of this backend hangs
            raise
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(self.fd)
                self.thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        try:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        finally:
            self.thread_lock.release()

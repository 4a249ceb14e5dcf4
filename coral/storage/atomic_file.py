"""`atomic_write`: replace a file whole or not at all, with the permissions of a normal file.

The one way Coral writes a file outside its object store (exports, `config.json` and the other
model files, `remotes.json`, the promisor file): a temporary file in the same folder, flushed and
fsynced, renamed over the target, then the folder fsynced. `tempfile.mkstemp` creates its file
private (0600); the result gets `0644` minus the process's umask instead, as a file written
with `open()` would, so an export can be shared like any other file. A write that fails for
lack of space raises `DiskFullError` naming the file and the free space; the temporary file is
removed at once.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from coral.errors import DiskFullError
from coral.storage.backend import free_bytes, fsync_dir

FILE_MODE = 0o644  # before the umask
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def current_umask() -> int:
    """The process's umask (read from /proc where possible: setting it is process-wide)."""
    with suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: Path | str, mode: int = FILE_MODE) -> Iterator[IO[bytes]]:
    """Write `path` through a temporary file beside it; on success it replaces `path` with
    permissions `mode & ~umask`, durably. On any error the target is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        error = _no_space(exc, path)
        if error is None:
            raise
        raise error from None
    f = os.fdopen(fd, "wb")
    try:
        with f:
            os.fchmod(f.fileno(), mode & ~current_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            f.close()  # a full disk fails the flush of close() too: the file is closed anyway
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (error := _no_space(exc, path)) is not None:
            raise error from None
        raise
    fsync_dir(path.parent)


def _no_space(exc: OSError, path: Path) -> DiskFullError | None:
    """A DiskFullError naming `path` and the free space, when `exc` says the disk is full."""
    if exc.errno not in _NO_SPACE:
        return None
    free = free_bytes(path.parent)
    return DiskFullError(f"no space left on the device writing {path} ({free} bytes free)")


def write_atomic(path: Path | str, data: bytes | str, mode: int = FILE_MODE) -> Path:
    """Write `data` (str as UTF-8) to `path` with `atomic_write`; returns the path."""
    with atomic_write(path, mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)

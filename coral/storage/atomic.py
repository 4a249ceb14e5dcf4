"""Crash-safe file writes: temp file, flush, fsync, rename, then fsync of the directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path


def atomic_write(
    path: Path, data: bytes | memoryview, tmp_dir: Path, *, fsync: bool = True
) -> None:
    """Write `data` to `path` so that readers see either nothing or all of it."""
    tmp = tmp_dir / f"{path.name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)


def fsync_dirs(dirs: Iterable[Path]) -> None:
    """Make renames into these directories durable."""
    for d in set(dirs):
        try:
            fd = os.open(d, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

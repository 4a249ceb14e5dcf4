"""Loose object files of the first release (`<kind>/<2 hex>/<62 hex>`): read, then converted.

Nothing new is ever written loose, so a store without loose folders at open never looks again.

Repositories written before packs keep opening: a record that no pack holds is looked up
here. `coral gc` copies every live loose object into packs and deletes the loose files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from coral.core.hashing import is_hash
from coral.errors import CorruptObjectError
from coral.storage.chunk_format import MAX_RAW_LEN

LOOSE_KINDS = ("chunk", "tensor", "tree", "commit", "tag")
MAX_LOOSE_BYTES = MAX_RAW_LEN + (1 << 20)  # the largest chunk file, header and plane table


class LooseObjects:
    """The loose files under an objects folder (read and delete only: nothing new goes here)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.present = any((self.root / kind).is_dir() for kind in LOOSE_KINDS)

    def path(self, kind: str, object_id: str) -> Path:
        return self.root / kind / object_id[:2] / object_id[2:]

    def read(self, kind: str, object_id: str) -> bytes | None:
        """The file's bytes, None when there is none; CorruptObjectError (naming the file) when
        it cannot be read or is larger than any object (checked before it is read)."""
        if not self.present or not is_hash(object_id):
            return None
        path = self.path(kind, object_id)
        try:
            size = path.stat().st_size
            if size > MAX_LOOSE_BYTES:
                raise CorruptObjectError(
                    object_id, str(path), f"the file is {size} bytes, larger than any object"
                )
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # a folder, a symlink loop, no permission
            raise CorruptObjectError(
                object_id, str(path), f"cannot read the file: {exc.strerror or exc}"
            ) from None

    def has(self, kind: str, object_id: str) -> bool:
        return self.present and is_hash(object_id) and self.path(kind, object_id).is_file()

    def ids(self, kind: str) -> Iterator[str]:
        base = self.root / kind
        if not self.present or not base.is_dir():
            return
        for sub in sorted(base.iterdir()):
            if len(sub.name) == 2 and sub.is_dir():
                for f in sorted(sub.iterdir()):
                    oid = sub.name + f.name
                    if is_hash(oid):
                        yield oid

    def any(self) -> bool:
        return any(next(self.ids(kind), None) for kind in LOOSE_KINDS)

    def delete(self, kind: str, object_id: str) -> int:
        """Remove one loose file; returns the bytes freed."""
        path = self.path(kind, object_id)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def mtime(self, kind: str, object_id: str) -> float:
        try:
            return self.path(kind, object_id).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def prune_empty_dirs(self) -> None:
        for kind in LOOSE_KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for sub in base.iterdir():
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
            if not any(base.iterdir()):
                base.rmdir()
        self.present = any((self.root / kind).is_dir() for kind in LOOSE_KINDS)

"""Dropping the pages of read-only memory-mapped arrays once they have been read.

A tensor read through a memory map (a safetensors file, a pack) brings its file pages into the
process as they are touched, and they count in its resident set until unmapped. `release(view)`
tells the kernel a range of a read-only map is no longer needed (`MADV_DONTNEED`): the pages
leave the resident set and stay in the page cache, and a later touch reads them back, so
streaming a file many times the memory budget keeps the resident set at a few pieces.

Only views of a read-only map are touched; anything else (anonymous memory, a copy-on-write
map, whose pages hold data) is left alone.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())


_PAGE = mmap.PAGESIZE


def read_only_map(arr: np.ndarray) -> mmap.mmap | None:
    """The read-only mmap under `arr` (through its chain of bases), or None."""
    base: object = arr
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) and base.mode != "r":
            return None
        base = base.base
    if isinstance(base, mmap.mmap) and not base.closed and memoryview(base).readonly:
        return base
    return None


def release(view: np.ndarray) -> None:
    """Drop the resident pages under `view` when it is part of a read-only memory map."""
    if not isinstance(view, np.ndarray) or view.nbytes == 0:
        return
    mm = read_only_map(view)
    if mm is None:
        return
    start = view.ctypes.data - np.frombuffer(mm, np.uint8).ctypes.data
    lo = max(0, start // _PAGE * _PAGE)
    hi = min(len(mm), -(-(start + view.nbytes) // _PAGE) * _PAGE)
    if hi > lo:
        with contextlib.suppress(OSError, ValueError):  # then only memory is at stake, not data
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

"""Version control over tensors: objects, refs, staging, merge, gc and fsck, under `Repository`.

The names below are imported on first use, so importing one module of the package (a command
that only reads refs) does not import merge, gc and fsck.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coral.version_control.diff import DiffResult, TensorChange
    from coral.version_control.fsck import FsckProblem, FsckReport
    from coral.version_control.gc import GCResult
    from coral.version_control.merge import MergeResult
    from coral.version_control.objects import Commit, Tag, Tree, TreeEntry
    from coral.version_control.refs import Branch, HeadState, ReflogEntry
    from coral.version_control.repository import Repository, RepositoryStatus

_LAZY = {
    "DiffResult": "diff",
    "TensorChange": "diff",
    "FsckProblem": "fsck",
    "FsckReport": "fsck",
    "GCResult": "gc",
    "MergeResult": "merge",
    "Commit": "objects",
    "Tag": "objects",
    "Tree": "objects",
    "TreeEntry": "objects",
    "Branch": "refs",
    "HeadState": "refs",
    "ReflogEntry": "refs",
    "Repository": "repository",
    "RepositoryStatus": "repository",
}

__all__ = [
    "Branch",
    "Commit",
    "DiffResult",
    "FsckProblem",
    "FsckReport",
    "GCResult",
    "HeadState",
    "MergeResult",
    "ReflogEntry",
    "Repository",
    "RepositoryStatus",
    "Tag",
    "TensorChange",
    "Tree",
    "TreeEntry",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

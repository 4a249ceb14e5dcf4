"""Version control over tensors: objects, refs, staging, merge, gc and fsck, under `Repository`."""

from coral.version_control.diff import DiffResult, TensorChange
from coral.version_control.fsck import FsckProblem, FsckReport
from coral.version_control.gc import GCResult
from coral.version_control.merge import MergeResult
from coral.version_control.objects import Commit, Tag, Tree, TreeEntry
from coral.version_control.refs import Branch, HeadState, ReflogEntry
from coral.version_control.repository import Repository, RepositoryStatus

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
